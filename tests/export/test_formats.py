"""Every export format on a small clinic with hand-computed values (clinical spec §2, §5)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from bot.clock import FixedClock
from bot.context import AppContext
from bot.domain import scoring
from bot.domain.instruments import ITEM_CODES
from bot.export import fhir
from bot.export.columns import LONG_COLUMNS, WIDE_COLUMNS, CsvLines, long_rows
from bot.export.pseudonyms import Pseudonymizer
from bot.export.records import (
    ExportRecord,
    ExportStatus,
    LabValue,
    RecordBuilder,
    ResponseRules,
    WideText,
    basdai_responses,
)
from bot.export.service import DURATION_ITEM, ExportRequest, baselines_of, run_export
from bot.export.tables import CSV_FORMATTERS, write_long_csv, write_wide_csv
from bot.services import labs as lab_service
from storage import exports
from storage.exports import AnswerRow
from tests.export.conftest import (
    BASELINE,
    BASELINE_ASDAS_CRP,
    BASELINE_BASDAI,
    BOB_ASDAS_CRP,
    BOB_BASDAI,
    FOLLOW_UP_ASDAS_CRP,
    FOLLOW_UP_ASDAS_ESR,
    FOLLOW_UP_BASDAI,
    NURSE,
    Dataset,
    at,
    csv_rows,
    db_id,
    export_csv,
    exported_id,
    run_questionnaire,
    wide_by_id,
)

FHIR_MODELS = {
    "Patient": Patient,
    "Questionnaire": Questionnaire,
    "QuestionnaireResponse": QuestionnaireResponse,
    "Observation": Observation,
    "MedicationStatement": MedicationStatement,
}


def close(exported: str, expected: Decimal) -> bool:
    """An exported unrounded score equals the hand value to far beyond clinical resolution."""
    return abs(Decimal(exported) - expected) < Decimal("1e-24")


def exported_ids(dataset: Dataset) -> set[int]:
    """Administrations the small clinic should export (not deleted, not after withdrawal, not
    open without answers)."""
    return {
        dataset.admin[key]
        for key in (
            "alice_baseline",
            "alice_follow_up",
            "bob_floored",
            "bob_partial",
            "bob_missed",
            "bob_open_started",
            "dan_before",
        )
    }


class TestWideCsv:
    def test_header_is_exactly_the_issue_columns(self, ctx: AppContext, dataset: Dataset) -> None:
        """The header lists the wide columns in the documented order."""
        text, _ = export_csv(ctx, "wide")
        assert text.splitlines()[0].split(",") == [
            "patient_pseudonym", "administration_id", "scheduled_for", "completed_at", "status",
            "language", "instrument_version", "q1_fatigue", "q2_back_pain", "q3_peripheral_pain",
            "q4_enthesitis", "q5_stiffness_severity", "q6_stiffness_duration",
            "q6_stiffness_minutes", "patient_global", "basdai", "basdai_active", "crp_mg_l",
            "crp_drawn_at", "crp_floored", "asdas_crp", "asdas_crp_state", "esr_mm_h",
            "esr_drawn_at", "asdas_esr", "asdas_esr_state", "basdai50",
            "basdai_asas_eular_response",
        ]  # fmt: skip

    def test_one_row_per_exported_administration(self, ctx: AppContext, dataset: Dataset) -> None:
        """Completed, partial and missed administrations each have one row; nothing else."""
        text, result = export_csv(ctx, "wide")
        rows = wide_by_id(text)
        assert set(rows) == exported_ids(dataset)
        assert result.rows == len(rows) == 7

    def test_worked_example_baseline(self, ctx: AppContext, dataset: Dataset) -> None:
        """The published baseline: BASDAI 3.8, ASDAS-CRP 3.876 (very high) with CRP 64.6 mg/L."""
        row = wide_by_id(export_csv(ctx, "wide")[0])[dataset.admin["alice_baseline"]]
        assert row["status"] == "completed"
        assert row["scheduled_for"] == "2026-01-05T18:00:00Z"
        assert row["completed_at"] == "2026-01-05T19:08:00Z"
        assert row["language"] == "en"
        assert row["instrument_version"] == "basdai-1994+asdas-pg-v1"
        assert [row[name] for name in ("q1_fatigue", "q2_back_pain", "q3_peripheral_pain")] == [
            "6",
            "5",
            "0",
        ]
        assert row["q6_stiffness_duration"] == "5"
        assert row["q6_stiffness_minutes"] == "60"
        assert row["patient_global"] == "5"
        assert close(row["basdai"], BASELINE_BASDAI)
        assert row["basdai_active"] == "false"
        assert row["crp_mg_l"] == "64.6"
        assert row["crp_drawn_at"] == "2026-01-07T09:30:00Z"
        assert row["crp_floored"] == "false"
        assert close(row["asdas_crp"], BASELINE_ASDAS_CRP)
        assert scoring.display_round(row["asdas_crp"]) == "3.9"
        assert row["asdas_crp_state"] == "very high disease activity"
        assert row["esr_mm_h"] == row["esr_drawn_at"] == row["asdas_esr"] == ""
        assert row["asdas_esr_state"] == ""

    def test_worked_example_follow_up_with_esr(self, ctx: AppContext, dataset: Dataset) -> None:
        """Six months later: BASDAI 1.4, ASDAS-CRP 1.767 (low), ASDAS-ESR exactly 1.61."""
        row = wide_by_id(export_csv(ctx, "wide")[0])[dataset.admin["alice_follow_up"]]
        assert row["q1_fatigue"] == "2"  # the corrected answer, not the first one
        assert row["q6_stiffness_minutes"] == "12"
        assert row["q6_stiffness_duration"] == "1"
        assert close(row["basdai"], FOLLOW_UP_BASDAI)
        assert close(row["asdas_crp"], FOLLOW_UP_ASDAS_CRP)
        assert row["asdas_crp_state"] == "low disease activity"
        assert row["esr_mm_h"] == "16"
        assert row["esr_drawn_at"] == "2026-06-30T08:15:00Z"
        assert Decimal(row["asdas_esr"]) == FOLLOW_UP_ASDAS_ESR
        assert row["asdas_esr"] == "1.61"
        assert row["asdas_esr_state"] == "low disease activity"

    def test_basdai_responses_against_the_baseline(self, ctx: AppContext, dataset: Dataset) -> None:
        """BASDAI50 and the ASAS/EULAR response in their own columns (spec §6): empty at the
        baseline, both met at the follow-up (BASDAI 3.8 → 1.4)."""
        rows = wide_by_id(export_csv(ctx, "wide")[0])
        baseline, follow_up = (
            rows[dataset.admin[k]] for k in ("alice_baseline", "alice_follow_up")
        )
        assert (baseline["basdai50"], baseline["basdai_asas_eular_response"]) == ("", "")
        assert (follow_up["basdai50"], follow_up["basdai_asas_eular_response"]) == ("true", "true")

    def test_asas_eular_response_without_halving(self) -> None:
        """A fall of 2 points that is not half the baseline meets only the ASAS/EULAR rule."""
        assert basdai_responses(Decimal("6"), Decimal("4")) == (False, True)
        assert basdai_responses(Decimal("6"), Decimal("3")) == (True, True)
        assert basdai_responses(Decimal("6"), Decimal("4.5")) == (False, False)

    def test_responses_looked_up_are_the_rules(self) -> None:
        """An export's table of responses answers every pair as the rules do, for decimals and
        for the text the wide table reads, also once it has started again empty."""

        class Small(ResponseRules):
            LIMIT = 5

        values = [Decimal("0"), Decimal("2"), Decimal("3.8"), Decimal("6"), Decimal("4.5")]
        values += ["1.4", "3", "4", "10", None]
        # Exactly half or two points apart, at the last place kept and beyond it, -0, and
        # more places than an exact integer keeps (left to the rules).
        values += [Decimal("1.9"), Decimal("-0"), "2.000", Decimal("1E+1"), Decimal("7.6")]
        values += ["0.00000000000000000001", "0.00000000000000000002", Decimal("5.9")]
        values += [Decimal("4.000000000000000000001"), "8.000000000000000000002", "3.95"]
        for rules in (ResponseRules(), Small()):
            for _ in range(2):
                for baseline in values:
                    for basdai in values:
                        assert rules(baseline, basdai) == basdai_responses(baseline, basdai)

    @pytest.mark.parametrize("refused", ["10.5", Decimal("-1"), "x", Decimal("NaN")])
    def test_responses_refuse_what_the_rules_refuse(self, refused: Decimal | str) -> None:
        """A stored BASDAI the rules refuse raises as the rules raise, whichever side it is on,
        however often it is asked."""
        rules = ResponseRules()
        for _ in range(2):
            for baseline, basdai in ((refused, "3"), ("3", refused)):
                try:
                    basdai_responses(baseline, basdai)
                except ValueError as refusal:
                    expected = str(refusal)
                else:
                    pytest.fail(f"the rules accepted {refused!r}")
                with pytest.raises(ValueError, match=re.escape(expected)):
                    rules(baseline, basdai)

    def test_scores_are_unrounded(self, ctx: AppContext, dataset: Dataset) -> None:
        """ASDAS is written with every stored digit, so researchers round as they choose."""
        row = wide_by_id(export_csv(ctx, "wide")[0])[dataset.admin["alice_baseline"]]
        assert len(row["asdas_crp"].split(".")[1]) > 30

    def test_crp_below_detection_limit_is_floored(self, ctx: AppContext, dataset: Dataset) -> None:
        """CRP "<0.5" is written as measured and flagged; ASDAS-CRP used 2 mg/L (spec §2)."""
        row = wide_by_id(export_csv(ctx, "wide")[0])[dataset.admin["bob_floored"]]
        assert row["crp_mg_l"] == "0.5"
        assert row["crp_floored"] == "true"
        assert close(row["basdai"], BOB_BASDAI)
        assert close(row["asdas_crp"], BOB_ASDAS_CRP)
        assert row["language"] == "zh"

    def test_partial_and_missed_have_empty_cells(self, ctx: AppContext, dataset: Dataset) -> None:
        """Partial rows keep their answers; scores and items never given stay empty."""
        rows = wide_by_id(export_csv(ctx, "wide")[0])
        partial = rows[dataset.admin["bob_partial"]]
        missed = rows[dataset.admin["bob_missed"]]
        started = rows[dataset.admin["bob_open_started"]]
        assert (partial["status"], partial["q1_fatigue"], partial["q2_back_pain"]) == (
            "partial",
            "7",
            "6",
        )
        assert partial["q3_peripheral_pain"] == partial["basdai"] == partial["completed_at"] == ""
        assert missed["status"] == "missed"
        assert all(missed[name] == "" for name in ("q1_fatigue", "basdai", "crp_mg_l"))
        assert started["status"] == "partial"

    def test_open_without_answers_is_not_exported(self, ctx: AppContext, dataset: Dataset) -> None:
        """A questionnaire still open and unanswered has nothing to report yet."""
        rows = wide_by_id(export_csv(ctx, "wide")[0])
        assert dataset.admin["bob_open_unanswered"] not in rows

    def test_physician_filter(self, ctx: AppContext, dataset: Dataset) -> None:
        """--physician keeps only that physician's patients."""
        rows = wide_by_id(export_csv(ctx, "wide", physician_id=dataset.physician_b)[0])
        assert set(rows) == {
            dataset.admin[key]
            for key in ("bob_floored", "bob_partial", "bob_missed", "bob_open_started")
        }

    def test_since_until_are_whole_utc_days(self, ctx: AppContext, dataset: Dataset) -> None:
        """--since and --until include both days, compared with the scheduled slot."""
        since = datetime(2026, 2, 2).date()
        until = datetime(2026, 2, 9).date()
        rows = wide_by_id(export_csv(ctx, "wide", since=since, until=until)[0])
        assert set(rows) == {
            dataset.admin["bob_floored"],
            dataset.admin["bob_partial"],
            dataset.admin["dan_before"],
        }

    @pytest.mark.parametrize("shift_dates", [False, True])
    def test_cells_are_the_columns_values(
        self, ctx: AppContext, clock: FixedClock, dataset: Dataset, shift_dates: bool
    ) -> None:
        """Every cell of the wide CSV, written from the text storage reads, is what its column
        reads from the typed export record, formatted for CSV: also a time with a fraction of a
        second (cut, never rounded) and a value stored as 1E+2 would print (100)."""
        run_questionnaire(
            ctx, clock, patient_id=dataset.alice, slot=at("2026-09-07 18:00:59.999999"),
            language="en", answers=BASELINE, outcome="completed",
        )  # fmt: skip
        clock.set(at("2026-09-08 12:00"))
        lab_service.add_lab_values(
            ctx, clinic_ref="MRN-ALPHA-7731", drawn="2026-09-08T09:30:00Z", entered_by=NURSE,
            crp="100",
        )  # fmt: skip
        text, _ = export_csv(ctx, "wide", shift_dates=shift_dates)
        written = list(csv.reader(line for line in text.splitlines() if not line.startswith("#")))
        key = ctx.settings.pseudonym_key
        assert key is not None
        with ctx.session() as session:
            covered = exports.covered_patients(session=session, scope=exports.ExportScope())
        builder = RecordBuilder(
            Pseudonymizer(key.get_secret_value().encode("utf-8")),
            shift_dates=shift_dates,
            baselines=baselines_of(
                ctx, exports.ExportScope(), [patient.patient_id for patient in covered]
            ),
        )
        with ctx.session() as session:
            rows = exports.fetch_administration_batch(
                session=session, scope=exports.ExportScope(),
                patient_ids=[patient.patient_id for patient in covered],
                item_codes=ITEM_CODES, duration_item=DURATION_ITEM,
            )  # fmt: skip
        records = sorted((builder.record(row) for row in rows), key=lambda r: r.pseudonym)
        expected = [
            [CSV_FORMATTERS[column.type](column.value(record)) for column in WIDE_COLUMNS]
            for record in records
        ]
        assert written[1:] == expected
        latest = wide_by_id(text)[max(row.administration_id for row in rows)]
        assert latest["completed_at"].endswith(":59Z")
        assert latest["crp_mg_l"] == "100"

    def test_cells_to_quote_are_written_as_the_csv_module_writes_them(self) -> None:
        """A cell with a comma, a double quote or a line break is quoted exactly as the csv
        module quotes it, also when the rest of its batch needs no quoting."""
        plain = WideText(*(f"cell{number}" for number in range(len(WIDE_COLUMNS))))
        batches = [
            [plain, plain],
            [plain, plain._replace(language='say "hi"', basdai="")],
            [plain._replace(instrument_version="v1\nv2")],
            [plain._replace(status="a,b")],
        ]
        sink = io.BytesIO()
        rows, digest = write_wide_csv(sink, batches, shifted=False)
        assert sink.getvalue().decode("utf-8") == csv_module_text(WIDE_COLUMNS, batches)
        assert rows == 6
        assert digest == hashlib.sha256(sink.getvalue()).hexdigest()

    def test_small_batches_give_the_same_export(self, ctx: AppContext, dataset: Dataset) -> None:
        """Keyset pagination neither drops nor repeats rows, whatever the batch size."""
        whole, _ = export_csv(ctx, "wide")
        sink = io.BytesIO()
        run_export(ctx, ExportRequest(format="wide", by="r"), stdout=sink, batch_size=2)
        assert sink.getvalue().decode() == whole


