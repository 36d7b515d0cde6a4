"""Every exported column, defined once: name, type, unit, allowed values, meaning, source, the
clinical spec reference, and how its value is read from an export record.

The CSV and Parquet writers and the data dictionary (`spondybot export --dictionary`) are all
generated from `WIDE_COLUMNS` and `LONG_COLUMNS`, so what is written and what is documented
cannot drift apart. The wide CSV writes `WideText` rows (bot.export.records), whose fields
are these columns by name and in order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any, Final, Generic, NamedTuple, TypeVar

from bot.config import SUPPORTED_LANGUAGES
from bot.domain import scoring
from bot.export.records import (
    CSV_BOOLEANS,
    ExportRecord,
    ExportStatus,
    RecordBuilder,
    asdas_state,
    basdai_flag,
    shift_text,
)
from storage.exports import AdministrationText, AnswerText

R = TypeVar("R")

SPEC: Final = "docs/clinical.md"
"""The clinical specification the `spec` references point into."""


class ColumnType(StrEnum):
    """Logical column types; how each is written is described in `TYPE_NOTES`."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


TYPE_NOTES: Final[dict[ColumnType, str]] = {
    ColumnType.STRING: "text; Parquet string",
    ColumnType.INTEGER: "whole number; Parquet int64",
    ColumnType.DECIMAL: (
        "exact decimal, unrounded, written in plain notation in CSV (e.g. 3.8763...); "
        "Parquet double"
    ),
    ColumnType.BOOLEAN: "true or false; Parquet boolean",
    ColumnType.DATETIME: (
        "UTC, ISO 8601 to the second, e.g. 2026-03-02T09:00:00Z; Parquet timestamp[us, UTC]"
    ),
}


@dataclass(frozen=True)
class LongSource:
    """How a wide column becomes rows of the long table: kind of record, time, version, flag."""

    record_type: str
    observed_at: Callable[[ExportRecord], datetime | None]
    answer_version: Callable[[ExportRecord], int | None] = lambda record: None
    crp_floored: Callable[[ExportRecord], bool | None] = lambda record: None


@dataclass(frozen=True)
class Column(Generic[R]):
    """One exported column and its documentation."""

    name: str
    type: ColumnType
    meaning: str
    source: str
    value: Callable[[R], object]
    unit: str = ""
    allowed: str = ""
    spec: str = ""
    long: LongSource | None = None


# --- how values are read from a record ----------------------------------------------------


def _answer_score(code: str) -> Callable[[ExportRecord], Decimal | None]:
    def read(record: ExportRecord) -> Decimal | None:
        return record.scores.get(code)

    return read


def _answer_time(code: str) -> Callable[[ExportRecord], datetime | None]:
    def read(record: ExportRecord) -> datetime | None:
        answer = record.answers.get(code)
        return None if answer is None else answer.answered_at

    return read


def _answer_version(code: str) -> Callable[[ExportRecord], int | None]:
    def read(record: ExportRecord) -> int | None:
        answer = record.answers.get(code)
        return None if answer is None else answer.version

    return read


def _answer_source(code: str) -> LongSource:
    return LongSource("answer", _answer_time(code), _answer_version(code))


_SCORE_SOURCE: Final = LongSource("score", lambda r: r.completed_at)
_ZERO_TO_TEN: Final = "0–10"
_ASDAS_STATES: Final = ", ".join(state.value for state in scoring.AsdasState)
_BOOLEAN: Final = "true, false"
_SHIFTED: Final = " Moved by the patient's secret offset when the export used --shift-dates."
_ITEM_SOURCE: Final = "answer.score of item {code} (the patient's answer on the 0–10 scale)"


def _item(code: str, name: str, meaning: str, instrument: str) -> Column[ExportRecord]:
    return Column(
        name,
        ColumnType.DECIMAL,
        f"{meaning}, over the last week ({instrument}); 0 = none, 10 = very severe.",
        _ITEM_SOURCE.format(code=code),
        _answer_score(code),
        unit="score 0–10",
        allowed=_ZERO_TO_TEN,
        spec=f"{SPEC} §1",
        long=_answer_source(code),
    )


