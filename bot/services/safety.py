"""The safety check-in of clinical spec §8: opening it, answers, back/change, confirm, notes.

Every answer is stored the moment it is given, in the same transaction that moves the
check-in on (compare-and-set, so a stale or duplicated press changes nothing) and, for a
red flag, claims the physician's alert in the delivery log under a key of its own: the
alert is sent at most once, whichever process handles the press and whatever restarts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import safety as rules
from bot.domain.safety import PatientAdvice
from bot.services import audit_trail
from bot.services.identifiers import identifier_of
from bot.services.patients import linked_patient
from bot.services.refusal import Refused, run_refusable
from bot.services.therapy import episodes_of_patient
from storage import administrations, deliveries, safety
from storage import digest as digest_storage
from storage.models import (
    AdministrationKind,
    AdministrationStatus,
    Patient,
    PatientStatus,
    SafetyCheckin,
)

logger = logging.getLogger(__name__)

ACTOR = "patient"
ALERT_KIND = "safety_alert"
WEEKLY = "weekly"
REPORT = "report"
SUMMARY = safety.SUMMARY
_ANSWERING = frozenset({PatientStatus.ACTIVE.value, PatientStatus.PAUSED.value})


class SafetyOutcome(StrEnum):
    SHOW = "show"  # the view is where the check-in now stands
    STALE = "stale"  # the press did not fit the current step: nothing recorded
    CONFIRMED = "confirmed"  # confirmed just now
    ALREADY_CONFIRMED = "already_confirmed"
    NOTE_SAVED = "note_saved"
    NOT_YOURS = "not_yours"
    NOT_ACTIVE = "not_active"


@dataclass(frozen=True)
class SafetyAnswerView:
    code: str
    yes: bool
    note: str | None


@dataclass(frozen=True)
class SafetyView:
    """Where a check-in stands: the current question (or "summary") and the answers so far."""

    checkin_id: int
    kind: str
    current: str
    answers: tuple[SafetyAnswerView, ...]

    def answer(self, code: str) -> SafetyAnswerView | None:
        return next((a for a in self.answers if a.code == code), None)


@dataclass(frozen=True)
class SafetyAlert:
    """One immediate alert to a physician, already claimed in the delivery log."""

    delivery_id: int
    chat_id: int
    language: str
    patient_identifier: str
    question_code: str
    answered_at: datetime
    timezone: str


@dataclass(frozen=True)
class SafetyReply:
    """What the patient sees next, the advice a "yes" calls for at once, and alerts to send."""

    outcome: SafetyOutcome
    language: str
    view: SafetyView | None = None
    advice: tuple[PatientAdvice, ...] = ()
    emergency_number: str | None = None
    alerts: tuple[SafetyAlert, ...] = ()


def _patient(session: Session, telegram_user_id: int, now: datetime) -> Patient:
    patient = linked_patient(session, telegram_user_id=telegram_user_id, now=now)
    if patient is None:
        raise Refused(SafetyReply(SafetyOutcome.NOT_YOURS, language="en"))
    if patient.status not in _ANSWERING:
        raise Refused(SafetyReply(SafetyOutcome.NOT_ACTIVE, language=patient.language))
    return patient


def _view_of(session: Session, checkin: SafetyCheckin) -> SafetyView:
    assert checkin.id is not None
    stored = safety.answers_of(session=session, checkin_id=checkin.id)
    return SafetyView(
        checkin_id=checkin.id,
        kind=checkin.kind,
        current=checkin.current_question or SUMMARY,
        answers=tuple(
            SafetyAnswerView(code, stored[code].answer_yes, stored[code].note)
            for code in rules.QUESTION_CODES
            if code in stored
        ),
    )


def _own_open(
    session: Session, telegram_user_id: int, checkin_id: int, now: datetime
) -> tuple[Patient, SafetyCheckin]:
    """The answering patient and their check-in with this id, still open; refused otherwise."""
    patient = _patient(session, telegram_user_id, now)
    checkin = safety.get_checkin(session=session, checkin_id=checkin_id)
    if checkin is None or checkin.patient_id != patient.id:
        raise Refused(SafetyReply(SafetyOutcome.NOT_YOURS, language=patient.language))
    if checkin.status != safety.OPEN:
        raise Refused(SafetyReply(SafetyOutcome.ALREADY_CONFIRMED, language=patient.language))
    return patient, checkin


def _audit(
    session: Session,
    now: datetime,
    patient: Patient,
    *,
    entity: str,
    checkin_id: int,
    action: str,
    before: dict[str, object] | None = None,
    after: dict[str, object] | None = None,
) -> None:
    """One line of the audit trail for a patient's own step in their check-in."""
    audit_trail.record_change(
        session,
        entity,
        checkin_id,
        patient,
        actor=ACTOR,
        action=action,
        values=(before, after),
        now=now,
    )


