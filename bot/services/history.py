"""A patient's recent scores (for `/history` and the physician's view) and what comes next
(`/status`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Final

from bot.context import AppContext
from bot.domain import scoring
from bot.services.patients import linked_patient
from bot.services.questionnaire import next_scheduled_slot
from storage import administrations, labs, patients, scores

HISTORY_WEEKS: Final = 12


@dataclass(frozen=True)
class HistoryEntry:
    """One completed questionnaire with its scores (ASDAS-CRP preferred, clinical spec §2)."""

    administration_id: int
    completed_at: datetime
    kind: str
    basdai: Decimal | None
    asdas: Decimal | None
    asdas_kind: str | None
    crp_floored: bool

    @property
    def asdas_state(self) -> scoring.AsdasState | None:
        """The state from the unrounded ASDAS (clinical spec §3)."""
        return None if self.asdas is None else scoring.asdas_category(self.asdas)


@dataclass(frozen=True)
class Comparison:
    """A follow-up against its baseline, reported as clinical spec §3 and §6 ask: the ASDAS
    change class within one variant, and BASDAI50 beside the ASAS/EULAR BASDAI response."""

    baseline: HistoryEntry
    followup: HistoryEntry
    asdas_change: scoring.AsdasChange | None
    basdai50: bool | None
    asas_eular_response: bool | None


def compare(baseline: HistoryEntry, followup: HistoryEntry) -> Comparison:
    """How `followup` compares with `baseline`; a change is only computed between two ASDAS of
    the same variant (CRP with CRP, ESR with ESR: clinical spec §6)."""
    asdas_change = None
    if (
        baseline.asdas is not None
        and followup.asdas is not None
        and baseline.asdas_kind == followup.asdas_kind
    ):
        asdas_change = scoring.asdas_change(baseline.asdas, followup.asdas)
    basdai50 = asas_eular = None
    if baseline.basdai is not None and followup.basdai is not None:
        basdai50 = scoring.basdai50(baseline.basdai, followup.basdai)
        asas_eular = scoring.asdas_eular_basdai_response(baseline.basdai, followup.basdai)
    return Comparison(
        baseline=baseline,
        followup=followup,
        asdas_change=asdas_change,
        basdai50=basdai50,
        asas_eular_response=asas_eular,
    )


@dataclass(frozen=True)
class LabMark:
    """When a CRP or ESR was drawn."""

    drawn_at: datetime
    analyte: str


@dataclass(frozen=True)
class History:
    """Scores over a period, oldest first, in the patient's language and time zone."""

    patient_id: int
    language: str
    timezone: str
    since: datetime
    until: datetime
    entries: list[HistoryEntry]
    labs: list[LabMark]


def history_of_patient(ctx: AppContext, *, patient_id: int, weeks: int = HISTORY_WEEKS) -> History:
    """The scores of one patient's questionnaires completed in the last `weeks` weeks."""
    now = ctx.clock.now()
    since = now - timedelta(weeks=weeks)
    with ctx.session() as session:
        patient = patients.get_patient(session=session, patient_id=patient_id)
        if patient is None:
            raise LookupError(f"no patient {patient_id}")
        completed = administrations.completed_since(
            session=session, patient_id=patient_id, since=since
        )
        ids = [a.id for a in completed if a.id is not None]
        stored = scores.scores_of_many(session=session, administration_ids=ids)
        entries = []
        for administration in completed:
            assert administration.id is not None
            assert administration.completed_at is not None
            record = stored.get(administration.id)
            asdas, kind = None, None
            if record is not None and record.asdas_crp is not None:
                asdas, kind = record.asdas_crp, "CRP"
            elif record is not None and record.asdas_esr is not None:
                asdas, kind = record.asdas_esr, "ESR"
            entries.append(
                HistoryEntry(
                    administration_id=administration.id,
                    completed_at=administration.completed_at,
                    kind=administration.kind,
                    basdai=None if record is None else record.basdai,
                    asdas=asdas,
                    asdas_kind=kind,
                    crp_floored=record is not None and record.crp_floored and kind == "CRP",
                )
            )
        marks = [
            LabMark(drawn_at=lab.drawn_at, analyte=lab.analyte)
            for lab in labs.list_lab_results(session=session, patient_id=patient_id)
            if since <= lab.drawn_at <= now
        ]
        return History(
            patient_id=patient_id,
            language=patient.language,
            timezone=patient.timezone,
            since=since,
            until=now,
            entries=entries,
            labs=marks,
        )


def my_history(ctx: AppContext, *, telegram_user_id: int) -> History | None:
    """`/history` of the patient linked to this account; None if the account is no patient."""
    with ctx.session() as session:
        patient = linked_patient(session, telegram_user_id=telegram_user_id, now=ctx.clock.now())
        patient_id = None if patient is None else patient.id
    if patient_id is None:
        return None
    return history_of_patient(ctx, patient_id=patient_id)


@dataclass(frozen=True)
class StatusView:
    """What `/status` shows: the weekly slot, the next questionnaire, and any open one."""

    language: str
    timezone: str
    status: str
    weekday: int
    at: time
    next_slot: datetime | None
    paused_until: datetime | None
    open_administration_id: int | None
    open_started: bool
    open_expires_at: datetime | None


def my_status(ctx: AppContext, *, telegram_user_id: int) -> StatusView | None:
    """`/status` of the patient linked to this account; None if the account is no patient."""
    now = ctx.clock.now()
    with ctx.session() as session:
        patient = linked_patient(session, telegram_user_id=telegram_user_id, now=now)
        if patient is None:
            return None
        assert patient.id is not None
        open_one = administrations.get_open_administration(
            session=session, patient_id=patient.id, now=now
        )
        return StatusView(
            language=patient.language,
            timezone=patient.timezone,
            status=patient.status,
            weekday=patient.schedule_weekday,
            at=patient.schedule_time,
            next_slot=next_scheduled_slot(patient, now),
            paused_until=patient.paused_until,
            open_administration_id=None if open_one is None else open_one.id,
            open_started=open_one is not None and open_one.current_item is not None,
            open_expires_at=None if open_one is None else open_one.expires_at,
        )
