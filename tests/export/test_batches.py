"""An export reads each batch of patients with its own history, so its memory does not grow
with the registry: the baselines behind the BASDAI response columns are read per batch."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import event

from bot.context import AppContext
from bot.export.service import ExportRequest, run_export
from storage import exports
from tests.export.conftest import Dataset, wide_by_id


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
