"""Answering a questionnaire: start or resume, answer, go back, review, change, confirm.

Each call is one transaction on the administration row (clinical spec §1 for the items and
their values). The row's `current_item` is moved with a compare-and-set UPDATE before an answer
is written, so a stale, duplicated or forged press, or a second process handling the same
update, records nothing. Every answer and correction leaves an audit event; confirming computes
the scores through `bot.services.scores.score_completed` in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import flow, instruments, scoring
from bot.domain.schedule import local_day_bounds, next_slot_after
from bot.services.patients import AnyPatientT, lift_ended_pause, linked_patient
from bot.services.refusal import Refused, run_refusable
from bot.services.scores import score_completed
from storage import administrations, audit, patients, physicians, scores
from storage.administrations import AdministrationRecord, StoredAnswer
from storage.models import (
    Administration,
    AdministrationKind,
    AdministrationStatus,
    Patient,
    PatientStatus,
    ScoreRecord,
)
from storage.patients import PatientRecord
from storage.scores import EarlierScores

logger = logging.getLogger(__name__)

CHECKINS_PER_DAY: Final = 1
ACTOR: Final = "patient"
AnyPatient = Patient | PatientRecord
"""A patient as the questionnaire reads it: the stored row, or the record a button press reads."""
AnyAdministration = Administration | AdministrationRecord
"""An administration as the questionnaire reads it (see `AnyPatient`)."""
_ANSWERING: Final = {PatientStatus.ACTIVE.value, PatientStatus.PAUSED.value}


class Outcome(StrEnum):
    """What became of a questionnaire action."""

    SHOW = "show"  # the view is where the questionnaire now stands
    STALE = "stale"  # the press did not fit the current step: nothing recorded
    HINT = "hint"  # typed text that is no answer to the current question
    CLOSED = "closed"  # the questionnaire was missed or has expired
    ALREADY_COMPLETED = "already_completed"
    NOT_YOURS = "not_yours"  # unknown administration, another patient's, or forged
    COMPLETED = "completed"  # confirmed just now; `result` holds the scores
    NO_OPEN = "no_open"  # nothing to answer at the moment
    CHECKIN_LIMIT = "checkin_limit"  # one extra questionnaire per local day
    NOT_ACTIVE = "not_active"  # onboarding not finished, or stopped
    PICKER = "picker"  # which answer to change


@dataclass(frozen=True)
class QuestionnaireView:
    """Where one administration stands and what has been answered (raw values: q6 in minutes)."""

    administration_id: int
    kind: str
    language: str
    instrument_version: str
    timezone: str
    position: str | None
    return_to_summary: bool
    can_go_back: bool
    answers: dict[str, Decimal]
    question_message_id: int | None
    slot_at: datetime


@dataclass(frozen=True)
class ResultView:
    """The scores a patient sees after confirming (clinical spec §2–§3)."""

    completed_at: datetime
    basdai: Decimal | None
    previous_basdai: Decimal | None
    previous_completed_at: datetime | None
    asdas: Decimal | None = None
    asdas_kind: str | None = None  # "CRP" or "ESR"

    @property
    def asdas_high(self) -> bool:
        """The latest ASDAS in this questionnaire's lab window shows high or very high activity,
        so the feedback must not call the activity low on BASDAI alone (clinical spec §6)."""
        return self.asdas is not None and scoring.asdas_category(self.asdas) in (
            scoring.AsdasState.HIGH,
            scoring.AsdasState.VERY_HIGH,
        )

    @property
    def active(self) -> bool:
        """BASDAI ≥ 4 means active disease (clinical spec §3)."""
        return self.basdai is not None and scoring.basdai_active(self.basdai)

    @property
    def trend(self) -> scoring.BasdaiComparison | None:
        """Lower, higher or about the same against last time: only a change of at least
        1 point is lower or higher (clinical spec §6)."""
        if self.basdai is None or self.previous_basdai is None:
            return None
        return scoring.basdai_comparison(self.previous_basdai, self.basdai)


@dataclass(frozen=True)
class QuestionnaireReply:
    """The outcome of one action, with what to show."""

    outcome: Outcome
    language: str
    timezone: str = "UTC"
    view: QuestionnaireView | None = None
    result: ResultView | None = None
    next_slot: datetime | None = None
    recorded: bool = False
    resumed: bool = False
    new_message: bool = False  # show it in a new message (a check-in), not in the pressed one
    extra: dict[str, str] = field(default_factory=dict)
    physician_takes_alerts: bool = False
    """On a completion: whether the physician could be alerted about it (alerts on, Telegram
    linked), read in the completing transaction, so that no other one is opened to find out
    that they take none (clinical spec §3, §6)."""


def _view(
    session: Session, patient: AnyPatient, administration: AnyAdministration
) -> QuestionnaireView:
    assert administration.id is not None
    stored = administrations.answers_of(session=session, administration_id=administration.id)
    return _view_at(
        patient,
        administration,
        flow.State(administration.current_item, administration.return_to_summary),
        _raw_values(stored),
    )


def _raw_values(stored: Mapping[str, StoredAnswer]) -> dict[str, Decimal]:
    """The raw values of stored answers, by item code."""
    return {code: answer.raw_value for code, answer in stored.items()}


def _view_at(
    patient: AnyPatient,
    administration: AnyAdministration,
    state: flow.State,
    answers: dict[str, Decimal],
) -> QuestionnaireView:
    """The view of an administration standing at `state` with `answers` (raw values)."""
    assert administration.id is not None
    return QuestionnaireView(
        administration_id=administration.id,
        kind=administration.kind,
        language=administration.language,
        instrument_version=administration.instrument_version,
        timezone=patient.timezone,
        position=state.position,
        return_to_summary=state.return_to_summary,
        can_go_back=flow.can_go_back(state),
        answers=answers,
        question_message_id=administration.question_message_id,
        slot_at=administration.slot_at,
    )


def next_scheduled_slot(patient: AnyPatient, now: datetime) -> datetime | None:
    """When the patient's next weekly questionnaire is due; None once they have stopped."""
    if patient.status not in _ANSWERING:
        return None
    after = now
    if patient.status == PatientStatus.PAUSED.value and patient.paused_until is not None:
        after = max(now, patient.paused_until)
    return next_slot_after(after, patient.schedule_weekday, patient.schedule_time, patient.timezone)


