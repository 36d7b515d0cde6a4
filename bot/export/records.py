"""What one exported administration says, pseudonymised and (optionally) date-shifted.

Storage rows carry the research id and real dates; an `ExportRecord` carries the pseudonym and
the dates as they will be written. Every writer reads records, never storage rows, so no
writer can leak a research id or an unshifted date.

The wide CSV reads a lighter record, `WideText`: the row itself, built straight from text
storage rows by the same rules, because an object and two dozen reads per administration were
much of a large export's time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Final, NamedTuple, TypeVar

from bot.domain import scoring
from bot.domain.instruments import ITEM_CODES
from bot.export.pseudonyms import Pseudonymizer
from storage.exports import (
    AdministrationRow,
    AdministrationText,
    AdministrationValues,
    AnswerRow,
    LabRow,
)
from storage.models import AdministrationStatus

CSV_BOOLEANS: Final[dict[int, str]] = {True: "true", False: "false"}
"""How CSV writes a boolean."""


class ExportStatus(StrEnum):
    """An administration's status as exported.

    completed: the patient answered every item and confirmed. partial: some items answered but
    not completed (missed after a partial answer, or still open). missed: the questionnaire
    expired with no answer. An open questionnaire without an answer is not exported yet.
    """

    COMPLETED = "completed"
    PARTIAL = "partial"
    MISSED = "missed"


_COMPLETED: Final = AdministrationStatus.COMPLETED.value


def export_status(status: str, answered: bool) -> ExportStatus:
    """The exported status of an administration from its stored status and whether any item
    was answered."""
    if status == _COMPLETED:
        return ExportStatus.COMPLETED
    return ExportStatus.PARTIAL if answered else ExportStatus.MISSED


# Both are asked once or twice per exported row, and a score repeats often (BASDAI takes few
# distinct values): cached, a repeat costs a dictionary lookup instead of a Decimal conversion
# and the checks of the scoring functions.
@lru_cache(maxsize=4096)
def basdai_flag(basdai: Decimal | str | None) -> bool | None:
    """Whether an exported BASDAI means active disease; None without a BASDAI."""
    return None if basdai is None else scoring.basdai_active(basdai)


@lru_cache(maxsize=4096)
def asdas_state(asdas: Decimal | str | None) -> str | None:
    """The disease activity state of an exported ASDAS; None without an ASDAS."""
    return None if asdas is None else scoring.asdas_category(asdas).value


@dataclass(frozen=True, slots=True)
class Baseline:
    """A patient's baseline questionnaire, which BASDAI responses compare with (spec §3): the
    first completed questionnaire with a BASDAI, or the one nearest to the baseline date the
    clinic set (the earlier on a tie), as the digest chooses it
    (`storage.exports.basdai_baselines`)."""

    administration_id: int
    basdai: Decimal


_NO_RESPONSE: Final = (None, None)


def basdai_responses(
    baseline: Decimal | str | None, basdai: Decimal | str | None
) -> tuple[bool | None, bool | None]:
    """BASDAI50 and the ASAS/EULAR BASDAI response (≥ 50 % or ≥ 2 points) against the
    baseline, each on its own (clinical spec §3, §6); None without both scores."""
    if baseline is None or basdai is None:
        return _NO_RESPONSE
    return (
        scoring.basdai50(baseline, basdai),
        scoring.asdas_eular_basdai_response(baseline, basdai),
    )


_HALVED: Final = (True, True)
"""BASDAI halved: BASDAI50, and so the ASAS/EULAR response too."""
_TWO_POINTS_ONLY: Final = (False, True)
_NEITHER: Final = (False, False)


class ResponseRules:
    """`basdai_responses` for every row of an export, at the cost of a few integer operations.

    The rules compare decimals exactly; each distinct value (a registry's BASDAIs take a few
    hundred) is checked once by the rules themselves and kept as an exact integer count of
    10**-DIGITS, so a pair's answer is the same comparison on integers. A table of answers per
    pair, the earlier way, missed on every new pair (15 % of the rows of a 10,000-patient
    registry) and, as the registry grew, overflowed and refilled.
    """

    DIGITS: Final = 20
    """Decimal places an exact integer keeps; a value with more is left to the rules."""
    LIMIT: Final = 1 << 16
    """Distinct values kept at most; the table starts again empty beyond (memory stays flat)."""
    _BY_THE_RULES: Final = -1
    """Kept for a value the rules refuse or that has more places than DIGITS: each pair with
    it is answered by the rules themselves (which raise as they always did)."""
    _TWO_POINTS: Final = int(scoring.ASAS_EULAR_ABSOLUTE_POINTS.scaleb(DIGITS))

    def __init__(self) -> None:
        self._exact: dict[Decimal | str, int] = {}

    def __call__(
        self, baseline: Decimal | str | None, basdai: Decimal | str | None
    ) -> tuple[bool | None, bool | None]:
        if baseline is None or basdai is None:
            return _NO_RESPONSE
        exact = self._exact
        before = exact.get(baseline)
        if before is None:
            before = self._learn(baseline)
        after = exact.get(basdai)
        if after is None:
            after = self._learn(basdai)
        if before < 0 or after < 0:
            return basdai_responses(baseline, basdai)
        # scoring._basdai_improvement and asdas_eular_basdai_response, on exact integers.
        improvement = before - after
        if before > 0 and 2 * improvement >= before:
            return _HALVED
        return _TWO_POINTS_ONLY if improvement >= self._TWO_POINTS else _NEITHER

    def _learn(self, value: Decimal | str) -> int:
        """Checks `value` by the rules and keeps it as an exact integer (or as _BY_THE_RULES)."""
        if len(self._exact) >= self.LIMIT:
            self._exact.clear()
        scaled = self._BY_THE_RULES
        try:
            basdai_responses(value, value)  # the rules' own checks of a BASDAI
        except ValueError:
            pass
        else:
            number = Decimal(value.strip()) if isinstance(value, str) else value
            sign, digits, exponent = number.as_tuple()
            if isinstance(exponent, int) and exponent >= -self.DIGITS:
                coefficient = int("".join(map(str, digits))) if digits else 0
                scaled = coefficient * 10 ** (exponent + self.DIGITS)
                if sign:
                    scaled = -scaled  # only -0 passes the rules' checks: 0
        self._exact[value] = scaled
        return scaled


def shift_text(moment: str, offset: timedelta) -> str:
    """ISO 8601 UTC text moved by a whole number of days. Only the date changes, exactly as for
    the `datetime` it stands for: UTC has no daylight saving."""
    return (date.fromisoformat(moment[:10]) + offset).isoformat() + moment[10:]


@dataclass(slots=True)
class LabValue:
    """A lab value as exported (CRP in mg/L, ESR in mm/h)."""

    lab_id: str
    """The keyed record id (`Pseudonymizer.record_id`), never the database id."""
    analyte: str
    value: Decimal
    below_detection_limit: bool
    drawn_at: datetime


AnswerValue = AnswerRow
"""One item's answer as exported; `raw_value` is minutes for q6 and the rating otherwise.