def _open_of(
    session: Session, telegram_user_id: int, now: datetime
) -> tuple[Patient, SafetyCheckin] | None:
    """The linked patient and their open check-in, or None when either is missing."""
    patient = linked_patient(session, telegram_user_id=telegram_user_id, now=now)
    if patient is None or patient.id is None:
        return None
    checkin = safety.open_checkin_of(session=session, patient_id=patient.id)
    if checkin is None or checkin.id is None:
        return None
    return patient, checkin


def _moved(
    ctx: AppContext, session: Session, patient: Patient, checkin: SafetyCheckin, moved: bool
) -> SafetyReply:
    """The check-in at its new question, or as it stands when the move found it elsewhere."""
    if not moved:
        return _show(ctx, session, patient, checkin, SafetyOutcome.STALE)
    session.refresh(checkin)
    return _show(ctx, session, patient, checkin, SafetyOutcome.SHOW)


def _show(
    ctx: AppContext,
    session: Session,
    patient: Patient,
    checkin: SafetyCheckin,
    outcome: SafetyOutcome,
) -> SafetyReply:
    """The check-in where it stands; every screen names the emergency number (§8)."""
    return SafetyReply(
        outcome,
        language=patient.language,
        view=_view_of(session, checkin),
        emergency_number=ctx.settings.emergency_number,
    )


def applies_to(ctx: AppContext, session: Session, patient: Patient, now: datetime) -> bool:
    """Whether this patient is asked the check-in: the deployment has check-ins on, and the
    clinic's per-patient choice or the §8 default (an open TNF, IL-17 or JAK inhibitor)."""
    if not ctx.settings.safety_checkins:
        return False
    today = now.astimezone(ZoneInfo(ctx.settings.clinic_timezone)).date()
    return rules.checkin_applies(
        [view.episode for view in episodes_of_patient(session, patient=patient)],
        today=today,
        clinic_setting=patient.safety_checkin,
    )


def after_questionnaire(
    ctx: AppContext, *, telegram_user_id: int, administration_id: int
) -> SafetyReply | None:
    """After a weekly questionnaire is confirmed: opens its check-in (once, however often
    this is called) and shows where it stands, or None if the patient is not asked (§8)."""
    now = ctx.clock.now()
    with ctx.session() as session:
        patient = linked_patient(session, telegram_user_id=telegram_user_id, now=now)
        if patient is None or patient.id is None or patient.status not in _ANSWERING:
            return None
        administration = administrations.get_administration(
            session=session, administration_id=administration_id
        )
        if (
            administration is None
            or administration.patient_id != patient.id
            or administration.status != AdministrationStatus.COMPLETED.value
            or administration.kind != AdministrationKind.SCHEDULED.value
            or not applies_to(ctx, session, patient, now)
        ):
            return None
        checkin = safety.open_checkin(
            session=session,
            patient_id=patient.id,
            administration_id=administration_id,
            kind=WEEKLY,
            version=rules.CHECKIN_VERSION,
            language=patient.language,
            first_question=rules.QUESTION_CODES[0],
            now=now,
        )
        if checkin.status != safety.OPEN:
            return None
        return _show(ctx, session, patient, checkin, SafetyOutcome.SHOW)