WIDE_COLUMNS: Final[tuple[Column[ExportRecord], ...]] = (
    Column(
        "patient_pseudonym",
        ColumnType.STRING,
        "The patient under a pseudonym: HMAC-SHA256 of the patient's random research id under "
        "PSEUDONYM_KEY, first 24 hex digits. Stable for a key (exports join), unlinkable under "
        "another key.",
        "patient.research_id, keyed with PSEUDONYM_KEY",
        lambda r: r.pseudonym,
        allowed="24 lowercase hexadecimal digits",
        spec="docs/export.md, Pseudonyms",
    ),
    Column(
        "administration_id",
        ColumnType.STRING,
        "The questionnaire administration (one per scheduled week or check-in); joins the "
        "wide and long tables and the FHIR QuestionnaireResponse. A keyed hash of the database "
        "id, so it reveals neither when the questionnaire was made nor anything of other "
        "patients.",
        "administration.id, keyed with PSEUDONYM_KEY",
        lambda r: r.administration_id,
        allowed="24 lowercase hexadecimal digits",
        spec="docs/export.md, Pseudonyms",
    ),
    Column(
        "scheduled_for",
        ColumnType.DATETIME,
        "When the questionnaire was scheduled (its weekly slot)." + _SHIFTED,
        "administration.slot_at",
        lambda r: r.scheduled_for,
        unit="UTC",
    ),
    Column(
        "completed_at",
        ColumnType.DATETIME,
        "When the patient confirmed the last answer; empty unless status is completed." + _SHIFTED,
        "administration.completed_at",
        lambda r: r.completed_at,
        unit="UTC",
    ),
    Column(
        "status",
        ColumnType.STRING,
        "completed: every item answered and confirmed. partial: some items answered, not "
        "completed (expired after a partial answer, or still open). missed: expired without "
        "any answer. Scores exist only for completed administrations.",
        "administration.status and whether any answer exists",
        lambda r: r.status.value,
        allowed=", ".join(status.value for status in ExportStatus),
    ),
    Column(
        "language",
        ColumnType.STRING,
        "Language the questions were asked in.",
        "administration.language",
        lambda r: r.language,
        allowed=", ".join(SUPPORTED_LANGUAGES),
        spec=f"{SPEC} §1 (licensing)",
    ),
    Column(
        "instrument_version",
        ColumnType.STRING,
        "Version of the questionnaire wording and items the answers were given to.",
        "administration.instrument_version",
        lambda r: r.instrument_version,
        spec=f"{SPEC} §1 (licensing)",
    ),
    _item("q1", "q1_fatigue", "Fatigue/tiredness", "BASDAI item 1"),
    _item("q2", "q2_back_pain", "Neck, back or hip pain", "BASDAI item 2, ASDAS"),
    _item(
        "q3",
        "q3_peripheral_pain",
        "Pain/swelling in joints other than neck, back or hips",
        "BASDAI item 3, ASDAS",
    ),
    _item(
        "q4",
        "q4_enthesitis",
        "Discomfort from areas tender to touch or pressure",
        "BASDAI item 4",
    ),
    _item(
        "q5",
        "q5_stiffness_severity",
        "Severity of morning stiffness from waking",
        "BASDAI item 5",
    ),
    Column(
        "q6_stiffness_duration",
        ColumnType.DECIMAL,
        "Duration of morning stiffness on the 0–10 scale: minutes ÷ 12, capped at 10 "
        "(2 h or more = 10) (BASDAI item 6, ASDAS).",
        "answer.score of item q6 (derived from the minutes)",
        _answer_score("q6"),
        unit="score 0–10",
        allowed=_ZERO_TO_TEN,
        spec=f"{SPEC} §1",
        long=_answer_source("q6"),
    ),
    Column(
        "q6_stiffness_minutes",
        ColumnType.DECIMAL,
        "Duration of morning stiffness as the patient gave it, in minutes (120 = 2 h or more "
        "when chosen by button).",
        "answer.raw_value of item q6",
        lambda r: r.stiffness_minutes,
        unit="min",
        allowed="0–1440",
        spec=f"{SPEC} §1",
        long=_answer_source("q6"),
    ),
    Column(
        "patient_global",
        ColumnType.DECIMAL,
        "How active the spondylitis was on average over the last week (ASDAS patient global); "
        "0 = not active, 10 = very active.",
        _ITEM_SOURCE.format(code="patient_global"),
        _answer_score("patient_global"),
        unit="score 0–10",
        allowed=_ZERO_TO_TEN,
        spec=f"{SPEC} §1",
        long=_answer_source("patient_global"),
    ),
    Column(
        "basdai",
        ColumnType.DECIMAL,
        "BASDAI = (q1 + q2 + q3 + q4 + (q5 + q6) / 2) / 5, unrounded; empty unless completed.",
        "scorerecord.basdai (stored scores, one code path)",
        lambda r: r.basdai,
        unit="score 0–10",
        allowed=_ZERO_TO_TEN,
        spec=f"{SPEC} §2",
        long=_SCORE_SOURCE,
    ),
    Column(
        "basdai_active",
        ColumnType.BOOLEAN,
        "BASDAI ≥ 4 (active disease), from the unrounded BASDAI; empty when basdai is empty.",
        "derived from basdai",
        lambda r: basdai_flag(r.basdai),
        allowed=_BOOLEAN,
        spec=f"{SPEC} §3",
    ),
    Column(
        "crp_mg_l",
        ColumnType.DECIMAL,
        "The CRP that ASDAS-CRP was computed with, as measured, in mg/L (mg/dL converted on "
        "entry). For a result reported below the detection limit it is the limit itself and "
        "crp_floored is true. Empty when there is no ASDAS-CRP (no CRP is ever imputed).",
        "labresult.value_normalised of scorerecord.asdas_crp_lab_id",
        lambda r: None if r.crp is None else r.crp.value,
        unit="mg/L",
        allowed="≥ 0",
        spec=f"{SPEC} §2, §4",
        long=LongSource(
            "lab",
            lambda r: None if r.crp is None else r.crp.drawn_at,
            crp_floored=lambda r: r.crp_floored,
        ),
    ),
    Column(
        "crp_drawn_at",
        ColumnType.DATETIME,
        "When the CRP sample was drawn (nearest to completion within the lab window)." + _SHIFTED,
        "labresult.drawn_at of scorerecord.asdas_crp_lab_id",
        lambda r: None if r.crp is None else r.crp.drawn_at,
        unit="UTC",
        spec=f"{SPEC} §4",
    ),
    Column(
        "crp_floored",
        ColumnType.BOOLEAN,
        "Whether ASDAS-CRP used 2 mg/L instead of the measured CRP (CRP below 2 mg/L or below "
        "the detection limit); empty when there is no ASDAS-CRP.",
        "scorerecord.crp_floored",
        lambda r: r.crp_floored,
        allowed=_BOOLEAN,
        spec=f"{SPEC} §2",
    ),
    Column(
        "asdas_crp",
        ColumnType.DECIMAL,
        "ASDAS-CRP = 0.12·q2 + 0.06·q6 + 0.11·patient_global + 0.07·q3 + 0.58·ln(CRP + 1), "
        "CRP in mg/L floored at 2, unrounded; empty without a CRP in the window.",
        "scorerecord.asdas_crp (stored scores, one code path)",
        lambda r: r.asdas_crp,
        unit="score",
        allowed="≥ 0",
        spec=f"{SPEC} §2",
        long=LongSource("score", lambda r: r.completed_at, crp_floored=lambda r: r.crp_floored),
    ),
    Column(
        "asdas_crp_state",
        ColumnType.STRING,
        "Disease activity state of the unrounded ASDAS-CRP (< 1.3, ≥ 1.3 and < 2.1, "
        "≥ 2.1 and ≤ 3.5, > 3.5); empty when asdas_crp is empty.",
        "derived from asdas_crp",
        lambda r: asdas_state(r.asdas_crp),
        allowed=_ASDAS_STATES,
        spec=f"{SPEC} §3",
    ),
    Column(
        "esr_mm_h",
        ColumnType.DECIMAL,
        "The ESR that ASDAS-ESR was computed with, in mm/h (no floor). Empty when there is no "
        "ASDAS-ESR.",
        "labresult.value_normalised of scorerecord.asdas_esr_lab_id",
        lambda r: None if r.esr is None else r.esr.value,
        unit="mm/h",
        allowed="≥ 0",
        spec=f"{SPEC} §2, §4",
        long=LongSource("lab", lambda r: None if r.esr is None else r.esr.drawn_at),
    ),
    Column(
        "esr_drawn_at",
        ColumnType.DATETIME,
        "When the ESR sample was drawn (nearest to completion within the lab window)." + _SHIFTED,
        "labresult.drawn_at of scorerecord.asdas_esr_lab_id",
        lambda r: None if r.esr is None else r.esr.drawn_at,
        unit="UTC",
        spec=f"{SPEC} §4",
    ),
    Column(
        "asdas_esr",
        ColumnType.DECIMAL,
        "ASDAS-ESR = 0.08·q2 + 0.07·q6 + 0.11·patient_global + 0.09·q3 + 0.29·√ESR, ESR in "
        "mm/h, unrounded; empty without an ESR in the window.",
        "scorerecord.asdas_esr (stored scores, one code path)",
        lambda r: r.asdas_esr,
        unit="score",
        allowed="≥ 0",
        spec=f"{SPEC} §2",
        long=_SCORE_SOURCE,
    ),
    Column(
        "asdas_esr_state",
        ColumnType.STRING,
        "Disease activity state of the unrounded ASDAS-ESR (same thresholds as ASDAS-CRP); "
        "empty when asdas_esr is empty.",
        "derived from asdas_esr",
        lambda r: asdas_state(r.asdas_esr),
        allowed=_ASDAS_STATES,
        spec=f"{SPEC} §3",
    ),
    Column(
        "basdai50",
        ColumnType.BOOLEAN,
        "BASDAI50: this BASDAI improved by at least 50 % from the patient's baseline BASDAI "
        "(their first completed questionnaire, or the one nearest to the baseline date the "
        "clinic set). Empty for the baseline questionnaire itself and without a BASDAI.",
        "derived from basdai and the baseline's basdai",
        lambda r: r.basdai50,
        allowed=_BOOLEAN,
        spec=f"{SPEC} §3, §6",
    ),
    Column(
        "basdai_asas_eular_response",
        ColumnType.BOOLEAN,
        "ASAS/EULAR BASDAI response: this BASDAI improved by at least 50 % or by at least 2 "
        "points from the same baseline; reported apart from basdai50, which it differs from. "
        "Empty for the baseline questionnaire itself and without a BASDAI.",
        "derived from basdai and the baseline's basdai",
        lambda r: r.basdai_asas_eular,
        allowed=_BOOLEAN,
        spec=f"{SPEC} §3, §6",
    ),
)
"""The wide table (wide CSV and Parquet): one row per administration, in this column order."""