def _reply(patient: AnyPatient, outcome: Outcome, **values: object) -> QuestionnaireReply:
    return QuestionnaireReply(
        outcome=outcome,
        language=patient.language,
        timezone=patient.timezone,
        **values,  # type: ignore[arg-type]
    )


def _answering_patient(session: Session, telegram_user_id: int, now: datetime) -> Patient:
    return _answering(linked_patient(session, telegram_user_id=telegram_user_id, now=now))


def _answering(patient: AnyPatientT | None) -> AnyPatientT:
    """The linked patient if they may answer; otherwise the refusal."""
    if patient is None:
        raise Refused(QuestionnaireReply(Outcome.NOT_YOURS, language="en"))
    if patient.status not in _ANSWERING:
        raise Refused(_reply(patient, Outcome.NOT_ACTIVE))
    return patient


def _own_open_administration(
    session: Session, telegram_user_id: int, administration_id: int, now: datetime
) -> tuple[PatientRecord, AdministrationRecord, dict[str, StoredAnswer]]:
    """The answering patient, the administration a button names if it is theirs and still
    open, and its answers, read in one query."""
    found, administration, stored = patients.get_linked_patient_with_administration(
        session=session, telegram_user_id=telegram_user_id, administration_id=administration_id
    )
    patient = _answering(lift_ended_pause(session, found, now))
    if administration is None:
        raise Refused(_reply(patient, Outcome.NOT_YOURS))
    if administration.status == AdministrationStatus.COMPLETED.value:
        raise Refused(_reply(patient, Outcome.ALREADY_COMPLETED))
    if administration.status != AdministrationStatus.OPEN.value or administration.expires_at <= now:
        raise Refused(_reply(patient, Outcome.CLOSED))
    return patient, administration, stored


