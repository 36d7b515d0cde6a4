"""Reading lab values as clinics write them: numbers, units, dates, plausibility, `/crp` words."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.domain import labs
from bot.domain.labs import LabInputError, Reading

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
BERLIN = "Europe/Berlin"


def refused(call: object, *args: object, **kwargs: object) -> str:
    """The reason code a call refuses with."""
    assert callable(call)
    with pytest.raises(LabInputError) as caught:
        call(*args, **kwargs)
    return caught.value.code


class TestParseReading:
    @pytest.mark.parametrize(
        ("text", "value", "below"),
        [
            ("7.59", "7.59", False),
            ("7,59", "7.59", False),
            (" 12 ", "12", False),
            (".5", "0.5", False),
            ("<0.5", "0.5", True),
            ("< 5", "5", True),
            ("<0,5", "0.5", True),
            ("＜０．５", "0.5", True),
        ],
    )
    def test_accepts_the_ways_labs_write_numbers(self, text: str, value: str, below: bool) -> None:
        """Decimal point or comma, "<limit" with or without a space, full-width digits."""
        assert labs.parse_reading(text) == Reading(Decimal(value), below)

    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("", "value_missing"),
            ("-2", "value_negative"),
            ("- 0.4", "value_negative"),
            (">160", "value_above_range"),
            ("n.a.", "value_not_a_number"),
            ("1.234,5", "value_not_a_number"),
            ("7.5.9", "value_not_a_number"),
            ("1e3", "value_not_a_number"),
            ("NaN", "value_not_a_number"),
            ("7.59 mg/L", "value_not_a_number"),
        ],
    )
    def test_refuses_anything_else(self, text: str, code: str) -> None:
        """A value that is not a plain non-negative decimal is refused, never guessed."""
        assert refused(labs.parse_reading, text) == code


class TestUnits:
    def test_crp_units_are_normalised(self) -> None:
        """mg/L and mg/dL are recognised whatever their case and spacing."""
        assert labs.parse_unit(labs.CRP, "MG/l") == "mg/L"
        assert labs.parse_unit(labs.CRP, "mg / dl") == "mg/dL"

    def test_crp_needs_a_unit(self) -> None:
        """A CRP without a unit is refused (clinical spec §2: a lab value carries its unit)."""
        assert refused(labs.parse_unit, labs.CRP, "") == "unit_missing"
        assert refused(labs.parse_unit, labs.CRP, "nmol/L") == "unit_unknown"

    def test_esr_is_in_mm_per_hour(self) -> None:
        """ESR has one unit, so an empty unit means mm/h; a CRP unit is refused for it."""
        assert labs.parse_unit(labs.ESR, "") == "mm/h"
        assert labs.parse_unit(labs.ESR, "mm/hr") == "mm/h"
        assert refused(labs.parse_unit, labs.ESR, "mg/L") == "unit_unknown"


class TestMeasurement:
    def test_mg_dl_is_converted_to_mg_l(self) -> None:
        """0.759 mg/dL is kept as entered and normalised to 7.59 mg/L (clinical spec §2)."""
        value = labs.read_measurement(labs.CRP, "0,759", "mg/dL")
        assert (value.value, value.unit) == (Decimal("0.759"), "mg/dL")
        assert value.value_normalised == Decimal("7.59")

    def test_below_detection_limit_keeps_the_limit(self) -> None:
        """ "<5" is stored as 5 with the flag, so ASDAS-CRP later applies the 2 mg/L floor."""
        value = labs.read_measurement(labs.CRP, "< 5", "mg/L")
        assert value.below_detection_limit
        assert value.value_normalised == Decimal("5")
        flagged = labs.read_measurement(labs.CRP, "0.5", "mg/L", below_detection_limit=True)
        assert flagged.below_detection_limit

    def test_crp_plausibility_is_judged_in_mg_l(self) -> None:
        """500 mg/L is accepted; 500.1 mg/L and 60 mg/dL (600 mg/L) are refused."""
        assert labs.read_measurement(labs.CRP, "500", "mg/L").value_normalised == 500
        assert refused(labs.read_measurement, labs.CRP, "500.1", "mg/L") == "crp_implausible"
        assert refused(labs.read_measurement, labs.CRP, "60", "mg/dL") == "crp_implausible"

    def test_esr_plausibility(self) -> None:
        """ESR up to 200 mm/h is accepted, above is refused."""
        assert labs.read_measurement(labs.ESR, "200", None).value_normalised == 200
        assert refused(labs.read_measurement, labs.ESR, "201", None) == "esr_implausible"

    def test_esr_below_a_limit_is_not_guessed(self) -> None:
        """ESR has no floor (clinical spec §2), so "<2" cannot be turned into a number."""
        assert refused(labs.read_measurement, labs.ESR, "<2", "mm/h") == "esr_below_limit"

    def test_analyte_names(self) -> None:
        """CRP, hs-CRP and ESR are recognised; other tests are refused by name."""
        assert labs.parse_analyte(" hs-CRP ") == labs.CRP
        assert labs.parse_analyte("esr") == labs.ESR
        assert refused(labs.parse_analyte, "Hb") == "analyte_unknown"


class TestDrawnInstant:
    def drawn(self, text: str) -> datetime:
        return labs.drawn_instant(text, timezone=BERLIN, now=NOW)

    def test_a_date_alone_is_noon_clinic_time(self) -> None:
        """ "2026-02-20" and "20.02.2026" are the same instant: 12:00 in Berlin (11:00 UTC)."""
        expected = datetime(2026, 2, 20, 11, 0, tzinfo=UTC)
        assert self.drawn("2026-02-20") == expected
        assert self.drawn("20.02.2026") == expected
        assert self.drawn("2026/02/20") == expected

    def test_times_are_clinic_time_unless_an_offset_is_given(self) -> None:
        """A time without offset is Berlin time; ISO offsets and Z are honoured."""
        assert self.drawn("2026-02-20 08:15") == datetime(2026, 2, 20, 7, 15, tzinfo=UTC)
        assert self.drawn("20.02.2026 08:15:30") == datetime(2026, 2, 20, 7, 15, 30, tzinfo=UTC)
        assert self.drawn("2026-02-20T08:15Z") == datetime(2026, 2, 20, 8, 15, tzinfo=UTC)
        assert self.drawn("2026-02-20T08:15+0800") == datetime(2026, 2, 20, 0, 15, tzinfo=UTC)

    def test_today_without_a_time_is_accepted(self) -> None:
        """Today's date counts as today even though noon has not come yet."""
        assert self.drawn("2026-03-02") == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("", "date_missing"),
            ("2026-03-03", "date_future"),
            ("2026-03-02 10:01", "date_future"),
            ("03/02/2026", "date_ambiguous"),
            ("02.03.26", "date_short_year"),
            ("2026-02-30", "date_invalid"),
            ("2026-02-20 25:00", "date_invalid"),
            ("0226-02-20", "date_implausible"),
            ("yesterday", "date_unreadable"),
            ("2026-02-20 8h", "date_unreadable"),
        ],
    )
    def test_refuses_unclear_or_impossible_dates(self, text: str, code: str) -> None:
        """Future, ambiguous, two-digit-year, impossible and unreadable dates are refused."""
        assert refused(self.drawn, text) == code


