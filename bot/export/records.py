"""What one exported administration says, pseudonymised and (optionally) date-shifted.

Storage rows carry the research id and real dates; an `ExportRecord` carries the pseudonym and
the dates as they will be written. Every writer reads records, never storage rows, so no
writer can leak a research id or an unshifted date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from bot.export.pseudonyms import Pseudonymizer
from storage.exports import AdministrationRow, AnswerRow, LabRow, PatientRow
from storage.models import AdministrationStatus


class ExportStatus(StrEnum):
    """An administration's status as exported.

    completed: the patient answered every item and confirmed. partial: some items answered but
    not completed (missed after a partial answer, or still open). missed: the questionnaire
    expired with no answer. An open questionnaire without an answer is not exported yet.
    """

    COMPLETED = "completed"
    PARTIAL = "partial"
    MISSED = "missed"


def export_status(status: str, answered: bool) -> ExportStatus:
    """The exported status of an administration from its stored status and whether any item
    was answered."""
    if status == AdministrationStatus.COMPLETED.value:
        return ExportStatus.COMPLETED
    return ExportStatus.PARTIAL if answered else ExportStatus.MISSED


@dataclass(slots=True)
class LabValue:
    """A lab value as exported (CRP in mg/L, ESR in mm/h)."""

    lab_id: int
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
    administration_id: int
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


class RecordBuilder:
    """Builds export records for one export: one key, dates shifted or not."""

    def __init__(self, pseudonymizer: Pseudonymizer, *, shift_dates: bool) -> None:
        self._pseudonymizer = pseudonymizer
        self.shift_dates = shift_dates

    def _offset(self, research_id: str) -> timedelta | None:
        return self._pseudonymizer.date_offset(research_id) if self.shift_dates else None

    def pseudonym(self, research_id: str) -> str:
        """The pseudonym under this export's key."""
        return self._pseudonymizer.pseudonym(research_id)

    def patient(self, row: PatientRow) -> str:
        """A covered patient's pseudonym."""
        return self.pseudonym(row.research_id)

    def lab(self, row: LabRow) -> tuple[str, LabValue]:
        """A lab value with its patient's pseudonym, its draw time shifted as requested."""
        return self.pseudonym(row.research_id), self._lab(row, self._offset(row.research_id))

    @staticmethod
    def _lab(row: LabRow, offset: timedelta | None) -> LabValue:
        drawn = row.drawn_at if offset is None else row.drawn_at + offset
        return LabValue(row.lab_id, row.analyte, row.value, row.below_detection_limit, drawn)

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
        return ExportRecord(
            pseudonym=self.pseudonym(row.research_id),
            administration_id=row.administration_id,
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
        )