def _open_with_answers(
    session: Session, telegram_user_id: int, administration_id: int, now: datetime
) -> tuple[PatientRecord, AdministrationRecord, dict[str, StoredAnswer], flow.State]:
    """The patient's own open questionnaire, its stored answers and where it stands, for a
    press that moves through it or confirms it."""
    patient, administration, stored = _own_open_administration(
        session, telegram_user_id, administration_id, now
    )
    state = flow.State(administration.current_item, administration.return_to_summary)
    return patient, administration, stored, state


def _stale(session: Session, patient: AnyPatient, administration_id: int) -> QuestionnaireReply:
    fresh = administrations.get_administration(session=session, administration_id=administration_id)
    assert fresh is not None
    if fresh.status != AdministrationStatus.OPEN.value:
        outcome = (
            Outcome.ALREADY_COMPLETED
            if fresh.status == AdministrationStatus.COMPLETED.value
            else Outcome.CLOSED
        )
        return _reply(patient, outcome)
    return _reply(patient, Outcome.STALE, view=_view(session, patient, fresh))


def _begin(
    session: Session, patient: AnyPatient, administration: AnyAdministration, now: datetime
) -> QuestionnaireView:
    """Moves an unstarted administration to its first question, in the patient's language,
    and returns where it now stands."""
    assert administration.id is not None
    if administration.current_item is None:
        _move_to_first_question(session, patient, administration, now)
    fresh = administrations.get_administration(session=session, administration_id=administration.id)
    assert fresh is not None
    return _view(session, patient, fresh)


def _move_to_first_question(
    session: Session, patient: AnyPatient, administration: AnyAdministration, now: datetime
) -> None:
    assert administration.id is not None
    administrations.set_language_if_unstarted(
        session=session, administration_id=administration.id, language=patient.language
    )
    administrations.move_current_item(
        session=session,
        administration_id=administration.id,
        expected_item=None,
        new_item=flow.first_position(),
        return_to_summary=False,
        now=now,
    )


def start(ctx: AppContext, *, telegram_user_id: int, administration_id: int) -> QuestionnaireReply:
    """The Start button of an invitation or reminder: begins the questionnaire, or resumes it
    exactly where it stands."""

    def action(session: Session, now: datetime) -> QuestionnaireReply:
        patient, administration, _ = _own_open_administration(
            session, telegram_user_id, administration_id, now
        )
        view = _begin(session, patient, administration, now)
        return _reply(patient, Outcome.SHOW, view=view)

    return run_refusable(ctx, action)


def _open_administration(
    session: Session, patient: Patient, now: datetime
) -> Administration | None:
    """The patient's open questionnaire, if any."""
    assert patient.id is not None
    administration = administrations.get_open_administration(
        session=session, patient_id=patient.id, now=now
    )
    assert administration is None or administration.id is not None
    return administration


def resume(ctx: AppContext, *, telegram_user_id: int) -> QuestionnaireReply:
    """The patient's open questionnaire where it stands (started if it was not), or NO_OPEN."""

    def action(session: Session, now: datetime) -> QuestionnaireReply:
        patient = _answering_patient(session, telegram_user_id, now)
        administration = _open_administration(session, patient, now)
        if administration is None:
            return _reply(patient, Outcome.NO_OPEN, next_slot=next_scheduled_slot(patient, now))
        view = _begin(session, patient, administration, now)
        return _reply(patient, Outcome.SHOW, view=view, resumed=True)

    return run_refusable(ctx, action)