Storage's answer rows carry nothing identifying, so they are exported as they are (with the
answer time shifted when dates are shifted)."""


# Export rows are built once per administration and never changed; they are not frozen only
# because frozen dataclasses are markedly slower to construct.
@dataclass(slots=True)
class ExportRecord:
    """One administration as exported: pseudonym, dates as written, answers, scores, labs."""

    pseudonym: str
    administration_id: str
    """The keyed record id (`Pseudonymizer.record_id`), never the database id."""
    scheduled_for: datetime
    completed_at: datetime | None
    status: ExportStatus
    stored_status: str
    language: str
    instrument_version: str
    scores: dict[str, Decimal]
    """Each answered item's 0–10 value, by item code."""
    stiffness_minutes: Decimal | None
    """Item 6 as the patient gave it, in minutes."""
    answers: dict[str, AnswerValue]
    """Answers with version and time (as written); empty unless the format needs them."""
    basdai: Decimal | None
    asdas_crp: Decimal | None
    crp_floored: bool | None
    asdas_esr: Decimal | None
    crp: LabValue | None
    esr: LabValue | None
    basdai50: bool | None = None
    basdai_asas_eular: bool | None = None


class WideText(NamedTuple):
    """One row of the wide table as CSV writes it, every cell as text ("" when empty), its fields
    named and ordered as `bot.export.columns.WIDE_COLUMNS`."""

    patient_pseudonym: str
    administration_id: str
    scheduled_for: str
    completed_at: str
    status: str
    language: str
    instrument_version: str
    q1_fatigue: str
    q2_back_pain: str
    q3_peripheral_pain: str
    q4_enthesitis: str
    q5_stiffness_severity: str
    q6_stiffness_duration: str
    q6_stiffness_minutes: str
    patient_global: str
    basdai: str
    basdai_active: str
    crp_mg_l: str
    crp_drawn_at: str
    crp_floored: str
    asdas_crp: str
    asdas_crp_state: str
    esr_mm_h: str
    esr_drawn_at: str
    asdas_esr: str
    asdas_esr_state: str
    basdai50: str
    basdai_asas_eular_response: str