LONG_VARIABLES: Final[tuple[Column[ExportRecord], ...]] = tuple(
    column for column in WIDE_COLUMNS if column.long is not None
)
"""Wide columns whose values become rows of the long table, in this order."""


class LongRow(NamedTuple):
    """One row of the long table: one answer, one lab value or one score."""

    patient_pseudonym: str
    administration_id: str
    record_type: str
    variable: str
    value: object
    unit: str
    observed_at: datetime | None
    answer_version: int | None
    crp_floored: bool | None


def long_rows(record: ExportRecord) -> Iterator[LongRow]:
    """The long-table rows of one administration, in the wide table's column order (answers,
    then BASDAI, CRP and ASDAS-CRP, ESR and ASDAS-ESR); a value that does not exist gives no
    row."""
    for column in LONG_VARIABLES:
        source = column.long
        assert source is not None
        value = column.value(record)
        if value is None:
            continue
        yield LongRow(
            record.pseudonym,
            record.administration_id,
            source.record_type,
            column.name,
            value,
            column.unit,
            source.observed_at(record),
            source.answer_version(record),
            source.crp_floored(record),
        )


_LONG_ANSWERS: Final = (
    ("q1_fatigue", "q1", False),
    ("q2_back_pain", "q2", False),
    ("q3_peripheral_pain", "q3", False),
    ("q4_enthesitis", "q4", False),
    ("q5_stiffness_severity", "q5", False),
    ("q6_stiffness_duration", "q6", False),
    ("q6_stiffness_minutes", "q6", True),
    ("patient_global", "patient_global", False),
)
"""The long table's answer variables in order: name, item, and whether the value is the raw
answer (minutes) rather than the 0–10 score."""
_LONG_SCORES_AND_LABS: Final = ("basdai", "crp_mg_l", "asdas_crp", "esr_mm_h", "asdas_esr")
assert tuple(column.name for column in LONG_VARIABLES) == (
    *(name for name, _, _ in _LONG_ANSWERS),
    *_LONG_SCORES_AND_LABS,
), "long_text follows LONG_VARIABLES"
_UNITS: Final = {column.name: column.unit for column in LONG_VARIABLES}
_LONG_ANSWER_PLAN: Final = tuple(
    (name, _UNITS[name], code, raw) for name, code, raw in _LONG_ANSWERS
)