def _record(
    session: Session,
    patient: AnyPatient,
    administration: AnyAdministration,
    item: str,
    parsed: instruments.ParsedAnswer,
    now: datetime,
    stored: Mapping[str, StoredAnswer],
) -> QuestionnaireReply:
    """Moves past `item` (compare-and-set) and stores its answer, or reports a stale press;
    `stored` are the administration's answers as this unit of work has just read them."""
    assert administration.id is not None
    assert patient.id is not None
    state = flow.State(administration.current_item, administration.return_to_summary)
    after = flow.step(state, flow.Answer(item), stored)
    if not isinstance(after, flow.State):
        return _stale(session, patient, administration.id)
    moved = administrations.move_current_item(
        session=session,
        administration_id=administration.id,
        expected_item=item,
        new_item=after.position,
        return_to_summary=after.return_to_summary,
        now=now,
    )
    if not moved:
        return _stale(session, patient, administration.id)
    raw_answers = _raw_values(stored)
    answer, previous = administrations.save_answer(
        session=session,
        administration_id=administration.id,
        item_code=item,
        raw_value=parsed.raw_value,
        score=parsed.score,
        now=now,
        current=stored,
    )
    audit.record_event(
        session=session,
        at=now,
        actor=ACTOR,
        entity="answer",
        entity_id=answer.id,
        patient_id=patient.id,
        action="answer" if previous is None else "correct",
        before=None
        if previous is None
        else {"item": item, "raw_value": previous.raw_value, "version": previous.version},
        after={
            "administration_id": administration.id,
            "item": item,
            "raw_value": parsed.raw_value,
            "score": parsed.score,
            "version": answer.version,
            "instrument_version": administration.instrument_version,
            "language": administration.language,
        },
    )
    logger.info(
        "answer recorded",
        extra={"fields": {"administration_id": administration.id, "item": item}},
    )
    # The compare-and-set above moved the administration to `after`; its answers are the ones
    # read at the start plus this one, so the view needs no second read.
    view = _view_at(patient, administration, after, {**raw_answers, item: parsed.raw_value})
    return _reply(patient, Outcome.SHOW, view=view, recorded=True)


def answer(
    ctx: AppContext, *, telegram_user_id: int, administration_id: int, item: str, value: int
) -> QuestionnaireReply:
    """An answer button (0–10, or minutes for item 6): recorded once, then the next step."""

    def action(session: Session, now: datetime) -> QuestionnaireReply:
        patient, administration, stored = _own_open_administration(
            session, telegram_user_id, administration_id, now
        )
        parsed = instruments.button_answer(item, value)
        if parsed is None:
            return _stale(session, patient, administration_id)
        return _record(session, patient, administration, item, parsed, now, stored)

    return run_refusable(ctx, action)


def answer_typed(ctx: AppContext, *, telegram_user_id: int, text: str) -> QuestionnaireReply:
    """A typed answer to the current question of the open questionnaire.

    "7" answers a 0–10 item, "45 min" or "1.5 h" item 6 (clinical spec §1). Text that is no
    answer gets a HINT and the question stays. An open questionnaire not yet started is started
    (its first question shown); with none open, NO_OPEN says when the next one comes.
    """

    def action(session: Session, now: datetime) -> QuestionnaireReply:
        patient = _answering_patient(session, telegram_user_id, now)
        administration = _open_administration(session, patient, now)
        if administration is None:
            return _reply(patient, Outcome.NO_OPEN, next_slot=next_scheduled_slot(patient, now))
        item = administration.current_item
        if item is None:
            view = _begin(session, patient, administration, now)
            return _reply(patient, Outcome.SHOW, view=view, resumed=True)
        assert administration.id is not None
        stored = administrations.answers_of(session=session, administration_id=administration.id)
        state = flow.State(item, administration.return_to_summary)
        view = _view_at(patient, administration, state, _raw_values(stored))
        if item == flow.SUMMARY:
            return _reply(patient, Outcome.HINT, view=view)
        parsed = instruments.parse_typed_answer(item, text)
        if parsed is None:
            return _reply(patient, Outcome.HINT, view=view)
        return _record(session, patient, administration, item, parsed, now, stored)

    return run_refusable(ctx, action)