def report(ctx: AppContext, *, telegram_user_id: int) -> SafetyReply:
    """`/sideeffect`: the patient reports an event any time, through the same questions and
    the same red-flag path (§8); an open check-in is resumed instead of opening another."""

    def action(session: Session, now: datetime) -> SafetyReply:
        patient = _patient(session, telegram_user_id, now)
        assert patient.id is not None
        checkin = safety.open_checkin_of(session=session, patient_id=patient.id)
        if checkin is None:
            checkin = safety.open_checkin(
                session=session,
                patient_id=patient.id,
                kind=REPORT,
                version=rules.CHECKIN_VERSION,
                language=patient.language,
                first_question=rules.QUESTION_CODES[0],
                now=now,
            )
        return _show(ctx, session, patient, checkin, SafetyOutcome.SHOW)

    return run_refusable(ctx, action)


def resume(ctx: AppContext, *, telegram_user_id: int) -> SafetyReply | None:
    """The patient's open check-in where it stands, or None (typed text, restarts)."""
    with ctx.session() as session:
        found = _open_of(session, telegram_user_id, ctx.clock.now())
        if found is None:
            return None
        patient, checkin = found
        return _show(ctx, session, patient, checkin, SafetyOutcome.SHOW)


def _next_unanswered(answered: set[str]) -> str:
    for code in rules.QUESTION_CODES:
        if code not in answered:
            return code
    return SUMMARY


def _claim_alert(
    ctx: AppContext,
    session: Session,
    patient: Patient,
    checkin_id: int,
    code: str,
    now: datetime,
) -> SafetyAlert | None:
    """Claims the physician's alert for a red flag (§8: "physician alerted now", whatever
    their alert setting); None if already claimed or the physician has no Telegram link."""
    rows = digest_storage.physicians_with_chats(session=session, physician_id=patient.physician_id)
    if not rows or rows[0].chat_id is None:
        return None
    physician = rows[0].physician
    claimed = deliveries.claim_delivery(
        session=session,
        dedupe_key=f"safety:{checkin_id}:{code}",
        kind=ALERT_KIND,
        now=now,
        patient_id=patient.id,
        physician_id=physician.id,
    )
    if claimed is None or claimed.id is None:
        return None
    return SafetyAlert(
        delivery_id=claimed.id,
        chat_id=rows[0].chat_id,
        language=physician.language,
        patient_identifier=identifier_of(patient, ctx.settings.patient_identifier),
        question_code=code,
        answered_at=now,
        timezone=physician.timezone,
    )


def answer(
    ctx: AppContext, *, telegram_user_id: int, checkin_id: int, code: str, yes: bool
) -> SafetyReply:
    """Yes or no to the current question: stored at once, the check-in moves to the next
    unanswered question (or the summary), and a "yes" sets off what §8's table says."""

    def action(session: Session, now: datetime) -> SafetyReply:
        patient, checkin = _own_open(session, telegram_user_id, checkin_id, now)
        if checkin.current_question != code:
            return _show(ctx, session, patient, checkin, SafetyOutcome.STALE)
        stored = safety.answers_of(session=session, checkin_id=checkin_id)
        answered = {*stored, code}
        if not safety.move_question(
            session=session, checkin_id=checkin_id, expected=code, new=_next_unanswered(answered)
        ):
            return _show(ctx, session, patient, checkin, SafetyOutcome.STALE)
        _, previous = safety.save_answer(
            session=session,
            checkin_id=checkin_id,
            question_code=code,
            answer_yes=yes,
            version=rules.CHECKIN_VERSION,
            now=now,
        )
        _audit(
            session,
            now,
            patient,
            entity="safety_answer",
            checkin_id=checkin_id,
            action="answer" if previous is None else "change",
            before=None if previous is None else {"question": code, "yes": previous},
            after={"question": code, "yes": yes, "version": rules.CHECKIN_VERSION},
        )
        action_ = rules.action_for(code, yes)
        alerts: list[SafetyAlert] = []
        if action_ is not None and action_.alert_physician_now:
            alert = _claim_alert(ctx, session, patient, checkin_id, code, now)
            if alert is not None:
                alerts.append(alert)
            logger.warning(
                "safety red flag", extra={"fields": {"checkin_id": checkin_id, "question": code}}
            )
        session.refresh(checkin)
        return SafetyReply(
            SafetyOutcome.SHOW,
            language=patient.language,
            view=_view_of(session, checkin),
            advice=rules.advice_for([code] if yes else []),
            emergency_number=ctx.settings.emergency_number,
            alerts=tuple(alerts),
        )

    return run_refusable(ctx, action)