def _exported_times(
    builder: RecordBuilder, stored: AdministrationText
) -> tuple[timedelta | None, str, str, str]:
    """The date offset of the administration's patient (None: dates not shifted), then its
    completion and its CRP and ESR draw times as the long table writes them: shifted by that
    offset, "" when there is none."""
    offset = builder.date_offset(stored.research_id)
    completed, crp_drawn, esr_drawn = stored.completed_at, stored.crp_drawn_at, stored.esr_drawn_at
    if offset is not None:
        completed = None if completed is None else shift_text(completed, offset)
        crp_drawn = None if crp_drawn is None else shift_text(crp_drawn, offset)
        esr_drawn = None if esr_drawn is None else shift_text(esr_drawn, offset)
    return offset, completed or "", crp_drawn or "", esr_drawn or ""


def _given_answers(
    plan: Iterable[tuple[str, str, str, bool]],
    given: Mapping[str, AnswerText],
    offset: timedelta | None,
) -> Iterator[tuple[str, str, str, str, int]]:
    """Each answer an administration has, in the plan's order (its entries: what goes before
    the value, the unit, the item code, and whether the raw answer or the score is exported):
    what goes before, the unit, the value, the time (shifted by `offset`), the version."""
    for before, unit, code, raw in plan:
        answer = given.get(code)
        if answer is None:
            continue
        answered = answer.answered_at if offset is None else shift_text(answer.answered_at, offset)
        yield before, unit, answer.raw_value if raw else answer.score, answered, answer.version