def _move(
    ctx: AppContext, telegram_user_id: int, administration_id: int, event: flow.Event
) -> QuestionnaireReply:
    def action(session: Session, now: datetime) -> QuestionnaireReply:
        patient, administration, stored, state = _open_with_answers(
            session, telegram_user_id, administration_id, now
        )
        after = flow.step(state, event, stored)
        if not isinstance(after, flow.State):
            return _stale(session, patient, administration_id)
        moved = administrations.move_current_item(
            session=session,
            administration_id=administration_id,
            expected_item=administration.current_item,
            new_item=after.position,
            return_to_summary=after.return_to_summary,
            now=now,
        )
        if not moved:
            return _stale(session, patient, administration_id)
        fresh = administrations.get_administration(
            session=session, administration_id=administration_id
        )
        assert fresh is not None
        return _reply(patient, Outcome.SHOW, view=_view(session, patient, fresh))

    return run_refusable(ctx, action)


def back(
    ctx: AppContext, *, telegram_user_id: int, administration_id: int, item: str
) -> QuestionnaireReply:
    """The Back button under `item`: the previous question again, to correct its answer."""
    return _move(ctx, telegram_user_id, administration_id, flow.Back(item))


def change(
    ctx: AppContext, *, telegram_user_id: int, administration_id: int, item: str | None
) -> QuestionnaireReply:
    """ "Change an answer" on the summary: without an item, the picker; with one, that question
    (after it, back to the summary)."""
    if item is not None:
        return _move(ctx, telegram_user_id, administration_id, flow.Change(item))

    def action(session: Session, now: datetime) -> QuestionnaireReply:
        patient, administration, stored, state = _open_with_answers(
            session, telegram_user_id, administration_id, now
        )
        if administration.current_item != flow.SUMMARY:
            return _stale(session, patient, administration_id)
        view = _view_at(patient, administration, state, _raw_values(stored))
        return _reply(patient, Outcome.PICKER, view=view)

    return run_refusable(ctx, action)


def confirm(
    ctx: AppContext, *, telegram_user_id: int, administration_id: int
) -> QuestionnaireReply:
    """Confirm on the summary: completes the questionnaire and computes its scores."""

    def action(session: Session, now: datetime) -> QuestionnaireReply:
        patient, administration, stored, state = _open_with_answers(
            session, telegram_user_id, administration_id, now
        )
        if not isinstance(flow.step(state, flow.Confirm(), stored), flow.Completed):
            return _stale(session, patient, administration_id)
        # The view of the summary being confirmed, from the answers just read.
        view = _view_at(patient, administration, state, _raw_values(stored))
        if not administrations.complete_administration(
            session=session,
            administration_id=administration_id,
            expected_item=flow.SUMMARY,
            now=now,
        ):
            return _stale(session, patient, administration_id)
        # The questionnaire as the compare-and-set above left it, to be scored.
        completed = replace(
            administration,
            status=AdministrationStatus.COMPLETED.value,
            completed_at=now,
            current_item=None,
            return_to_summary=False,
        )
        record = score_completed(
            session,
            administration=completed,
            stored=stored,
            window=timedelta(days=ctx.settings.lab_window_days),
            now=now,
        )
        if patient.baseline_date is None:
            patients.set_baseline_date(session=session, patient_id=patient.id, at=now)
        audit.record_event(
            session=session,
            at=now,
            actor=ACTOR,
            entity="administration",
            entity_id=administration_id,
            patient_id=patient.id,
            action="complete",
        )
        logger.info(
            "questionnaire completed", extra={"fields": {"administration_id": administration_id}}
        )
        # The previous questionnaire and its scores, for the comparison.
        previous = scores.last_completed_scores(
            session=session, patient_id=patient.id, before=now, exclude_id=administration_id
        )
        asdas, kind = _asdas_of(record)
        window = timedelta(days=ctx.settings.lab_window_days)
        if asdas is None and previous is not None and previous.completed_at >= now - window:
            # The latest ASDAS within this questionnaire's lab window, even when it belongs to
            # the previous questionnaire (clinical spec §6).
            asdas, kind = _asdas_of(previous)
        result = ResultView(
            completed_at=now,
            basdai=None if record is None else record.basdai,
            previous_basdai=None if previous is None else previous.basdai,
            previous_completed_at=None if previous is None else previous.completed_at,
            asdas=asdas,
            asdas_kind=kind,
        )
        alertable = physicians.physician_takes_alerts(session=session, patient_id=patient.id)
        return _reply(
            patient,
            Outcome.COMPLETED,
            view=view,
            result=result,
            physician_takes_alerts=alertable,
        )

    return run_refusable(ctx, action)