class TestCrpCommand:
    def test_value_alone_defaults_to_mg_l_and_no_date(self) -> None:
        """`/crp MRN-1 7.59` is 7.59 mg/L with the date left to the caller."""
        command = labs.parse_crp_command(["MRN-1", "7.59"])
        assert command.clinic_ref == "MRN-1"
        assert (command.crp.value_normalised, command.crp.unit) == (Decimal("7.59"), "mg/L")
        assert command.drawn_text is None
        assert command.esr is None

    def test_every_part(self) -> None:
        """Unit, date and ESR may follow the value; "< 0.5" may be two words."""
        command = labs.parse_crp_command(["MRN-1", "<", "0.5", "mg/dL", "2026-02-20", "ESR", "20"])
        assert command.crp.below_detection_limit
        assert command.crp.value_normalised == Decimal("5.0")
        assert command.drawn_text == "2026-02-20"
        assert command.esr is not None
        assert command.esr.value_normalised == Decimal("20")

    @pytest.mark.parametrize(
        ("words", "code"),
        [
            ([], "crp_usage"),
            (["MRN-1"], "crp_usage"),
            (["MRN-1", "abc"], "value_not_a_number"),
            (["MRN-1", "7", "esr"], "crp_usage"),
            (["MRN-1", "7", "2026-02-20", "banana"], "crp_unexpected"),
            (["MRN-1", "600"], "crp_implausible"),
            (["MRN-1", "7", "esr", "300"], "esr_implausible"),
        ],
    )
    def test_refusals(self, words: list[str], code: str) -> None:
        """Missing or unreadable parts are refused with a reason."""
        assert refused(labs.parse_crp_command, words) == code


class TestReadLabFile:
    def test_semicolons_bom_and_line_numbers(self) -> None:
        """A BOM is ignored, the separator is taken from the header, blank lines are skipped
        and every row keeps its line number in the file."""
        data = "\ufeffPatient;Drawn;Test;Result;Unit\nA;2026-02-20;CRP;7,5;mg/L\n\nB;x;ESR;3;\n"
        read = labs.read_lab_file(data.encode())
        assert read.delimiter == ";"
        assert [(row.line, row.patient, row.value) for row in read.rows] == [
            (2, "A", "7,5"),
            (4, "B", "3"),
        ]

    def test_commas_with_a_quoted_decimal_comma(self) -> None:
        """With comma separators a decimal comma must be quoted; unquoted, the row is refused."""
        data = (
            b"patient,drawn,test,value,unit\n"
            b'A,2026-02-20,CRP,"7,5",mg/L\n'
            b"A,2026-02-21,CRP,7,5,mg/L\n"
        )
        rows = labs.read_lab_file(data).rows
        assert rows[0].value == "7,5"
        assert rows[1].error is not None
        assert rows[1].error.code == "row_fields"

    def test_trailing_empty_fields_are_ignored(self) -> None:
        """Spreadsheets end lines with separators; those empty fields do not count."""
        data = "patient;drawn;test;value;unit;\r\nA;2026-02-20;CRP;7;mg/L;;\r\n"
        (row,) = labs.read_lab_file(data.encode()).rows
        assert row.error is None
        assert row.unit == "mg/L"

    def test_unusable_files(self) -> None:
        """No header, a missing column, a doubled column or non-UTF-8 text refuse the file."""
        assert refused(labs.read_lab_file, b"\n\n") == "file_empty"
        assert refused(labs.read_lab_file, b"patient;test;value\n") == "file_columns_missing"
        doubled = b"patient;mrn;drawn;test;value;unit\n"
        assert refused(labs.read_lab_file, doubled) == "file_column_twice"
        latin1 = "patient;drawn;test;value;unit\nMüller;x;CRP;1;mg/L\n".encode("latin-1")
        with pytest.raises(LabInputError) as caught:
            labs.read_lab_file(latin1)
        assert caught.value.code == "file_not_utf8"
        assert caught.value.params == {"line": "2"}
