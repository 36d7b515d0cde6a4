"""Importing a lab's CSV export: good lines stored, bad ones reported, re-imports add nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.context import AppContext
from bot.domain.labs import LabInputError
from bot.services import labs
from storage import audit
from tests.labs.conftest import Clinic, asdas_crp_of, questionnaire, score_of

DATA = Path(__file__).parent / "data"
MISTAKES = (DATA / "lab_export_mistakes.csv").read_bytes()

# Line of the fixture file → what becomes of it, and why.
EXPECTED: dict[int, tuple[str, str | None]] = {
    2: ("stored", None),
    3: ("stored", None),
    4: ("stored", None),
    5: ("stored", None),
    6: ("stored", None),
    8: ("refused", "patient_unknown"),
    9: ("refused", "value_negative"),
    10: ("refused", "crp_implausible"),
    11: ("refused", "crp_implausible"),
    12: ("refused", "esr_implausible"),
    13: ("refused", "date_future"),
    14: ("refused", "date_ambiguous"),
    15: ("refused", "date_invalid"),
    16: ("refused", "value_not_a_number"),
    17: ("refused", "value_missing"),
    18: ("refused", "unit_missing"),
    19: ("refused", "unit_unknown"),
    20: ("refused", "analyte_unknown"),
    21: ("refused", "value_above_range"),
    22: ("refused", "esr_below_limit"),
    23: ("refused", "row_fields"),
    24: ("duplicate", None),
    25: ("refused", "same_sample_differs"),
    26: ("refused", "patient_missing"),
    27: ("refused", "date_missing"),
    28: ("stored", None),
}


def outcomes(report: labs.ImportReport) -> dict[int, tuple[str, str | None]]:
    return {row.line: (row.outcome, row.reason) for row in report.rows}


def run(ctx: AppContext, data: bytes = MISTAKES, *, dry_run: bool = False) -> labs.ImportReport:
    return labs.import_lab_file(ctx, data=data, entered_by="cli:lab", dry_run=dry_run)


class TestImportFileWithMistakes:
    def test_every_line_gets_its_outcome_and_reason(self, ctx: AppContext, clinic: Clinic) -> None:
        """Each data line is stored, a duplicate, or refused with the reason at its line number."""
        report = run(ctx)
        assert outcomes(report) == EXPECTED
        assert (report.stored, report.duplicate, report.refused) == (6, 1, 19)
        duplicate = next(row for row in report.rows if row.line == 24)
        first = next(row for row in report.rows if row.line == 2)
        assert duplicate.lab_id == first.lab_id

    def test_stored_values_are_converted_and_marked(self, ctx: AppContext, clinic: Clinic) -> None:
        """Decimal commas are read, mg/dL converted, "<0,5" and "< 5" marked below the limit,
        and a date with a time kept in clinic time."""
        run(ctx)
        first = labs.list_lab_values(ctx, clinic_ref="MRN-0001")
        assert [(lab.analyte, lab.value_normalised, lab.unit) for lab in first] == [
            ("crp", Decimal("7.59"), "mg/L"),
            ("esr", Decimal("12"), "mm/h"),
            ("crp", Decimal("12"), "mg/dL"),
        ]
        second = labs.list_lab_values(ctx, clinic_ref="MRN-0002")
        assert [(lab.value, lab.below_detection_limit) for lab in second] == [
            (Decimal("3.4"), False),
            (Decimal("0.5"), True),
            (Decimal("5"), True),
        ]
        assert second[1].drawn_at == datetime(2026, 2, 24, 7, 15, tzinfo=UTC)
        assert {lab.source for lab in first + second} == {"csv"}

    def test_reasons_carry_what_was_wrong(self, ctx: AppContext, clinic: Clinic) -> None:
        """A refusal names the offending value, so staff can fix the line."""
        rows = {row.line: row for row in run(ctx).rows}
        assert rows[8].params == {"ref": "MRN-0404"}
        assert rows[10].params == {"value": Decimal("620"), "maximum": Decimal("500")}
        assert rows[11].params["value"] == Decimal("600")
        assert rows[14].params == {"date": "03/02/2026"}
        assert rows[23].params == {"expected": "7", "found": "3"}

    def test_an_interrupted_import_is_finished_by_running_it_again(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """An import that stopped after its first lines (as one killed between transactions
        leaves it) is completed by importing the whole file: nothing is stored twice."""
        first_lines = b"".join(MISTAKES.splitlines(keepends=True)[:6])  # header and lines 2-6
        interrupted = run(ctx, first_lines)
        assert interrupted.stored == 5
        again = run(ctx)
        assert again.stored == 1
        assert again.duplicate == 6
        assert outcomes(again)[28] == ("stored", None)
        assert {outcomes(again)[line] for line in range(2, 7)} == {("duplicate", None)}

    def test_a_file_on_disk_spanning_several_transactions(
        self, ctx: AppContext, clinic: Clinic, tmp_path: Path
    ) -> None:
        """A file longer than one transaction's lines, read from disk line by line: every line
        stored once, reported under its own line number."""
        drawn = [f"2026-01-0{1 + n // 200} {n // 60 % 10:02d}:{n % 60:02d}" for n in range(450)]
        lines = ["patient;test;value;unit;drawn"]
        lines += [f"MRN-0001;CRP;{n % 50 + 1};mg/L;{drawn[n]}" for n in range(450)]
        path = tmp_path / "big.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert labs.IMPORT_BATCH_ROWS < 450
        report = labs.import_lab_file(ctx, data=path, entered_by="cli:lab")
        assert report.stored == 450
        assert [row.line for row in report.rows] == list(range(2, 452))
        assert len(labs.list_lab_values(ctx, clinic_ref="MRN-0001")) == 450

    def test_reimport_adds_nothing(self, ctx: AppContext, clinic: Clinic) -> None:
        """Importing the same file again stores nothing: every stored line is a duplicate."""
        run(ctx)
        again = run(ctx)
        assert (again.stored, again.duplicate, again.refused) == (0, 7, 19)
        assert len(labs.list_lab_values(ctx, clinic_ref="MRN-0001")) == 3
        assert len(labs.list_lab_values(ctx, clinic_ref="MRN-0002")) == 3

    def test_dry_run_writes_nothing_and_reports_the_same(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A dry run reports exactly what the import then does, and stores nothing itself."""
        administration = questionnaire(
            ctx, patient_id=clinic.patient_1, completed_at=datetime(2026, 2, 22, 18, tzinfo=UTC)
        )
        rehearsal = run(ctx, dry_run=True)
        assert rehearsal.dry_run
        assert labs.list_lab_values(ctx, clinic_ref="MRN-0001") == []
        assert asdas_crp_of(ctx, administration) is None
        with ctx.session() as session:
            assert audit.list_events(session=session, entity="lab") == []
        real = run(ctx)
        assert outcomes(rehearsal) == outcomes(real)
        assert rehearsal.recomputed == real.recomputed == 1

    def test_late_labs_complete_earlier_questionnaires(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A questionnaire completed a day before the imported CRP gets its ASDAS-CRP."""
        administration = questionnaire(
            ctx, patient_id=clinic.patient_1, completed_at=datetime(2026, 2, 22, 18, tzinfo=UTC)
        )
        report = run(ctx)
        assert report.recomputed == 1
        record = score_of(ctx, administration)
        assert record.asdas_crp is not None
        assert record.asdas_crp_lab_id == next(r.lab_id for r in report.rows if r.line == 2)
        assert record.asdas_esr is not None

    def test_each_stored_line_is_audited_with_its_line(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """The audit trail says which line of the import each value came from."""
        run(ctx)
        with ctx.session() as session:
            events = audit.list_events(session=session, entity="lab")
        assert len(events) == 6
        assert all(event.actor == "cli:lab" for event in events)
        assert '"line": 2' in (events[0].after or "")


class TestImportFormats:
    def test_comma_separated_with_crlf_and_quoted_decimal_commas(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A comma-separated export with Windows line ends and quoted "7,59" is read."""
        data = (
            b"mrn,date,analyte,value,unit\r\n"
            b'MRN-0001,20.02.2026,CRP,"7,59",mg/l\r\n'
            b"MRN-0001,20.02.2026,ESR,9,mm/h\r\n"
        )
        report = run(ctx, data)
        assert (report.stored, report.refused) == (2, 0)

    def test_reimport_does_not_undo_a_correction(self, ctx: AppContext, clinic: Clinic) -> None:
        """A line corrected with `lab fix` stays corrected when the file is imported again."""
        data = b"patient;drawn;test;value;unit\nMRN-0001;2026-02-20;CRP;75,9;mg/L\n"
        (row,) = run(ctx, data).rows
        assert row.lab_id is not None
        labs.fix_lab_value(ctx, lab_id=row.lab_id, actor="cli:doctor", value="7.59")
        (again,) = run(ctx, data).rows
        assert (again.outcome, again.lab_id) == ("duplicate", row.lab_id)
        (stored,) = labs.list_lab_values(ctx, clinic_ref="MRN-0001")
        assert stored.value_normalised == Decimal("7.59")

    def test_reimport_does_not_bring_back_a_deleted_value(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A deleted value is reported as deleted earlier, not imported again."""
        data = b"patient;drawn;test;value;unit\nMRN-0001;2026-02-20;CRP;75,9;mg/L\n"
        (row,) = run(ctx, data).rows
        assert row.lab_id is not None
        labs.delete_lab_value(ctx, lab_id=row.lab_id, actor="cli:doctor")
        (again,) = run(ctx, data).rows
        assert (again.outcome, again.reason) == ("duplicate", "deleted_earlier")
        assert labs.list_lab_values(ctx, clinic_ref="MRN-0001") == []

    def test_a_value_entered_by_hand_is_recognised(self, ctx: AppContext, clinic: Clinic) -> None:
        """The same sample entered on the command line first is a duplicate in the import."""
        labs.add_lab_values(
            ctx, clinic_ref="MRN-0001", drawn="2026-02-23", entered_by="cli:x", crp="7.59"
        )
        rows = {row.line: row.outcome for row in run(ctx).rows}
        assert rows[2] == "duplicate"

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            (b"", "file_empty"),
            (b"patient;drawn;value;unit\nMRN-0001;2026-02-20;7;mg/L\n", "file_columns_missing"),
            (
                "patient;drawn;test;value;unit\nMRN-0001;2026-02-20;CRP;7;µg/mL\n".encode("cp1252"),
                "file_not_utf8",
            ),
        ],
    )
    def test_an_unusable_file_stores_nothing(
        self, ctx: AppContext, clinic: Clinic, data: bytes, code: str
    ) -> None:
        """A file that is no lab file is refused as a whole."""
        with pytest.raises(LabInputError) as caught:
            run(ctx, data)
        assert caught.value.code == code
        assert labs.list_lab_values(ctx, clinic_ref="MRN-0001") == []