def _asdas_of(record: ScoreRecord | EarlierScores | None) -> tuple[Decimal | None, str | None]:
    """ASDAS-CRP when there is one, else ASDAS-ESR (clinical spec §2), with its variant."""
    if record is not None and record.asdas_crp is not None:
        return record.asdas_crp, "CRP"
    if record is not None and record.asdas_esr is not None:
        return record.asdas_esr, "ESR"
    return None, None


def checkin(ctx: AppContext, *, telegram_user_id: int) -> QuestionnaireReply:
    """`/checkin`: an extra questionnaire now (say, during a flare).

    An open questionnaire is resumed instead (at most one open at a time), and only one extra
    questionnaire may be started per local calendar day.
    """

    def action(session: Session, now: datetime) -> QuestionnaireReply:
        patient = _answering_patient(session, telegram_user_id, now)
        assert patient.id is not None
        administration = administrations.get_open_administration(
            session=session, patient_id=patient.id, now=now
        )
        if administration is None:
            day_start, day_end = local_day_bounds(now, patient.timezone)
            extras = administrations.count_administrations(
                session=session,
                patient_id=patient.id,
                kind=AdministrationKind.CHECKIN.value,
                slot_from=day_start,
                slot_until=day_end,
            )
            if extras >= CHECKINS_PER_DAY:
                return _reply(
                    patient, Outcome.CHECKIN_LIMIT, next_slot=next_scheduled_slot(patient, now)
                )
            # Opened at its first question, in the patient's language, as `_begin` would
            # move it: nothing to move, read or answer yet.
            first = flow.State(flow.first_position(), return_to_summary=False)
            administration = administrations.create_administration(
                session=session,
                patient_id=patient.id,
                kind=AdministrationKind.CHECKIN.value,
                slot_at=now,
                now=now,
                expires_at=now + timedelta(days=ctx.settings.expiry_days),
                instrument_version=ctx.settings.instrument_version(patient.language),
                language=patient.language,
                current_item=first.position,
                started_at=now,
            )
            if administration is None:
                raise Refused(_reply(patient, Outcome.CHECKIN_LIMIT))
            logger.info(
                "check-in opened", extra={"fields": {"administration_id": administration.id}}
            )
            view = _view_at(patient, administration, first, {})
            return _reply(patient, Outcome.SHOW, view=view, resumed=False, new_message=True)
        view = _begin(session, patient, administration, now)
        return _reply(patient, Outcome.SHOW, view=view, resumed=True, new_message=True)

    return run_refusable(ctx, action)


def remember_question_message(
    ctx: AppContext, *, administration_id: int, message_id: int | None
) -> None:
    """Stores which chat message shows the administration's current question."""
    with ctx.session() as session:
        administrations.set_question_message(
            session=session, administration_id=administration_id, message_id=message_id
        )