_new_row: Final = tuple.__new__
"""Builds a named tuple from a tuple in one C call, a third of the time its own constructor (a
Python function) takes: it is called for every row of an export."""

_UNANSWERED: Final = (None,) * (1 + len(ITEM_CODES))
"""No answer: neither the duration item's raw answer nor any score."""
_NO_ASDAS: Final = ("",) * 5
"""The empty cells of an ASDAS not exported: lab value, draw time, (CRP floor,) score, state."""
_NO_VALUES: Final = (None,) * 5
"""As `_NO_ASDAS`, for the typed table."""
_DAY_MICROSECONDS: Final = 86_400_000_000
"""A day in microseconds, the unit of the typed table's times."""


_STATUS_VALUES: Final = {status: status.value for status in ExportStatus}
"""Each exported status as the plain string the typed table holds (`.value` is a slow
property, asked for every row)."""
_ITEMS: Final = len(ITEM_CODES)
_Stored = TypeVar("_Stored", AdministrationText, AdministrationValues)
_Given = tuple[str | None, ...]
"""An administration's answers pivoted: the duration item's raw answer, then each score."""


def _compared_with(baseline: Baseline | None, administration_id: int) -> Decimal | None:
    """The baseline BASDAI an administration compares with; None for the baseline itself."""
    if baseline is None or baseline.administration_id == administration_id:
        return None
    return baseline.basdai