def long_text(
    builder: RecordBuilder,
    rows: Iterable[AdministrationText],
    answers: Mapping[int, Mapping[str, AnswerText]],
) -> list[tuple[str, ...]]:
    """The long table's rows, as CSV cells, of administrations read as text with their answers
    by id: the rows `long_rows` gives for the same administrations' export records, formatted
    by LONG_COLUMNS, built from the text storage gives (as `RecordBuilder.wide_text` builds the
    wide table's), so no value becomes a Python object only to be formatted back."""
    basdai_unit, crp_unit, asdas_crp_unit, esr_unit, asdas_esr_unit = (
        _UNITS[name] for name in _LONG_SCORES_AND_LABS
    )
    cells: list[tuple[str, ...]] = []
    append = cells.append
    no_answers: Mapping[str, AnswerText] = {}
    for stored in rows:
        offset, done, crp_drawn, esr_drawn = _exported_times(builder, stored)
        pseudonym = builder.pseudonym(stored.research_id)
        exported_id = builder.record_id("administration", stored.administration_id)
        given = answers.get(stored.administration_id, no_answers)
        for name, unit, value, answered, version in _given_answers(
            _LONG_ANSWER_PLAN, given, offset
        ):
            append(
                (pseudonym, exported_id, "answer", name, value, unit, answered, str(version), "")
            )
        basdai, crp, crp_floored = stored.basdai, stored.crp_value, stored.crp_floored
        esr, asdas_crp, asdas_esr = stored.esr_value, stored.asdas_crp, stored.asdas_esr
        if basdai is not None:
            append((pseudonym, exported_id, "score", "basdai", basdai, basdai_unit, done, "", ""))
        # An ASDAS comes with its lab value, or neither is exported.
        if crp is not None and asdas_crp is not None and crp_floored is not None:
            floored = CSV_BOOLEANS[crp_floored]
            append(
                (pseudonym, exported_id, "lab", "crp_mg_l", crp, crp_unit, crp_drawn, "",
                 floored)
            )  # fmt: skip
            append(
                (pseudonym, exported_id, "score", "asdas_crp", asdas_crp, asdas_crp_unit, done, "",
                 floored)
            )  # fmt: skip
        if esr is not None and asdas_esr is not None:
            append((pseudonym, exported_id, "lab", "esr_mm_h", esr, esr_unit, esr_drawn, "", ""))
            append(
                (pseudonym, exported_id, "score", "asdas_esr", asdas_esr, asdas_esr_unit, done, "",
                 "")
            )  # fmt: skip
    return cells


class CsvLines(NamedTuple):
    """Rows already written as CSV text (each line ending in a line feed), how many, and their
    cells, built only if some cell needs the csv module's quoting after all
    (`bot.export.tables`)."""

    text: str
    rows: int
    cells: Callable[[], list[tuple[str, ...]]]


_LONG_ANSWER_LINES: Final = tuple(
    (f"answer,{name},", f",{unit},", code, raw) for name, unit, code, raw in _LONG_ANSWER_PLAN
)
"""Each answer variable's fixed text around its value: after the ids, and the unit between
value and time."""


def long_csv(
    builder: RecordBuilder,
    rows: list[AdministrationText],
    answers: Mapping[int, Mapping[str, AnswerText]],
) -> CsvLines:
    """The rows of `long_text`, written as CSV text: each line one string made at once from
    the administration's fixed start (pseudonym and id) and the variable's fixed words, where
    a tuple of cells per row, joined, was most of the long export's time. Same rows, same
    order, same cells; `_csv_text`'s check still decides whether the text can be written as
    it is."""
    basdai_unit, crp_unit, asdas_crp_unit, esr_unit, asdas_esr_unit = (
        _UNITS[name] for name in _LONG_SCORES_AND_LABS
    )
    lines: list[str] = []
    append = lines.append
    no_answers: Mapping[str, AnswerText] = {}
    for stored in rows:
        offset, done, crp_drawn, esr_drawn = _exported_times(builder, stored)
        ids = (
            f"{builder.pseudonym(stored.research_id)},"
            f"{builder.record_id('administration', stored.administration_id)},"
        )
        given = answers.get(stored.administration_id, no_answers)
        for before, unit, value, answered, version in _given_answers(
            _LONG_ANSWER_LINES, given, offset
        ):
            append(f"{ids}{before}{value}{unit}{answered},{version},\n")
        basdai, crp, crp_floored = stored.basdai, stored.crp_value, stored.crp_floored
        esr, asdas_crp, asdas_esr = stored.esr_value, stored.asdas_crp, stored.asdas_esr
        if basdai is not None:
            append(f"{ids}score,basdai,{basdai},{basdai_unit},{done},,\n")
        # An ASDAS comes with its lab value, or neither is exported.
        if crp is not None and asdas_crp is not None and crp_floored is not None:
            floored = CSV_BOOLEANS[crp_floored]
            append(f"{ids}lab,crp_mg_l,{crp},{crp_unit},{crp_drawn},,{floored}\n")
            append(f"{ids}score,asdas_crp,{asdas_crp},{asdas_crp_unit},{done},,{floored}\n")
        if esr is not None and asdas_esr is not None:
            append(f"{ids}lab,esr_mm_h,{esr},{esr_unit},{esr_drawn},,\n")
            append(f"{ids}score,asdas_esr,{asdas_esr},{asdas_esr_unit},{done},,\n")
    return CsvLines("".join(lines), len(lines), partial(long_text, builder, rows, answers))


