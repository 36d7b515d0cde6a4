"""An export reads each batch of patients with its own history, so its memory does not grow
with the registry: the baselines behind the BASDAI response columns are read per batch."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import event

from bot.context import AppContext
from bot.domain import attention
from bot.export.service import ExportRequest, run_export
from storage import exports, patients
from tests.export.conftest import BASELINE_BASDAI, Dataset, at, wide_by_id


@pytest.fixture
def history_reads(ctx: AppContext) -> Iterator[list[str]]:
    """The SQL of every statement that reads the BASDAI history (the baselines), as run."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "baseline_date" in statement:
            seen.append(statement)

    event.listen(ctx.engine, "before_cursor_execute", record)
    yield seen
    event.remove(ctx.engine, "before_cursor_execute", record)


def _export(ctx: AppContext, fmt: str, batch_size: int) -> bytes:
    sink = io.BytesIO()
    run_export(ctx, ExportRequest(format=fmt, by="r"), stdout=sink, batch_size=batch_size)
    return sink.getvalue()


class TestBaselinesPerBatch:
    def test_history_is_read_for_the_given_patients_only(
        self, ctx: AppContext, dataset: Dataset
    ) -> None:
        """The history query returns the completed questionnaires of the batch's patients and
        of no one else."""
        with ctx.session() as session:
            alice = exports.basdai_history(
                session=session, scope=exports.ExportScope(), patient_ids=[dataset.alice]
            )
            both = exports.basdai_history(
                session=session,
                scope=exports.ExportScope(),
                patient_ids=[dataset.alice, dataset.bob],
            )
            nobody = exports.basdai_history(
                session=session, scope=exports.ExportScope(), patient_ids=[]
            )
        assert [row.administration_id for row in alice] == [
            dataset.admin["alice_baseline"],
            dataset.admin["alice_follow_up"],
        ]
        assert {row.research_id for row in alice} == {dataset.research_ids[dataset.alice]}
        assert {row.administration_id for row in both} == {
            dataset.admin["alice_baseline"],
            dataset.admin["alice_follow_up"],
            dataset.admin["bob_floored"],
        }
        assert nobody == []

    @pytest.mark.parametrize("fmt", ["wide", "long"])
    def test_one_history_read_per_batch(
        self, ctx: AppContext, dataset: Dataset, history_reads: list[str], fmt: str
    ) -> None:
        """With one patient per batch, the history is read once per exported patient (Alice,
        Bob, Dan), never once for the whole export; with the default size, once."""
        _export(ctx, fmt, batch_size=1)
        assert len(history_reads) == 3
        history_reads.clear()
        _export(ctx, fmt, batch_size=5000)
        assert len(history_reads) == 1

    @pytest.mark.parametrize("fmt", ["wide", "long"])
    def test_tiny_batches_give_the_same_csv(
        self, ctx: AppContext, dataset: Dataset, fmt: str
    ) -> None:
        """One patient per batch writes exactly the single-batch export, responses included."""
        batched = _export(ctx, fmt, batch_size=1)
        assert batched == _export(ctx, fmt, batch_size=5000)
        if fmt == "wide":
            follow_up = wide_by_id(batched.decode())[dataset.admin["alice_follow_up"]]
            assert (follow_up["basdai50"], follow_up["basdai_asas_eular_response"]) == (
                "true",
                "true",
            )

    def test_tiny_batches_give_the_same_parquet(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """The Parquet export with one patient per batch holds the single-batch export's table,
        BASDAI responses included."""
        tables = []
        for batch_size in (1, 5000):
            out = tmp_path / f"export-{batch_size}.parquet"
            run_export(ctx, ExportRequest(format="parquet", by="r", out=out), batch_size=batch_size)
            tables.append(pq.read_table(out).to_pylist())
        assert tables[0] == tables[1]
        assert any(row["basdai50"] is True for row in tables[0])


def _set_baseline_date(ctx: AppContext, patient_id: int, moment: datetime | None) -> None:
    with ctx.session() as session:
        patient = patients.get_patient(session=session, patient_id=patient_id)
        assert patient is not None
        patient.baseline_date = moment
        patients.save_patient(session=session, patient=patient)


def _chosen_by_the_database(ctx: AppContext, patient_ids: list[int]) -> dict[str, int]:
    with ctx.session() as session:
        rows = exports.basdai_baselines(
            session=session, scope=exports.ExportScope(), patient_ids=patient_ids
        )
    chosen = {row.research_id: row.administration_id for row in rows}
    assert len(chosen) == len(rows), "one baseline per patient"
    return chosen


def _chosen_by_the_rule(ctx: AppContext, patient_ids: list[int]) -> dict[str, int]:
    """Each patient's baseline as the digest's rule (`attention.baseline`) picks it from the
    patient's whole BASDAI history."""
    with ctx.session() as session:
        history = exports.basdai_history(
            session=session, scope=exports.ExportScope(), patient_ids=patient_ids
        )
    chosen: dict[str, int] = {}
    for research_id in {row.research_id for row in history}:
        own = [row for row in history if row.research_id == research_id]
        observations = [attention.Observation(row.completed_at, row.basdai, None) for row in own]
        first = attention.baseline(observations, own[0].baseline_date)
        assert first is not None
        chosen[research_id] = own[observations.index(first)].administration_id
    return chosen


class TestBaselinesChosenByTheDatabase:
    def test_one_row_per_covered_patient(self, ctx: AppContext, dataset: Dataset) -> None:
        """A batch's baselines are one row per patient with a completed questionnaire: never a
        deleted patient, never a questionnaire after a withdrawal, nobody for no patients."""
        everyone = [dataset.alice, dataset.bob, dataset.carol_deleted, dataset.dan_withdrawn]
        chosen = _chosen_by_the_database(ctx, everyone)
        ids = dataset.research_ids
        assert chosen == {
            ids[dataset.alice]: dataset.admin["alice_baseline"],
            ids[dataset.bob]: dataset.admin["bob_floored"],
            ids[dataset.dan_withdrawn]: dataset.admin["dan_before"],
        }
        with ctx.session() as session:
            rows = exports.basdai_baselines(
                session=session, scope=exports.ExportScope(), patient_ids=[dataset.alice]
            )
            nobody = exports.basdai_baselines(
                session=session, scope=exports.ExportScope(), patient_ids=[]
            )
        assert [(row.administration_id, row.basdai) for row in rows] == [
            (dataset.admin["alice_baseline"], BASELINE_BASDAI)
        ]
        assert nobody == []

    @pytest.mark.parametrize(
        "baseline_date",
        [
            pytest.param(None, id="no baseline date: the first"),
            pytest.param(at("2025-11-01 00:00"), id="before both: the first"),
            pytest.param(at("2026-06-20 00:00"), id="nearer the follow-up"),
            pytest.param(at("2026-12-31 00:00"), id="after both: the last"),
            pytest.param("midpoint", id="equally far: the earlier"),
            pytest.param("just after midpoint", id="a microsecond nearer the later"),
        ],
    )
    def test_the_baseline_is_the_one_the_rule_chooses(
        self, ctx: AppContext, dataset: Dataset, baseline_date: datetime | str | None
    ) -> None:
        """The database chooses each patient's baseline exactly as the digest's rule does:
        the first, or the one completed nearest to the clinic's baseline date, the earlier on
        a tie, to the microsecond."""
        with ctx.session() as session:
            alice = exports.basdai_history(
                session=session, scope=exports.ExportScope(), patient_ids=[dataset.alice]
            )
        first, follow_up = alice[0].completed_at, alice[1].completed_at
        midpoint = first + (follow_up - first) / 2
        moment = {
            "midpoint": midpoint,
            "just after midpoint": midpoint + timedelta(microseconds=1),
        }.get(str(baseline_date), baseline_date)
        assert moment is None or isinstance(moment, datetime)
        _set_baseline_date(ctx, dataset.alice, moment)
        everyone = [dataset.alice, dataset.bob, dataset.dan_withdrawn]
        chosen = _chosen_by_the_database(ctx, everyone)
        assert chosen == _chosen_by_the_rule(ctx, everyone)
        expected = (
            "alice_follow_up"
            if baseline_date
            in ("just after midpoint", at("2026-06-20 00:00"), at("2026-12-31 00:00"))
            else "alice_baseline"
        )
        assert chosen[dataset.research_ids[dataset.alice]] == dataset.admin[expected]