def back(ctx: AppContext, *, telegram_user_id: int, checkin_id: int, code: str) -> SafetyReply:
    """ "Back" from a question (or the summary) to the one before, to change its answer."""

    def action(session: Session, now: datetime) -> SafetyReply:
        patient, checkin = _own_open(session, telegram_user_id, checkin_id, now)
        if checkin.current_question != code:
            return _show(ctx, session, patient, checkin, SafetyOutcome.STALE)
        target = rules.QUESTION_CODES[-1] if code == SUMMARY else rules.previous_question(code)
        moved = target is not None and safety.move_question(
            session=session, checkin_id=checkin_id, expected=code, new=target
        )
        return _moved(ctx, session, patient, checkin, moved)

    return run_refusable(ctx, action)


def change(ctx: AppContext, *, telegram_user_id: int, checkin_id: int, code: str) -> SafetyReply:
    """From the summary, asks one question again; its answer returns to the summary."""

    def action(session: Session, now: datetime) -> SafetyReply:
        patient, checkin = _own_open(session, telegram_user_id, checkin_id, now)
        moved = code in rules.QUESTION_CODES and safety.move_question(
            session=session, checkin_id=checkin_id, expected=SUMMARY, new=code
        )
        return _moved(ctx, session, patient, checkin, moved)

    return run_refusable(ctx, action)


def confirm(ctx: AppContext, *, telegram_user_id: int, checkin_id: int) -> SafetyReply:
    """Confirms the summary; the answers were stored already, this closes the check-in."""

    def action(session: Session, now: datetime) -> SafetyReply:
        patient, checkin = _own_open(session, telegram_user_id, checkin_id, now)
        if not safety.confirm_checkin(session=session, checkin_id=checkin_id, now=now):
            return _show(ctx, session, patient, checkin, SafetyOutcome.STALE)
        _audit(
            session, now, patient, entity="safety_checkin", checkin_id=checkin_id, action="confirm"
        )
        session.refresh(checkin)
        return _show(ctx, session, patient, checkin, SafetyOutcome.CONFIRMED)

    return run_refusable(ctx, action)


def note(ctx: AppContext, *, telegram_user_id: int, text: str) -> SafetyReply | None:
    """Typed text during an open check-in: the note of the last "yes" (§8: yes/no with an
    optional note). None when no check-in is open, or it has no "yes" to note."""
    with ctx.session() as session:
        found = _open_of(session, telegram_user_id, ctx.clock.now())
        if found is None:
            return None
        patient, checkin = found
        assert checkin.id is not None
        stored = safety.answers_of(session=session, checkin_id=checkin.id)
        yes = [stored[c] for c in rules.QUESTION_CODES if c in stored and stored[c].answer_yes]
        if not yes:
            return _show(ctx, session, patient, checkin, SafetyOutcome.STALE)
        latest = max(yes, key=lambda row: (row.answered_at, row.id or 0))
        cleaned = " ".join(text.split())[: rules.NOTE_MAX_LENGTH]
        safety.set_note(session=session, answer=latest, note=cleaned)
        return _show(ctx, session, patient, checkin, SafetyOutcome.NOTE_SAVED)