LONG_COLUMNS: Final[tuple[Column[LongRow], ...]] = (
    Column(
        "patient_pseudonym",
        ColumnType.STRING,
        "As in the wide table.",
        "patient.research_id, keyed with PSEUDONYM_KEY",
        lambda r: r.patient_pseudonym,
        allowed="24 lowercase hexadecimal digits",
        spec="docs/export.md, Pseudonyms",
    ),
    Column(
        "administration_id",
        ColumnType.STRING,
        "The administration the row belongs to (joins the wide table).",
        "administration.id, keyed with PSEUDONYM_KEY",
        lambda r: r.administration_id,
        allowed="24 lowercase hexadecimal digits",
        spec="docs/export.md, Pseudonyms",
    ),
    Column(
        "record_type",
        ColumnType.STRING,
        "What the row is: a patient's answer, a lab value used for ASDAS, or a stored score.",
        "answer, labresult or scorerecord",
        lambda r: r.record_type,
        allowed="answer, lab, score",
    ),
    Column(
        "variable",
        ColumnType.STRING,
        "Which value the row carries; each name means exactly what the wide column of that "
        "name means. Derived flags and states (basdai_active, the ASDAS states) are only in "
        "the wide table.",
        "the wide table's column definitions",
        lambda r: r.variable,
        allowed=", ".join(column.name for column in LONG_VARIABLES),
    ),
    Column(
        "value",
        ColumnType.DECIMAL,
        "The value, unrounded, in the unit of the next column.",
        "as for the wide column named in variable",
        lambda r: r.value,
    ),
    Column(
        "unit",
        ColumnType.STRING,
        "Unit of value, as listed for the variable in the wide table.",
        "the wide table's column definitions",
        lambda r: r.unit,
        allowed=", ".join(sorted({column.unit for column in LONG_VARIABLES})),
    ),
    Column(
        "observed_at",
        ColumnType.DATETIME,
        "answer: when the current version of the answer was given; lab: when the sample was "
        "drawn; score: when the administration was completed." + _SHIFTED,
        "answer.answered_at, labresult.drawn_at or administration.completed_at",
        lambda r: r.observed_at,
        unit="UTC",
    ),
    Column(
        "answer_version",
        ColumnType.INTEGER,
        "For answers: 1 if never corrected, n after n − 1 corrections (each correction is in "
        "the audit trail); empty for labs and scores.",
        "answer.version (corrections are audit events of entity answer)",
        lambda r: r.answer_version,
        allowed="positive integer",
    ),
    Column(
        "crp_floored",
        ColumnType.BOOLEAN,
        "For crp_mg_l and asdas_crp rows: whether ASDAS-CRP used 2 mg/L instead of the "
        "measured CRP; empty otherwise.",
        "scorerecord.crp_floored",
        lambda r: r.crp_floored,
        allowed=_BOOLEAN,
        spec=f"{SPEC} §2",
    ),
)
"""The long table (long CSV): one row per answer, lab value and score."""


@dataclass(frozen=True)
class TherapyRow:
    """One therapy episode with its §7 reading, pseudonymised and (optionally) date-shifted."""

    pseudonym: str
    episode: int
    drug: str
    therapy_class: str
    dose: str | None
    start: date
    stop: date | None
    stop_reason: str | None
    judgement: str
    baseline_variant: str | None
    baseline_asdas: Decimal | None
    baseline_day: date | None
    baseline_after_start: bool | None
    baseline_basdai: Decimal | None
    assessment_day: date | None
    assessment_week: int | None
    followup_asdas: Decimal | None
    asdas_change: str | None
    major_improvement: bool | None
    low_activity_target: bool | None
    inactive_disease: bool | None
    followup_basdai: Decimal | None
    basdai50: bool | None
    asas_eular_basdai_response: bool | None
    loss_of_response_day: date | None


@dataclass(frozen=True)
class CheckinRow:
    """One safety check-in answer (§8); the patient's free-text note is never exported."""

    pseudonym: str
    checkin: int
    kind: str
    question: str
    answer_yes: bool
    answered_at: datetime
    questions_version: str
    confirmed: bool


_DAY_SHIFTED: Final = " Calendar day; moved by the patient's secret offset with --shift-dates."
_S7: Final = f"{SPEC} §7"
_S8: Final = f"{SPEC} §8"