def csv_module_text(columns: Sequence[Any], batches: Sequence[Sequence[Sequence[Any]]]) -> str:
    """What the csv module writes for a header of `columns` and then every batch's rows."""
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow([column.name for column in columns])
    for batch in batches:
        writer.writerows(batch)
    return expected.getvalue()


class TestLongCsv:
    def test_cells_to_quote_are_written_as_the_csv_module_writes_them(self) -> None:
        """Rows already written as text go out as they are only when the csv module would write
        the same; a batch with a cell to quote is written from its cells instead."""
        width = len(LONG_COLUMNS)
        plain = tuple(f"cell{number}" for number in range(width))
        batches = [
            [plain, plain],
            [plain, (*plain[:4], "a,b", *plain[5:])],
            [(*plain[:-1], 'say "hi"')],
            [(*plain[:2], "x\ny", *plain[3:])],
        ]

        def lines(cells: list[tuple[str, ...]]) -> CsvLines:
            text = "".join(",".join(row) + "\n" for row in cells)
            return CsvLines(text, len(cells), lambda: cells)

        sink = io.BytesIO()
        rows, digest = write_long_csv(sink, [lines(batch) for batch in batches], shifted=False)
        assert sink.getvalue().decode("utf-8") == csv_module_text(LONG_COLUMNS, batches)
        assert rows == 6
        assert digest == hashlib.sha256(sink.getvalue()).hexdigest()

    def test_header(self, ctx: AppContext, dataset: Dataset) -> None:
        """The header lists the long columns in the documented order."""
        text, _ = export_csv(ctx, "long")
        assert text.splitlines()[0].split(",") == [column.name for column in LONG_COLUMNS]

    def test_one_row_per_answer_lab_value_and_score(
        self, ctx: AppContext, dataset: Dataset
    ) -> None:
        """The worked example's follow-up has 8 answer rows, 2 lab rows and 3 score rows."""
        text, result = export_csv(ctx, "long")
        rows = csv_rows(text)
        follow_up = [
            row
            for row in rows
            if db_id(row["administration_id"]) == dataset.admin["alice_follow_up"]
        ]
        kinds = [row["record_type"] for row in follow_up]
        assert (kinds.count("answer"), kinds.count("lab"), kinds.count("score")) == (8, 2, 3)
        assert result.rows == len(rows) == 49

    def test_values_units_and_versions(self, ctx: AppContext, dataset: Dataset) -> None:
        """A corrected answer is version 2 at its correction time; labs carry their units."""
        rows = csv_rows(export_csv(ctx, "long")[0])
        follow_up = {
            row["variable"]: row
            for row in rows
            if db_id(row["administration_id"]) == dataset.admin["alice_follow_up"]
        }
        assert follow_up["q1_fatigue"]["value"] == "2"
        assert follow_up["q1_fatigue"]["answer_version"] == "2"
        assert follow_up["q1_fatigue"]["observed_at"] == "2026-06-29T19:08:00Z"
        assert follow_up["q2_back_pain"]["answer_version"] == "1"
        assert follow_up["q6_stiffness_minutes"]["unit"] == "min"
        assert follow_up["crp_mg_l"]["unit"] == "mg/L"
        assert follow_up["crp_mg_l"]["observed_at"] == "2026-06-30T08:15:00Z"
        assert follow_up["esr_mm_h"]["unit"] == "mm/h"
        assert close(follow_up["asdas_crp"]["value"], FOLLOW_UP_ASDAS_CRP)
        assert follow_up["asdas_esr"]["value"] == "1.61"
        assert follow_up["basdai"]["record_type"] == "score"
        assert follow_up["basdai"]["answer_version"] == ""

    def test_floor_flag_on_crp_rows(self, ctx: AppContext, dataset: Dataset) -> None:
        """crp_floored is set on the CRP and ASDAS-CRP rows only."""
        rows = csv_rows(export_csv(ctx, "long")[0])
        bob = [r for r in rows if db_id(r["administration_id"]) == dataset.admin["bob_floored"]]
        flagged = {row["variable"] for row in bob if row["crp_floored"] == "true"}
        assert flagged == {"crp_mg_l", "asdas_crp"}
        assert all(row["crp_floored"] == "" for row in bob if row["record_type"] == "answer")

    @pytest.mark.parametrize("shift_dates", [False, True])
    def test_cells_are_the_long_rows_formatted(
        self, ctx: AppContext, clock: FixedClock, dataset: Dataset, shift_dates: bool
    ) -> None:
        """Every cell of the long CSV, written from the text storage reads, is what the long
        rows of the typed export records hold, formatted by the long columns' types: also a
        time with a fraction of a second (cut, never rounded) and a value stored as 1E+2."""
        run_questionnaire(
            ctx, clock, patient_id=dataset.alice, slot=at("2026-09-07 18:00:59.999999"),
            language="en", answers=BASELINE, outcome="completed",
        )  # fmt: skip
        clock.set(at("2026-09-08 12:00"))
        lab_service.add_lab_values(
            ctx, clinic_ref="MRN-ALPHA-7731", drawn="2026-09-08T09:30:00Z", entered_by=NURSE,
            crp="100",
        )  # fmt: skip
        text, result = export_csv(ctx, "long", shift_dates=shift_dates)
        written = list(csv.reader(line for line in text.splitlines() if not line.startswith("#")))
        key = ctx.settings.pseudonym_key
        assert key is not None
        with ctx.session() as session:
            covered = exports.covered_patients(session=session, scope=exports.ExportScope())
        patient_ids = [patient.patient_id for patient in covered]
        builder = RecordBuilder(
            Pseudonymizer(key.get_secret_value().encode("utf-8")),
            shift_dates=shift_dates,
            baselines=baselines_of(ctx, exports.ExportScope(), patient_ids),
        )
        with ctx.session() as session:
            rows = exports.fetch_administration_batch(
                session=session, scope=exports.ExportScope(), patient_ids=patient_ids,
                item_codes=ITEM_CODES, duration_item=DURATION_ITEM, answer_details=True,
            )  # fmt: skip
        records = sorted((builder.record(row) for row in rows), key=lambda r: r.pseudonym)
        expected = [
            [
                CSV_FORMATTERS[column.type](value)
                for column, value in zip(LONG_COLUMNS, long_row, strict=True)
            ]
            for record in records
            for long_row in long_rows(record)
        ]
        assert {row[2] for row in expected} == {"answer", "lab", "score"}
        assert written[1:] == expected
        assert result.rows == len(expected)
        assert ["crp_mg_l", "100"] in [row[3:5] for row in written]

    def test_variables_are_wide_column_names(self, ctx: AppContext, dataset: Dataset) -> None:
        """Every long variable names a wide column, so both tables share one meaning."""
        rows = csv_rows(export_csv(ctx, "long")[0])
        wide_names = {column.name for column in WIDE_COLUMNS}
        assert {row["variable"] for row in rows} <= wide_names


