"""A curious researcher tries to undo date shifting from what else an export carries.

Two patients answer on alternate days for three weeks (one joined ten days earlier), so their
database ids interleave with time. The attack: assume some ordering of the rows (their order in
a file, or the order of any column's values) follows real time across patients; every pair of
rows of the two patients then bounds the difference of their secret offsets. If the bounds
agree and are narrow, the offsets are recovered (one patient's real dates give the other's).
The export must leave the attack no closer than the shift range; the same attack run on
database ids shows it would work.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bot.clock import FixedClock
from bot.context import AppContext
from bot.export.pseudonyms import MAX_SHIFT_DAYS, Pseudonymizer
from bot.export.service import ExportRequest, run_export
from bot.services import staff
from storage import patients as patient_storage
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.export.conftest import BASELINE, _lab, at, db_id, export_csv, run_questionnaire

ROUNDS = 12
SHIFT_RANGE_DAYS = 2 * MAX_SHIFT_DAYS
"""Each offset is one of ±1…±365 days; an attacker who knows only that is this far off."""


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def offset_bounds(
    first: Sequence[tuple[object, datetime]], second: Sequence[tuple[object, datetime]]
) -> tuple[float, float]:
    """The interval of (first's offset − second's offset), in days, that is consistent with
    the assumption that the sort keys follow real time (keys are compared; equal keys say
    nothing). Shifted times are what the export shows."""
    low, high = -float(2 * MAX_SHIFT_DAYS), float(2 * MAX_SHIFT_DAYS)
    for key_a, shifted_a in first:
        for key_b, shifted_b in second:
            gap = (shifted_a - shifted_b).total_seconds() / 86400
            if key_a < key_b:  # type: ignore[operator]
                low = max(low, gap)  # real_a < real_b  ⇒  offset_a − offset_b > gap
            elif key_b < key_a:  # type: ignore[operator]
                high = min(high, gap)
    return low, high


def recovered(bounds: tuple[float, float], truth: float) -> bool:
    """Whether the bounds pin the true offset difference closer than the shift range."""
    low, high = bounds
    return low <= truth <= high and high - low < SHIFT_RANGE_DAYS


@pytest.fixture
def two_patients(ctx: AppContext, clock: FixedClock) -> dict[str, int]:
    """Two patients answering on alternate days (A from ten days earlier), with a CRP drawn
    beside each answer; returns each patient's id. Administration and lab ids interleave with
    time across the two; the clinical values are the same every time, so only what the export
    adds can follow time."""
    clock.set(at("2026-01-01 08:00"))
    doctor = staff.add_physician(ctx, display_name="Dr. Test")
    ids = {}
    for ref in ("MRN-A", "MRN-B"):
        ids[ref] = staff.add_patient(
            ctx, physician_id=doctor.physician_id, clinic_ref=ref
        ).patient_id
    start = at("2026-01-05 18:00")
    # A joins ten days before B (patients never all start together), then they alternate.
    days = [("MRN-A", day) for day in range(10)]
    days += [(("MRN-A", "MRN-B")[day % 2], 10 + day) for day in range(2 * ROUNDS)]
    for ref, day in days:
        slot = start + timedelta(days=day)
        run_questionnaire(
            ctx, clock, patient_id=ids[ref], slot=slot, language="en",
            answers=BASELINE, outcome="completed",
        )  # fmt: skip
        drawn = slot + timedelta(hours=3)
        _lab(ctx, clock, ref, drawn.strftime("%Y-%m-%d %H:%M"), crp="5")
    return ids


def true_difference(ctx: AppContext, ids: dict[str, int]) -> tuple[str, str, float]:
    """The two pseudonyms and the true difference of their offsets, in days."""
    keyed = Pseudonymizer(TEST_PSEUDONYM_KEY.encode("utf-8"))
    with ctx.session() as session:
        research = [
            patient_storage.get_patient(session=session, patient_id=ids[ref]).research_id  # type: ignore[union-attr]
            for ref in ("MRN-A", "MRN-B")
        ]
    first, second = (keyed.pseudonym(r) for r in research)
    difference = keyed.date_offset(research[0]) - keyed.date_offset(research[1])
    return first, second, difference.total_seconds() / 86400


Timeline = list[tuple[object, datetime]]
"""One patient's rows as (sort key, shifted time)."""


def attacks(
    rows: list[dict[str, str]], pseudonyms: tuple[str, str], pseudonym_column: str, time_column: str
) -> list[tuple[str, Timeline, Timeline]]:
    """Every ordering an attacker can try on a table: row order, and each column's values."""
    tried = []
    # Shifted dates are left out as keys: reading them as real time is the attacker's blind
    # guess (offsets equal), which any shift leaves open.
    columns = [
        name
        for name in rows[0]
        if name not in (pseudonym_column, time_column)
        and not any(re.match(r"\d{4}-\d\d-\d\d[T ]", row[name] or "") for row in rows)
    ]
    for name in ["<row order>", *columns]:
        by_patient: dict[str, Timeline] = {pseudonym: [] for pseudonym in pseudonyms}
        for position, row in enumerate(rows):
            if row[time_column] and row[pseudonym_column] in by_patient:
                key: object = position if name == "<row order>" else row[name]
                by_patient[row[pseudonym_column]].append((key, parse(row[time_column])))
        first, second = by_patient.values()
        assert first
        assert second
        tried.append((name, first, second))
    return tried