def _t(
    name: str,
    kind: ColumnType,
    meaning: str,
    value: Callable[[TherapyRow], object],
    unit: str = "",
    allowed: str = "",
) -> Column[TherapyRow]:
    source = "therapyepisode and the §7 reading"
    return Column(name, kind, meaning, source, value, unit=unit, allowed=allowed, spec=_S7)


THERAPY_COLUMNS: Final[tuple[Column[TherapyRow], ...]] = (
    Column("patient_pseudonym", ColumnType.STRING, "The patient's pseudonym (as in the other "
           "tables of this export).", "HMAC of the research id", lambda r: r.pseudonym),
    _t("episode", ColumnType.INTEGER, "Number of the episode within the patient, by start.",
       lambda r: r.episode),
    _t("drug", ColumnType.STRING, "Drug name as entered by the clinic.", lambda r: r.drug),
    _t("therapy_class", ColumnType.STRING, "Therapy class.", lambda r: r.therapy_class,
       allowed="nsaid, csdmard, tnf_inhibitor, il17_inhibitor, jak_inhibitor, glucocorticoid, "
       "other"),
    _t("dose", ColumnType.STRING, "Dose as entered, if any.", lambda r: r.dose),
    _t("start_date", ColumnType.STRING, "First day of the episode (YYYY-MM-DD)." + _DAY_SHIFTED,
       lambda r: r.start.isoformat()),
    _t("stop_date", ColumnType.STRING, "Last day, empty while ongoing." + _DAY_SHIFTED,
       lambda r: None if r.stop is None else r.stop.isoformat()),
    _t("stop_reason", ColumnType.STRING, "Why it stopped.", lambda r: r.stop_reason,
       allowed="inefficacy, adverse_event, remission_or_taper, patient_choice, other"),
    _t("response", ColumnType.STRING, "Where the response stands on the export day.",
       lambda r: r.judgement,
       allowed="no baseline, not yet due, assessment due, response, no response, target "
       "reached without important improvement, not assessed, stopped before assessment"),
    _t("baseline_asdas_variant", ColumnType.STRING, "ASDAS variant of the baseline (and of the "
       "follow-up).", lambda r: r.baseline_variant, allowed="ASDAS-CRP, ASDAS-ESR"),
    _t("baseline_asdas", ColumnType.DECIMAL, "Baseline ASDAS, unrounded.",
       lambda r: r.baseline_asdas),
    _t("baseline_date", ColumnType.STRING, "Day of the baseline score." + _DAY_SHIFTED,
       lambda r: None if r.baseline_day is None else r.baseline_day.isoformat()),
    _t("baseline_after_start", ColumnType.BOOLEAN, "The baseline came within 7 days after the "
       "start (none in the 28 days before).", lambda r: r.baseline_after_start,
       allowed=_BOOLEAN),
    _t("baseline_basdai", ColumnType.DECIMAL, "Baseline BASDAI, unrounded.",
       lambda r: r.baseline_basdai),
    _t("assessment_date", ColumnType.STRING, "Day of the response assessment (first ASDAS in "
       "weeks 12–24)." + _DAY_SHIFTED,
       lambda r: None if r.assessment_day is None else r.assessment_day.isoformat()),
    _t("assessment_week", ColumnType.INTEGER, "Whole weeks from the start to the assessment.",
       lambda r: r.assessment_week, unit="weeks"),
    _t("followup_asdas", ColumnType.DECIMAL, "ASDAS at the assessment, unrounded.",
       lambda r: r.followup_asdas),
    _t("asdas_change", ColumnType.STRING, "Change class from baseline to assessment.",
       lambda r: r.asdas_change, allowed=", ".join(c.value for c in scoring.AsdasChange)),
    _t("major_improvement", ColumnType.BOOLEAN, "ASDAS decrease ≥ 2.0.",
       lambda r: r.major_improvement, allowed=_BOOLEAN),
    _t("low_activity_target", ColumnType.BOOLEAN, "ASDAS < 2.1 at the assessment.",
       lambda r: r.low_activity_target, allowed=_BOOLEAN),
    _t("inactive_disease", ColumnType.BOOLEAN, "ASDAS < 1.3 at the assessment.",
       lambda r: r.inactive_disease, allowed=_BOOLEAN),
    _t("followup_basdai", ColumnType.DECIMAL, "BASDAI at the assessment, unrounded.",
       lambda r: r.followup_basdai),
    _t("basdai50", ColumnType.BOOLEAN, "BASDAI improved by ≥ 50 %.", lambda r: r.basdai50,
       allowed=_BOOLEAN),
    _t("asas_eular_basdai_response", ColumnType.BOOLEAN, "BASDAI improved by ≥ 50 % or ≥ 2 "
       "points (ASAS/EULAR).", lambda r: r.asas_eular_basdai_response, allowed=_BOOLEAN),
    _t("loss_of_response_date", ColumnType.STRING, "Day a loss of response was confirmed, if "
       "any." + _DAY_SHIFTED,
       lambda r: None if r.loss_of_response_day is None else r.loss_of_response_day.isoformat()),
)  # fmt: skip
"""The therapy table (`--format therapy`): one row per episode with its response (§7)."""