class TestParquet:
    def test_typed_wide_table(self, ctx: AppContext, dataset: Dataset, tmp_path: Path) -> None:
        """The Parquet file has the wide columns with numbers, booleans and UTC timestamps."""
        out = tmp_path / "export.parquet"
        result = run_export(ctx, ExportRequest(format="parquet", by="r", out=out))
        table = pq.read_table(out)
        assert table.column_names == [column.name for column in WIDE_COLUMNS]
        assert result.rows == table.num_rows == 7
        assert str(table.schema.field("administration_id").type) == "string"
        assert str(table.schema.field("basdai").type) == "double"
        assert str(table.schema.field("crp_floored").type) == "bool"
        assert str(table.schema.field("completed_at").type) == "timestamp[us, tz=UTC]"
        rows = {db_id(row["administration_id"]): row for row in table.to_pylist()}
        baseline = rows[dataset.admin["alice_baseline"]]
        assert baseline["basdai"] == pytest.approx(3.8)
        assert baseline["asdas_crp"] == pytest.approx(float(BASELINE_ASDAS_CRP), abs=1e-12)
        assert baseline["basdai_active"] is False
        assert baseline["completed_at"].isoformat() == "2026-01-05T19:08:00+00:00"
        assert rows[dataset.admin["bob_floored"]]["crp_floored"] is True
        assert rows[dataset.admin["bob_missed"]]["basdai"] is None
        assert table.schema.metadata[b"spondybot.dates_shifted"] == b"false"

    @pytest.mark.parametrize("shift_dates", [False, True])
    def test_values_are_the_columns_values(
        self,
        ctx: AppContext,
        clock: FixedClock,
        dataset: Dataset,
        tmp_path: Path,
        shift_dates: bool,
    ) -> None:
        """Every Parquet value, read from storage's text and microseconds, is what its column
        reads from the typed export record (decimals as doubles): also a time with a fraction
        of a second, kept to the microsecond, and a value stored as 1E+2."""
        run_questionnaire(
            ctx, clock, patient_id=dataset.alice, slot=at("2026-09-07 18:00:59.999999"),
            language="en", answers=BASELINE, outcome="completed",
        )  # fmt: skip
        clock.set(at("2026-09-08 12:00"))
        lab_service.add_lab_values(
            ctx, clinic_ref="MRN-ALPHA-7731", drawn="2026-09-08T09:30:00Z", entered_by=NURSE,
            crp="100",
        )  # fmt: skip
        out = tmp_path / "export.parquet"
        request = ExportRequest(format="parquet", by="r", out=out, shift_dates=shift_dates)
        run_export(ctx, request)
        written = [tuple(row.values()) for row in pq.read_table(out).to_pylist()]
        key = ctx.settings.pseudonym_key
        assert key is not None
        with ctx.session() as session:
            covered = exports.covered_patients(session=session, scope=exports.ExportScope())
        patient_ids = [patient.patient_id for patient in covered]
        builder = RecordBuilder(
            Pseudonymizer(key.get_secret_value().encode("utf-8")),
            shift_dates=shift_dates,
            baselines=baselines_of(ctx, exports.ExportScope(), patient_ids),
        )
        with ctx.session() as session:
            rows = exports.fetch_administration_batch(
                session=session, scope=exports.ExportScope(), patient_ids=patient_ids,
                item_codes=ITEM_CODES, duration_item=DURATION_ITEM,
            )  # fmt: skip
        records = sorted((builder.record(row) for row in rows), key=lambda r: r.pseudonym)

        def typed(value: object) -> object:
            return float(value) if isinstance(value, Decimal) else value

        expected = [
            tuple(typed(column.value(record)) for column in WIDE_COLUMNS) for record in records
        ]
        assert written == expected
        times = [moment for row in written for moment in row if isinstance(moment, datetime)]
        assert any(moment.microsecond == 999999 for moment in times)
        crp_at = [column.name for column in WIDE_COLUMNS].index("crp_mg_l")
        assert 100.0 in [row[crp_at] for row in written]

    def test_fields_carry_their_documentation(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """Each Parquet field has the meaning and unit from the column definition."""
        out = tmp_path / "export.parquet"
        run_export(ctx, ExportRequest(format="parquet", by="r", out=out))
        schema = pq.read_schema(out)
        for column in WIDE_COLUMNS:
            metadata = schema.field(column.name).metadata
            assert metadata[b"meaning"].decode() == column.meaning
            assert metadata[b"unit"].decode() == column.unit


def read_fhir(directory: Path) -> dict[str, list[dict[str, object]]]:
    """Resources of an FHIR export by type, each validated with fhir.resources (R4B models)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    resources: dict[str, list[dict[str, object]]] = {}
    for entry in manifest["output"]:
        lines = (directory / entry["url"]).read_text().splitlines()
        assert len(lines) == entry["count"]
        for line in lines:
            FHIR_MODELS[entry["type"]].model_validate_json(line)
            resource = json.loads(line, parse_float=Decimal)
            assert resource["resourceType"] == entry["type"]
            resources.setdefault(entry["type"], []).append(resource)
    return resources


class TestFhir:
    @pytest.fixture
    def fhir_dir(self, ctx: AppContext, dataset: Dataset, tmp_path: Path) -> Path:
        out = tmp_path / "fhir"
        run_export(ctx, ExportRequest(format="fhir", by="r", out=out))
        return out

    def test_every_resource_validates(self, fhir_dir: Path) -> None:
        """Every line of every NDJSON file is a valid FHIR resource of its file's type."""
        resources = read_fhir(fhir_dir)
        assert {kind: len(items) for kind, items in resources.items()} == {
            "Patient": 3,
            "Questionnaire": 1,
            "QuestionnaireResponse": 7,
            "Observation": 14,
        }

    def test_manifest_lists_files_with_hashes(self, fhir_dir: Path) -> None:
        """The manifest names each file with its count and SHA-256, and says dates are real."""
        import hashlib

        manifest = json.loads((fhir_dir / "manifest.json").read_text())
        spondybot = manifest["extension"]["spondybot"]
        assert spondybot["datesShifted"] is False
        assert spondybot["fhirVersion"] == "4.0.1"
        for entry in manifest["output"]:
            data = (fhir_dir / entry["url"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == spondybot["sha256"][entry["url"]]
        assert sorted(p.name for p in fhir_dir.iterdir()) == [
            "Observation.ndjson",
            "Patient.ndjson",
            "Questionnaire.ndjson",
            "QuestionnaireResponse.ndjson",
            "manifest.json",
        ]

    def test_patients_carry_only_the_pseudonym(self, fhir_dir: Path) -> None:
        """A Patient has an id and one identifier, both the pseudonym, and nothing else."""
        for patient in read_fhir(fhir_dir)["Patient"]:
            assert set(patient) == {"resourceType", "id", "identifier"}
            assert patient["identifier"] == [
                {
                    "system": "urn:spondybot:fhir:identifier:patient-pseudonym",
                    "value": patient["id"],
                }
            ]

    def test_labs_have_loinc_and_ucum(self, fhir_dir: Path) -> None:
        """CRP is LOINC 1988-5 in mg/L, ESR LOINC 30341-2 in mm/h; "<0.5" keeps its comparator."""
        observations = read_fhir(fhir_dir)["Observation"]
        labs = [o for o in observations if o["code"]["coding"][0]["system"] == "http://loinc.org"]
        by_code: dict[str, list[dict[str, object]]] = {}
        for lab in labs:
            by_code.setdefault(lab["code"]["coding"][0]["code"], []).append(lab)
        assert sorted(by_code) == ["1988-5", "30341-2"]
        assert {lab["valueQuantity"]["code"] for lab in by_code["1988-5"]} == {"mg/L"}
        assert {lab["valueQuantity"]["code"] for lab in by_code["30341-2"]} == {"mm/h"}
        assert all(lab["valueQuantity"]["system"] == "http://unitsofmeasure.org" for lab in labs)
        values = {lab["valueQuantity"]["value"]: lab for lab in by_code["1988-5"]}
        assert values[Decimal("0.5")]["valueQuantity"]["comparator"] == "<"
        assert "comparator" not in values[Decimal("64.6")]["valueQuantity"]

    def test_scores_use_the_local_code_system(self, fhir_dir: Path) -> None:
        """BASDAI and ASDAS observations carry the local score codes, values and states."""
        observations = {o["id"]: o for o in read_fhir(fhir_dir)["Observation"]}
        first, second = exported_id("administration", 1), exported_id("administration", 2)
        baseline = observations[f"asdas-crp-{first}"]
        assert baseline["code"]["coding"][0] == {
            "system": "urn:spondybot:fhir:CodeSystem:score",
            "code": "asdas-crp",
            "display": "ASDAS-CRP",
        }
        value = baseline["valueQuantity"]["value"]
        assert abs(value - BASELINE_ASDAS_CRP) < Decimal("1e-16")
        assert baseline["interpretation"][0]["coding"][0]["code"] == "very-high"
        assert baseline["derivedFrom"] == [
            {"reference": f"QuestionnaireResponse/qr-{first}"},
            {"reference": f"Observation/crp-{exported_id('lab', 1)}"},
        ]
        assert baseline["component"][0]["valueBoolean"] is False
        assert observations[f"basdai-{first}"]["valueQuantity"]["value"] == Decimal("3.8")
        assert observations[f"asdas-esr-{second}"]["valueQuantity"]["value"] == Decimal("1.61")

    def test_responses_reflect_each_administration(self, fhir_dir: Path, dataset: Dataset) -> None:
        """Completed, stopped (missed) and in-progress responses; minutes as a UCUM quantity."""
        responses = {
            db_id(r["identifier"]["value"]): r for r in read_fhir(fhir_dir)["QuestionnaireResponse"]
        }
        follow_up = responses[dataset.admin["alice_follow_up"]]
        assert follow_up["status"] == "completed"
        answers = {item["linkId"]: item["answer"][0] for item in follow_up["item"]}
        assert answers["q1"] == {"valueInteger": 2}
        assert answers["q6"]["valueQuantity"]["value"] == 12
        assert answers["q6"]["valueQuantity"]["code"] == "min"
        missed = responses[dataset.admin["bob_missed"]]
        assert missed["status"] == "stopped"
        assert "item" not in missed
        assert "authored" not in missed
        assert responses[dataset.admin["bob_partial"]]["status"] == "stopped"
        assert responses[dataset.admin["bob_open_started"]]["status"] == "in-progress"

    def test_references_resolve(self, fhir_dir: Path) -> None:
        """Every subject and derivedFrom reference points at a resource in the export."""
        resources = read_fhir(fhir_dir)
        known = {f"{kind}/{item['id']}" for kind, items in resources.items() for item in items}
        for kind in ("QuestionnaireResponse", "Observation"):
            for item in resources[kind]:
                assert item["subject"]["reference"] in known
                for reference in item.get("derivedFrom", []):
                    assert reference["reference"] in known


class TestFhirResponseStatus:
    def record(self, *, completed: bool, corrected_after: bool) -> ExportRecord:
        """A completed (or missed) administration whose q1 may have changed afterwards."""
        done = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)
        answered = done + timedelta(hours=2) if corrected_after else done - timedelta(minutes=5)
        answer = AnswerRow("q1", Decimal(4), Decimal(4), 2, answered)
        return ExportRecord(
            pseudonym="0" * 24,
            administration_id=exported_id("administration", 41),
            scheduled_for=done - timedelta(hours=1),
            completed_at=done if completed else None,
            status=ExportStatus.COMPLETED if completed else ExportStatus.PARTIAL,
            stored_status="completed" if completed else "missed",
            language="en",
            instrument_version="basdai-1994+asdas-pg-v1",
            scores={"q1": Decimal(4)},
            stiffness_minutes=None,
            answers={"q1": answer},
            basdai=None,
            asdas_crp=None,
            crp_floored=None,
            asdas_esr=None,
            crp=None,
            esr=None,
        )

    def test_answer_changed_after_completion_is_amended(self) -> None:
        """A response corrected after it was completed says "amended" and still validates."""
        resource = fhir.questionnaire_response(self.record(completed=True, corrected_after=True))
        assert resource["status"] == "amended"
        QuestionnaireResponse.model_validate_json(fhir.dumps(resource))

    def test_completed_without_later_change(self) -> None:
        """Answers given before completion leave the response "completed"."""
        resource = fhir.questionnaire_response(self.record(completed=True, corrected_after=False))
        assert resource["status"] == "completed"
        assert resource["authored"] == "2026-03-02T19:00:00Z"

    def test_partial_missed_is_stopped_and_authored_at_last_answer(self) -> None:
        """A missed response with answers is "stopped", authored when last answered."""
        resource = fhir.questionnaire_response(self.record(completed=False, corrected_after=False))
        assert resource["status"] == "stopped"
        assert resource["authored"] == "2026-03-02T18:55:00Z"


class TestFhirDecimals:
    def test_at_most_seventeen_fractional_digits(self) -> None:
        """Unrounded scores are cut to FHIR's 17 fractional digits, written as JSON numbers."""
        value = Decimal("3.876473903651025147360266234427734798785")
        assert fhir.fhir_decimal(value) == "3.87647390365102515"
        lab = LabValue(7, "crp", value, False, datetime(2026, 3, 2, tzinfo=UTC))
        line = fhir.dumps(fhir.lab_observation("0" * 24, lab))
        assert '"valueQuantity":{"value":3.87647390365102515,"unit":"mg/L"' in line
        Observation.model_validate_json(line)
        assert fhir.fhir_decimal(Decimal("2.500")) == "2.5"
        assert fhir.fhir_decimal(Decimal("0E-5")) == "0"