class RecordBuilder:
    """Builds export records for one export: one key, dates shifted or not."""

    def __init__(
        self,
        pseudonymizer: Pseudonymizer,
        *,
        shift_dates: bool,
        baselines: Mapping[str, Baseline] | None = None,
        responses: ResponseRules | None = None,
    ) -> None:
        self._pseudonymizer = pseudonymizer
        self.shift_dates = shift_dates
        self._baselines = baselines or {}
        self._responses = ResponseRules() if responses is None else responses

    def for_batch(self, baselines: Mapping[str, Baseline]) -> RecordBuilder:
        """A builder for one batch of patients: this export's key and dates, with the
        baselines of the batch's patients (read per batch, so an export holds only a batch's
        history, never the whole registry's)."""
        return RecordBuilder(
            self._pseudonymizer,
            shift_dates=self.shift_dates,
            baselines=baselines,
            responses=self._responses,
        )

    def _answered(
        self, rows: Iterable[_Stored], answers: Mapping[int, _Given]
    ) -> Iterator[tuple[_Stored, _Given, bool, str, timedelta | None, Decimal | None]]:
        """Each administration read with its answers by id (pivoted: the duration item's raw
        answer, then each item's score in ITEM_CODES order; all None when it has none), whether
        any item was answered, and its patient's pseudonym, date offset (None when dates are
        not shifted) and the baseline BASDAI it compares with (`_compared_with`).

        A batch's rows come patient by patient, so the patient's values are looked up once
        per patient, not once per row.
        """
        research_id = None
        pseudonym, offset, baseline = "", None, None
        for stored in rows:
            if stored.research_id != research_id:
                research_id = stored.research_id
                pseudonym = self.pseudonym(research_id)
                offset = self._offset(research_id)
                baseline = self._baselines.get(research_id)
            given = answers.get(stored.administration_id, _UNANSWERED)
            yield (
                stored,
                given,
                given.count(None) - (given[0] is None) < _ITEMS,
                pseudonym,
                offset,
                _compared_with(baseline, stored.administration_id),
            )

    def _offset(self, research_id: str) -> timedelta | None:
        return self._pseudonymizer.date_offset(research_id) if self.shift_dates else None

    def date_offset(self, research_id: str) -> timedelta | None:
        """The patient's date shift in this export (None when dates are not shifted); the same
        offset moves every row of the patient, whichever table it is in."""
        return self._offset(research_id)

    def pseudonym(self, research_id: str) -> str:
        """The pseudonym under this export's key."""
        return self._pseudonymizer.pseudonym(research_id)

    def lab(self, row: LabRow) -> tuple[str, LabValue]:
        """A lab value with its patient's pseudonym, its draw time shifted as requested."""
        return self.pseudonym(row.research_id), self._lab(row, self._offset(row.research_id))

    def record_id(self, kind: str, row_id: int) -> str:
        """The exported id of a stored row: a keyed hash, so it says nothing about time."""
        return self._pseudonymizer.record_id(kind, row_id)

    def _lab(self, row: LabRow, offset: timedelta | None) -> LabValue:
        drawn = row.drawn_at if offset is None else row.drawn_at + offset
        return LabValue(
            self.record_id("lab", row.lab_id),
            row.analyte,
            row.value,
            row.below_detection_limit,
            drawn,
        )

    @staticmethod
    def _shifted(row: AnswerRow, offset: timedelta) -> AnswerValue:
        answered = None if row.answered_at is None else row.answered_at + offset
        return AnswerValue(row.item_code, row.raw_value, row.score, row.version, answered)

    def record(self, row: AdministrationRow) -> ExportRecord:
        """The export record of one administration.

        A stored ASDAS whose lab value is not exported (deleted since, or drawn after the
        patient withdrew) is left out with it, so every exported ASDAS comes with its lab value.
        """
        offset = self._offset(row.research_id)
        scheduled = row.slot_at
        completed = row.completed_at
        if offset is not None:
            scheduled = scheduled + offset
            completed = None if completed is None else completed + offset
        asdas_crp = row.asdas_crp if row.crp is not None else None
        asdas_esr = row.asdas_esr if row.esr is not None else None
        compared = None if row.status != _COMPLETED else row.basdai
        halved, asas_eular = self._responses(
            _compared_with(self._baselines.get(row.research_id), row.administration_id), compared
        )
        return ExportRecord(
            pseudonym=self.pseudonym(row.research_id),
            administration_id=self.record_id("administration", row.administration_id),
            scheduled_for=scheduled,
            completed_at=completed,
            status=export_status(row.status, bool(row.scores)),
            stored_status=row.status,
            language=row.language,
            instrument_version=row.instrument_version,
            scores=row.scores,
            stiffness_minutes=row.duration_raw,
            answers=row.answers
            if offset is None
            else {code: self._shifted(answer, offset) for code, answer in row.answers.items()},
            basdai=row.basdai,
            asdas_crp=asdas_crp,
            crp_floored=row.crp_floored if asdas_crp is not None else None,
            asdas_esr=asdas_esr,
            crp=None if asdas_crp is None or row.crp is None else self._lab(row.crp, offset),
            esr=None if asdas_esr is None or row.esr is None else self._lab(row.esr, offset),
            basdai50=halved,
            basdai_asas_eular=asas_eular,
        )

    def wide_text(
        self,
        rows: Iterable[AdministrationText],
        answers: Mapping[int, _Given],
    ) -> list[WideText]:
        """The wide table's rows for administrations read as text, with their answers by id: the
        raw answer of the duration item, then each item's score in ITEM_CODES order.

        The rules are those of `record` and of the wide columns' readers, applied to the text
        storage gives, which CSV writes as it is: one tuple per administration, made at once.
        """
        words = CSV_BOOLEANS
        record_id = self._pseudonymizer.record_id
        wide: list[WideText] = []
        append = wide.append
        for stored, given, answered, pseudonym, offset, baseline in self._answered(rows, answers):
            minutes, q1, q2, q3, q4, q5, q6, patient_global = given
            scheduled, completed = stored.slot_at, stored.completed_at
            crp_drawn, esr_drawn = stored.crp_drawn_at, stored.esr_drawn_at
            if offset is not None:
                scheduled = shift_text(scheduled, offset)
                completed = None if completed is None else shift_text(completed, offset)
                crp_drawn = None if crp_drawn is None else shift_text(crp_drawn, offset)
                esr_drawn = None if esr_drawn is None else shift_text(esr_drawn, offset)
            basdai = stored.basdai
            active = basdai_flag(basdai)
            # An ASDAS comes with its lab value, or neither is exported.
            crp, asdas_crp, floored = stored.crp_value, stored.asdas_crp, stored.crp_floored
            if crp is None or asdas_crp is None or floored is None:
                crp, crp_when, crp_floored, asdas_crp, crp_state = _NO_ASDAS
            else:
                crp_when, crp_floored = crp_drawn or "", words[floored]
                crp_state = asdas_state(asdas_crp) or ""
            esr, asdas_esr = stored.esr_value, stored.asdas_esr
            if esr is None or asdas_esr is None:
                esr, esr_when, asdas_esr, esr_state = _NO_ASDAS[1:]
            else:
                esr_when, esr_state = esr_drawn or "", asdas_state(asdas_esr) or ""
            halved, asas_eular = self._responses(
                baseline, basdai if stored.status == _COMPLETED else None
            )
            append(
                _new_row(
                    WideText,
                    (
                        pseudonym,
                        record_id("administration", stored.administration_id),
                        scheduled,
                        completed or "",
                        # A StrEnum is the str CSV writes; its .value is a slow property.
                        export_status(stored.status, answered),
                        stored.language,
                        stored.instrument_version,
                        q1 or "",
                        q2 or "",
                        q3 or "",
                        q4 or "",
                        q5 or "",
                        q6 or "",
                        minutes or "",
                        patient_global or "",
                        basdai or "",
                        "" if active is None else words[active],
                        crp,
                        crp_when,
                        crp_floored,
                        asdas_crp,
                        crp_state,
                        esr,
                        esr_when,
                        asdas_esr,
                        esr_state,
                        "" if halved is None else words[halved],
                        "" if asas_eular is None else words[asas_eular],
                    ),
                )
            )
        return wide

    def wide_values(
        self,
        rows: Iterable[AdministrationValues],
        answers: Mapping[int, _Given],
    ) -> list[tuple[object, ...]]:
        """The wide table's rows as the typed table (Parquet) holds them, for administrations
        read with times in microseconds, with their answers by id (as for `wide_text`).

        One tuple per administration, its cells in WIDE_COLUMNS order: strings, booleans and
        None as the export record's columns read them; decimals as their stored text and times
        as whole microseconds since 1970 (UTC, shifted as requested), which the Parquet writer
        turns into doubles and timestamps a column at a time.
        """
        record_id = self._pseudonymizer.record_id
        values: list[tuple[object, ...]] = []
        append = values.append
        for stored, given, answered, pseudonym, offset, baseline in self._answered(rows, answers):
            minutes, q1, q2, q3, q4, q5, q6, patient_global = given
            scheduled, completed = stored.slot_at, stored.completed_at
            crp_drawn, esr_drawn = stored.crp_drawn_at, stored.esr_drawn_at
            if offset is not None:
                moved = offset.days * _DAY_MICROSECONDS
                scheduled += moved
                completed = None if completed is None else completed + moved
                crp_drawn = None if crp_drawn is None else crp_drawn + moved
                esr_drawn = None if esr_drawn is None else esr_drawn + moved
            basdai = stored.basdai
            # An ASDAS comes with its lab value, or neither is exported.
            crp, asdas_crp, floored = stored.crp_value, stored.asdas_crp, stored.crp_floored
            crp_floored: bool | None
            if crp is None or asdas_crp is None or floored is None:
                crp, crp_drawn, crp_floored, asdas_crp, crp_state = _NO_VALUES
            else:
                crp_floored, crp_state = bool(floored), asdas_state(asdas_crp)
            esr, asdas_esr = stored.esr_value, stored.asdas_esr
            if esr is None or asdas_esr is None:
                esr, esr_drawn, asdas_esr, esr_state = _NO_VALUES[1:]
            else:
                esr_state = asdas_state(asdas_esr)
            halved, asas_eular = self._responses(
                baseline, basdai if stored.status == _COMPLETED else None
            )
            append(
                (
                    pseudonym,
                    record_id("administration", stored.administration_id),
                    scheduled,
                    completed,
                    _STATUS_VALUES[export_status(stored.status, answered)],
                    stored.language,
                    stored.instrument_version,
                    q1,
                    q2,
                    q3,
                    q4,
                    q5,
                    q6,
                    minutes,
                    patient_global,
                    basdai,
                    basdai_flag(basdai),
                    crp,
                    crp_drawn,
                    crp_floored,
                    asdas_crp,
                    crp_state,
                    esr,
                    esr_drawn,
                    asdas_esr,
                    esr_state,
                    halved,
                    asas_eular,
                )
            )
        return values