def _c(
    name: str,
    kind: ColumnType,
    meaning: str,
    value: Callable[[CheckinRow], object],
    allowed: str = "",
) -> Column[CheckinRow]:
    source = "safetycheckin, safetyanswer"
    return Column(name, kind, meaning, source, value, allowed=allowed, spec=_S8)


CHECKIN_COLUMNS: Final[tuple[Column[CheckinRow], ...]] = (
    Column("patient_pseudonym", ColumnType.STRING, "The patient's pseudonym.",
           "HMAC of the research id", lambda r: r.pseudonym),
    _c("checkin", ColumnType.INTEGER, "Number of the check-in within the patient, in order.",
       lambda r: r.checkin),
    _c("checkin_kind", ColumnType.STRING, "Weekly (after the questionnaire) or reported by the "
       "patient with /sideeffect.", lambda r: r.kind, allowed="weekly, report"),
    _c("question", ColumnType.STRING, "Question code of the §8 table.", lambda r: r.question,
       allowed="fever_infection, hospital, zoster, eye, vte_chest, bowel, skin, doses"),
    _c("answer_yes", ColumnType.BOOLEAN, "The patient answered yes.", lambda r: r.answer_yes,
       allowed=_BOOLEAN),
    _c("answered_at", ColumnType.DATETIME, "When the answer was (last) given." + _SHIFTED,
       lambda r: r.answered_at),
    _c("questions_version", ColumnType.STRING, "Version of the question set asked (spondybot's "
       "own questions, not a validated instrument).", lambda r: r.questions_version),
    _c("confirmed", ColumnType.BOOLEAN, "The patient confirmed the check-in's answers.",
       lambda r: r.confirmed, allowed=_BOOLEAN),
)  # fmt: skip
"""The check-in table (`--format checkins`): one row per answer; free-text notes stay out."""

TABLES: Final[dict[str, tuple[Column[Any], ...]]] = {
    "wide": WIDE_COLUMNS,
    "long": LONG_COLUMNS,
    "therapy": THERAPY_COLUMNS,
    "checkins": CHECKIN_COLUMNS,
}
"""The tables by name; `parquet` writes the wide table, `therapy-parquet` and
`checkins-parquet` the therapy and check-in tables, with these same columns."""

DICTIONARY_FIELDS: Final = (
    "table",
    "name",
    "type",
    "unit",
    "allowed_values",
    "meaning",
    "source",
    "spec_reference",
)


def dictionary_rows() -> list[dict[str, str]]:
    """Every column of every table, as the data dictionary lists it."""
    rows = []
    for table, columns in TABLES.items():
        for column in columns:
            rows.append(
                {
                    "table": table,
                    "name": column.name,
                    "type": column.type.value,
                    "unit": column.unit,
                    "allowed_values": column.allowed,
                    "meaning": column.meaning,
                    "source": column.source,
                    "spec_reference": column.spec,
                }
            )
    return rows


def dictionary_csv() -> str:
    """The data dictionary as CSV, one row per column of each table."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=DICTIONARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(dictionary_rows())
    return buffer.getvalue()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_TABLE_TITLES: Final = {
    "wide": "Wide table: `--format wide` (CSV) and `--format parquet`; one row per administration",
    "long": "Long table: `--format long` (CSV); one row per answer, lab value and score",
    "therapy": "Therapy table: `--format therapy` (CSV); one row per therapy episode with its "
    "response (§7); also as FHIR MedicationStatement in `--format fhir`",
    "checkins": "Check-in table: `--format checkins` (CSV); one row per safety check-in "
    "answer (§8)",
}


def dictionary_markdown() -> str:
    """The data dictionary as Markdown: types, then one table per exported table."""
    lines = [
        "# spondybot research export: data dictionary",
        "",
        "Generated by `spondybot export --dictionary` from the column definitions the export "
        "itself uses. Pseudonymisation, date shifting and the FHIR layout are explained in "
        "docs/export.md; clinical references point into the clinical specification "
        f"({SPEC}). An empty cell means the value does not exist.",
        "",
        "## Types",
        "",
        "| type | written as |",
        "|---|---|",
        *(f"| {kind.value} | {_cell(note)} |" for kind, note in TYPE_NOTES.items()),
    ]
    headers = ("name", "type", "unit", "allowed values", "meaning", "source", "spec reference")
    for table, columns in TABLES.items():
        lines += [
            "",
            f"## {_TABLE_TITLES[table]}",
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
        ]
        for column in columns:
            cells = (
                f"`{column.name}`",
                column.type.value,
                column.unit,
                column.allowed,
                column.meaning,
                column.source,
                column.spec,
            )
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"