def csv_table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


class TestDateShiftAttack:
    def test_database_ids_would_give_the_offsets_away(
        self, ctx: AppContext, two_patients: dict[str, int]
    ) -> None:
        """Control: ordering the shifted rows by their database ids recovers the offsets."""
        rows = csv_table(export_csv(ctx, "wide", shift_dates=True)[0])
        first, second, truth = true_difference(ctx, two_patients)
        for row in rows:
            row["database_id"] = str(db_id(row["administration_id"])).zfill(6)
        by_id = {
            name: (a, b)
            for name, a, b in attacks(rows, (first, second), "patient_pseudonym", "scheduled_for")
        }
        bounds = offset_bounds(*by_id["database_id"])
        assert recovered(bounds, truth)
        assert bounds[1] - bounds[0] <= 2

    @pytest.mark.parametrize(
        ("fmt", "time_column"),
        [("wide", "scheduled_for"), ("wide", "crp_drawn_at"), ("long", "observed_at")],
    )
    def test_no_csv_column_nor_row_order_recovers_the_offsets(
        self, ctx: AppContext, two_patients: dict[str, int], fmt: str, time_column: str
    ) -> None:
        """Neither the order of the rows nor the values of any column follow time across
        patients, so the offsets stay hidden within the shift range."""
        rows = csv_table(export_csv(ctx, fmt, shift_dates=True)[0])
        first, second, truth = true_difference(ctx, two_patients)
        for name, a, b in attacks(rows, (first, second), "patient_pseudonym", time_column):
            assert not recovered(offset_bounds(a, b), truth), name

    def test_parquet_neither(
        self, ctx: AppContext, two_patients: dict[str, int], tmp_path: Path
    ) -> None:
        """The Parquet table's row order and columns do not follow time across patients."""
        out = tmp_path / "shifted.parquet"
        run_export(ctx, ExportRequest(format="parquet", by="r", out=out, shift_dates=True))
        rows = [
            {name: "" if value is None else str(value) for name, value in row.items()}
            for row in pq.read_table(out).to_pylist()
        ]
        for row in rows:
            row["scheduled_for"] = row["scheduled_for"].replace(" ", "T")
        first, second, truth = true_difference(ctx, two_patients)
        for name, a, b in attacks(rows, (first, second), "patient_pseudonym", "scheduled_for"):
            assert not recovered(offset_bounds(a, b), truth), name

    def test_fhir_ids_order_and_manifest_neither(
        self, ctx: AppContext, two_patients: dict[str, int], tmp_path: Path
    ) -> None:
        """FHIR resource ids, their order in each file and the manifest reveal no offset; the
        manifest carries no real date (no --since, --until or time of export)."""
        out = tmp_path / "fhir"
        request = ExportRequest(
            format="fhir", by="r", out=out, shift_dates=True,
            since=at("2026-01-01 00:00").date(), until=at("2026-12-31 00:00").date(),
        )  # fmt: skip
        run_export(ctx, request)
        manifest = (out / "manifest.json").read_text()
        assert "2026-01-01" not in manifest
        assert "2026-12-31" not in manifest
        assert "transactionTime" not in json.loads(manifest)
        first, second, truth = true_difference(ctx, two_patients)
        resources = {
            "QuestionnaireResponse": "authored",
            "Observation": "effectiveDateTime",
        }
        for kind, time_field in resources.items():
            lines = (out / f"{kind}.ndjson").read_text().splitlines()
            rows = [
                {
                    "patient": item["subject"]["reference"],
                    "time": item[time_field],
                    "id": item["id"],
                    "kind": item["code"]["text"] if "code" in item else "",
                }
                for item in map(json.loads, lines)
            ]
            by_kind: dict[str, list[dict[str, str]]] = {}
            for row in rows:
                by_kind.setdefault(row["kind"], []).append(row)
            patients = (f"Patient/{first}", f"Patient/{second}")
            for same_kind in by_kind.values():
                for name, a, b in attacks(same_kind, patients, "patient", "time"):
                    assert not recovered(offset_bounds(a, b), truth), (kind, name)


def test_attack_helpers_detect_a_leak() -> None:
    """The bounds pin the difference when keys follow real time (helpers are not vacuous)."""
    base = datetime.fromisoformat("2026-01-05T18:00:00+00:00")
    real_a = [base + timedelta(days=2 * i) for i in range(5)]
    real_b = [base + timedelta(days=2 * i + 1) for i in range(5)]
    a = [(t, t + timedelta(days=40)) for t in real_a]
    b = [(t, t - timedelta(days=100)) for t in real_b]
    assert recovered(offset_bounds(a, b), 140.0)
    assert not recovered(offset_bounds(a, b), 10.0)
