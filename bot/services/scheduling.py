"""Scheduled work derived only from the database: weekly invitations, reminders, expiry, pauses.

Nothing about the schedule lives in process memory. Each tick asks the database what is due at
its `now` and claims it; the rules themselves are pure (`bot.domain.timing`,
`bot.domain.schedule`):

* **Weekly slot.** An active, reachable, linked patient's slot (weekday and local time in their
  own time zone) opens that week's administration and claims an invitation with the key
  `inv:<patient>:<slot>`. A slot that fell into the scheduler's downtime is caught up once:
  sent if it is still open, recorded as *missed* (never sent late) if it has expired.
  Each patient the tick looks at keeps when their next slot can come (`next_check_at`, a
  lower bound cleared by any change to their schedule), so a tick reads only those due.
* **Reminders.** An open scheduled administration carries `next_reminder_at`; when it comes,
  a reminder is claimed with the key `rem<n>:<administration>`. Reminders go out
  `reminder_after_hours` apart, at most `max_reminders` of our own accord, never in quiet hours
  (a reminder due then waits for their end) and never after the questionnaire closes. A snooze
  the patient asks for is always honoured.
* **Expiry.** An open administration whose `expires_at` has passed becomes *missed*; answers
  already given are kept, so it reads as incomplete (clinical spec §2: a missing item means no
  score, never an imputed one).
* **Pause.** A paused patient whose `paused_until` has passed is active again.
* **Unreachable.** Telegram's 403 marks the patient unreachable; nothing more is sent until
  they write to the bot again.

**A crash between claim and send loses that message; it is never sent twice (at-most-once).**
A claim is committed before the message leaves, so no later tick, restart or second process
sends it again, and a claim whose sender died stays `claimed` and is listed by
`spondybot deliveries`. For a patient's phone this is the right side to fail on: a reminder
that arrives twice, or at 3 a.m. after a restart, teaches people to block the bot, which ends
the follow-up altogether; a lost invitation is followed by its reminder within
`reminder_after_hours`, and a lost reminder by the next one. The loss is bounded: claims are
made a page at a time, just ahead of sending.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfoNotFoundError

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import timing
from bot.domain.schedule import WeeklySlot
from storage import audit, deliveries, schedule
from storage.models import AdministrationStatus, DeliveryStatus, PatientStatus

logger = logging.getLogger(__name__)

PAGE_SIZE: Final = 200
INVITATION: Final = "invitation"
REMINDER: Final = "reminder"
ACTOR: Final = "scheduler"
WEEKLY_SLOTS_MARK: Final = "weekly_slots"
# A claim still unfinished after this long belongs to a process that stopped before sending.
STALE_CLAIM: Final = timedelta(minutes=10)


class Outcome(StrEnum):
    """How one attempt to deliver a claimed message ended."""

    SENT = "sent"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


_DELIVERY_STATUS: Final = {
    Outcome.SENT: DeliveryStatus.SENT,
    Outcome.FAILED: DeliveryStatus.FAILED,
    Outcome.UNREACHABLE: DeliveryStatus.UNREACHABLE,
}


@dataclass(frozen=True)
class DeliveryResult:
    """The end of one claimed delivery: sent, failed (with the reason) or unreachable (403)."""

    delivery_id: int
    outcome: Outcome
    attempts: int
    error: str | None = None


@dataclass(frozen=True)
class ScheduledMessage:
    """A claimed invitation or reminder, with what is needed to word and address it."""

    delivery_id: int
    kind: str
    patient_id: int
    chat_id: int
    administration_id: int
    language: str
    closes_at: str
    started: bool = False


@dataclass
class ClaimPage:
    """One page of claimed work, and where the next page starts (None: this was the last);
    `examined` is how many patients (or administrations) the page read to find it."""

    messages: list[ScheduledMessage] = field(default_factory=list)
    next_after: int | None = None
    examined: int = 0
    opened: int = 0
    missed: int = 0
    deferred: int = 0


@dataclass(frozen=True)
class RecordSummary:
    sent: int
    failed: int
    unreachable: int
    newly_unreachable_patients: list[int]


def _quiet(ctx: AppContext) -> timing.QuietHours:
    return timing.QuietHours(ctx.settings.quiet_hours_start, ctx.settings.quiet_hours_end)


def resume_paused_patients(ctx: AppContext, now: datetime, *, limit: int = 1000) -> int:
    """Makes patients whose pause has ended active again; how many."""
    with ctx.session() as session:
        ids = schedule.lock_patients_to_resume(session=session, now=now, limit=limit)
        schedule.resume_patients(session=session, patient_ids=ids)
        for patient_id in ids:
            audit.record_event(
                session=session,
                at=now,
                actor=ACTOR,
                entity="patient",
                entity_id=patient_id,
                patient_id=patient_id,
                action="resume",
                before={"status": "paused"},
                after={"status": "active"},
            )
    if ids:
        logger.info("patients resumed", extra={"fields": {"count": len(ids)}})
    return len(ids)


@dataclass(frozen=True)
class TickPreview:
    """What a tick at a later instant would do, worked out without changing anything."""

    at: datetime
    ahead: timedelta
    missed: int
    active_patients: int
    paused_patients: int


def preview_tick(ctx: AppContext, at: datetime) -> TickPreview:
    """Reads what moving the clock to `at` would touch: open questionnaires it would close as
    missed, and the patients whose weekly slots up to then it would open (and, where already
    past, record as missed) and message."""
    with ctx.session() as session:
        return TickPreview(
            at=at,
            ahead=at - ctx.clock.now(),
            missed=schedule.count_open_administrations_expiring(session=session, now=at),
            active_patients=schedule.count_patients(session=session, status=PatientStatus.ACTIVE),
            paused_patients=schedule.count_patients(session=session, status=PatientStatus.PAUSED),
        )


def expire_administrations(ctx: AppContext, now: datetime) -> int:
    """Marks open administrations whose time is up as missed (answers kept); how many."""
    with ctx.session() as session:
        count = schedule.expire_open_administrations(session=session, now=now)
    if count:
        logger.info("administrations expired", extra={"fields": {"count": count}})
    return count


def slot_window_start(ctx: AppContext, now: datetime) -> datetime:
    """The earliest weekly slot a tick at `now` still handles (see `timing.slot_window_start`)."""
    with ctx.session() as session:
        handled = schedule.handled_until(session=session, name=WEEKLY_SLOTS_MARK)
    return timing.slot_window_start(handled_until=handled, now=now)


def mark_slots_handled(ctx: AppContext, now: datetime) -> None:
    """Records that every weekly slot up to `now` has been handled (after a complete pass)."""
    with ctx.session() as session:
        schedule.advance_handled_until(session=session, name=WEEKLY_SLOTS_MARK, at=now)


def claim_invitations(
    ctx: AppContext,
    now: datetime,
    *,
    window_start: datetime,
    after_patient_id: int = 0,
    limit: int = PAGE_SIZE,
) -> ClaimPage:
    """Opens due weekly administrations for one page of patients and claims their invitations.

    Expired slots are recorded as missed in the same transaction; slots already opened (by an
    earlier tick or another process) are left alone, so a repeated tick claims nothing. Every
    patient of the page gets their next check: the coming slot, or the one after those opened.
    """
    settings = ctx.settings
    quiet = _quiet(ctx)
    recent_since = now - timing.MIN_WEEKLY_GAP
    page = ClaimPage()
    with ctx.session() as session:
        candidates = schedule.invitation_candidates(
            session=session,
            now=now,
            recent_since=recent_since,
            after_patient_id=after_patient_id,
            limit=limit,
        )
        plans: dict[
            int, tuple[schedule.InvitationCandidate, list[timing.DueSlot], schedule.NextCheck]
        ] = {}
        checks: list[schedule.NextCheck] = []
        for candidate in candidates:
            anchor = timing.schedule_anchor(
                activated_at=candidate.activated_at, paused_until=candidate.paused_until, now=now
            )
            weekly = WeeklySlot(
                candidate.schedule_weekday, candidate.schedule_time, candidate.timezone
            )
            try:
                slots = timing.due_slots(
                    now=now,
                    weekly=weekly,
                    not_before=max(window_start, anchor),
                    previous_slot_at=candidate.last_slot_at,
                    expiry_days=settings.expiry_days,
                )
                check = _next_check(candidate, weekly, now, anchor, slots)
            except (ValueError, ZoneInfoNotFoundError):
                logger.error(
                    "patient schedule unusable",
                    extra={"fields": {"patient_id": candidate.patient_id}},
                )
                continue
            if slots:
                plans[candidate.patient_id] = (candidate, slots, check)
            else:
                checks.append(check)
        locked = schedule.lock_patients_to_invite(
            session=session, patient_ids=sorted(plans), recent_since=recent_since
        )
        rows: list[schedule.NewAdministration] = []
        for patient_id in sorted(locked):
            candidate, slots, check = plans[patient_id]
            checks.append(check)
            for due in slots:
                reminder = None
                if not due.expired and settings.max_reminders > 0:
                    reminder = timing.next_reminder_at(
                        after=now,
                        reminder_after_hours=settings.reminder_after_hours,
                        expires_at=due.expires_at,
                        tz_name=candidate.timezone,
                        quiet=quiet,
                    )
                rows.append(
                    schedule.NewAdministration(
                        patient_id=patient_id,
                        slot_at=due.slot_at,
                        status=(
                            AdministrationStatus.MISSED.value
                            if due.expired
                            else AdministrationStatus.OPEN.value
                        ),
                        expires_at=due.expires_at,
                        next_reminder_at=reminder,
                        instrument_version=settings.instrument_version(candidate.language),
                        language=candidate.language,
                    )
                )
        opened = schedule.open_scheduled_administrations(session=session, rows=rows, now=now)
        schedule.record_next_checks(session=session, checks=checks)
        invitations: list[tuple[deliveries.Claim, schedule.NewAdministration]] = []
        for row in rows:
            administration_id = opened.get((row.patient_id, row.slot_at))
            if administration_id is None:
                continue  # another tick opened this slot first
            if row.status == AdministrationStatus.MISSED.value:
                page.missed += 1
                continue
            page.opened += 1
            claim = deliveries.Claim(
                dedupe_key=f"inv:{row.patient_id}:{row.slot_at.isoformat()}",
                kind=INVITATION,
                patient_id=row.patient_id,
                administration_id=administration_id,
            )
            invitations.append((claim, row))
        claimed = deliveries.claim_deliveries(
            session=session, claims=[claim for claim, _ in invitations], now=now
        )
        for claim, row in invitations:
            delivery_id = claimed.get(claim.dedupe_key)
            if delivery_id is None or claim.administration_id is None:
                continue
            candidate = plans[row.patient_id][0]
            page.messages.append(
                ScheduledMessage(
                    delivery_id=delivery_id,
                    kind=INVITATION,
                    patient_id=row.patient_id,
                    chat_id=candidate.chat_id,
                    administration_id=claim.administration_id,
                    language=row.language,
                    closes_at=timing.local_label(row.expires_at, candidate.timezone),
                )
            )
    page.examined = len(candidates)
    page.next_after = candidates[-1].patient_id if len(candidates) == limit else None
    return page


def _next_check(
    candidate: schedule.InvitationCandidate,
    weekly: WeeklySlot,
    now: datetime,
    anchor: datetime,
    slots: list[timing.DueSlot],
) -> schedule.NextCheck:
    """When a tick next needs to look at `candidate`, once `slots` (due at `now`) are opened.

    The anchor alone is the floor here, not the tick's slot window: the window only moves
    forward, so leaving it out can make the check earlier, never later.
    """
    return schedule.NextCheck(
        candidate=candidate,
        at=timing.next_check_at(
            now=now,
            weekly=weekly,
            not_before=anchor,
            previous_slot_at=slots[-1].slot_at if slots else candidate.last_slot_at,
        ),
    )


def claim_reminders(
    ctx: AppContext,
    now: datetime,
    *,
    after_administration_id: int = 0,
    limit: int = PAGE_SIZE,
) -> ClaimPage:
    """Claims the reminders due for one page of open administrations.

    A reminder that comes due in the patient's quiet hours is moved to their end instead. The
    page's administrations stay row-locked from reading to claiming, so a completion or a snooze
    lands before or after, never in between, and a second process skips them.
    """
    settings = ctx.settings
    quiet = _quiet(ctx)
    page = ClaimPage()
    with ctx.session() as session:
        rows = schedule.due_reminders(
            session=session,
            now=now,
            after_administration_id=after_administration_id,
            limit=limit,
        )
        updates: list[schedule.ReminderUpdate] = []
        reminders: list[tuple[deliveries.Claim, schedule.ReminderCandidate]] = []
        for row in rows:
            try:
                in_quiet_hours = quiet.contains(now, row.timezone)
            except (ValueError, ZoneInfoNotFoundError):
                logger.error(
                    "patient schedule unusable", extra={"fields": {"patient_id": row.patient_id}}
                )
                continue
            if in_quiet_hours:
                later = quiet.end_after(now, row.timezone)
                updates.append(
                    schedule.ReminderUpdate(
                        administration_id=row.administration_id,
                        reminders_sent=row.reminders_sent,
                        next_reminder_at=later if later < row.expires_at else None,
                    )
                )
                page.deferred += 1
                continue
            number = row.reminders_sent + 1
            following = (
                timing.next_reminder_at(
                    after=now,
                    reminder_after_hours=settings.reminder_after_hours,
                    expires_at=row.expires_at,
                    tz_name=row.timezone,
                    quiet=quiet,
                )
                if number < settings.max_reminders
                else None
            )
            updates.append(
                schedule.ReminderUpdate(
                    administration_id=row.administration_id,
                    reminders_sent=number,
                    next_reminder_at=following,
                )
            )
            claim = deliveries.Claim(
                dedupe_key=f"rem{number}:{row.administration_id}",
                kind=REMINDER,
                patient_id=row.patient_id,
                administration_id=row.administration_id,
            )
            reminders.append((claim, row))
        schedule.update_reminders(session=session, updates=updates)
        claimed = deliveries.claim_deliveries(
            session=session, claims=[claim for claim, _ in reminders], now=now
        )
        for claim, row in reminders:
            delivery_id = claimed.get(claim.dedupe_key)
            if delivery_id is None:
                continue
            page.messages.append(
                ScheduledMessage(
                    delivery_id=delivery_id,
                    kind=REMINDER,
                    patient_id=row.patient_id,
                    chat_id=row.chat_id,
                    administration_id=row.administration_id,
                    language=row.language,
                    closes_at=timing.local_label(row.expires_at, row.timezone),
                    started=row.started,
                )
            )
    page.examined = len(rows)
    page.next_after = rows[-1].administration_id if len(rows) == limit else None
    return page


def take_send_slot(ctx: AppContext, *, second: int) -> bool:
    """Takes one send of wall-clock `second` from SEND_RATE_PER_SECOND, a budget every ticking
    process shares through the database; False when that second's budget is spent.

    `second` is Unix time from the caller, not `ctx.clock`: a tick run `--at` another instant
    still sends in real seconds, and the processes sharing the budget share the wall clock.
    """
    limit = max(1, int(ctx.settings.send_rate_per_second))
    with ctx.session() as session:
        return deliveries.take_send_slot(session=session, second=second, limit=limit)


def record_results(ctx: AppContext, results: Sequence[DeliveryResult]) -> RecordSummary:
    """Writes how claimed deliveries ended; a 403 marks the patient unreachable."""
    now = ctx.clock.now()
    with ctx.session() as session:
        deliveries.finish_deliveries(
            session=session,
            finished=[
                deliveries.Finished(
                    delivery_id=result.delivery_id,
                    status=_DELIVERY_STATUS[result.outcome],
                    attempts=result.attempts,
                    error=result.error,
                )
                for result in results
            ],
            now=now,
        )
        blocked = [r.delivery_id for r in results if r.outcome is Outcome.UNREACHABLE]
        patients = deliveries.patients_of_deliveries(session=session, delivery_ids=blocked)
        newly = schedule.mark_unreachable(
            session=session, patient_ids=sorted(set(patients.values())), now=now
        )
        for patient_id in newly:
            _audit_reachability(session, patient_id, now, actor=ACTOR, reachable=False)
    summary = RecordSummary(
        sent=sum(1 for r in results if r.outcome is Outcome.SENT),
        failed=sum(1 for r in results if r.outcome is Outcome.FAILED),
        unreachable=len(blocked),
        newly_unreachable_patients=newly,
    )
    if summary.failed or newly:
        logger.warning(
            "deliveries not sent",
            extra={"fields": {"failed": summary.failed, "unreachable": len(newly)}},
        )
    return summary


def _audit_reachability(
    session: Session, patient_id: int, now: datetime, *, actor: str, reachable: bool
) -> None:
    audit.record_event(
        session=session,
        at=now,
        actor=actor,
        entity="patient",
        entity_id=patient_id,
        patient_id=patient_id,
        action="reachable" if reachable else "unreachable",
    )


class SnoozeStatus(StrEnum):
    SNOOZED = "snoozed"
    CLOSES_FIRST = "closes_first"
    CLOSED = "closed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SnoozeResult:
    """What became of a snooze press; times are the patient's local wall clock."""

    status: SnoozeStatus
    language: str | None = None
    administration_id: int | None = None
    remind_at: str | None = None
    closes_at: str | None = None


def snooze_reminder(
    ctx: AppContext, *, telegram_user_id: int, administration_id: int, choice: str
) -> SnoozeResult:
    """Moves the next reminder of the pressing patient's own open questionnaire to "in two
    hours" or "tomorrow at this time" (out of quiet hours); a button of someone else's, or of a
    questionnaire that has closed, changes nothing."""
    if choice not in timing.SNOOZE_CHOICES:
        return SnoozeResult(SnoozeStatus.UNKNOWN)
    now = ctx.clock.now()
    with ctx.session() as session:
        own = schedule.administration_of_account(
            session=session, administration_id=administration_id, telegram_user_id=telegram_user_id
        )
        if own is None:
            return SnoozeResult(SnoozeStatus.UNKNOWN)
        administration, patient = own.administration, own.patient
        language = patient.language
        if administration.status != AdministrationStatus.OPEN.value or (
            administration.expires_at <= now
        ):
            return SnoozeResult(SnoozeStatus.CLOSED, language, administration_id)
        closes_at = timing.local_label(administration.expires_at, patient.timezone)
        at = timing.snooze_until(choice, now=now, tz_name=patient.timezone, quiet=_quiet(ctx))
        if at >= administration.expires_at:
            return SnoozeResult(
                SnoozeStatus.CLOSES_FIRST, language, administration_id, closes_at=closes_at
            )
        if not schedule.set_next_reminder(
            session=session, administration_id=administration_id, at=at
        ):
            return SnoozeResult(SnoozeStatus.CLOSED, language, administration_id)
        return SnoozeResult(
            SnoozeStatus.SNOOZED,
            language,
            administration_id,
            remind_at=timing.local_label(at, patient.timezone),
            closes_at=closes_at,
        )


def restore_contact(ctx: AppContext, *, telegram_user_id: int) -> bool:
    """A patient marked unreachable wrote to the bot again: scheduled messages resume.
    True if there was a mark to clear."""
    with ctx.session() as session:
        return restore_contact_in(session, telegram_user_id=telegram_user_id, now=ctx.clock.now())


def restore_contact_in(session: Session, *, telegram_user_id: int, now: datetime) -> bool:
    """`restore_contact` inside the caller's unit of work (the update claim runs it together
    with the redelivery check, in the update's first unit of work)."""
    patient_id = schedule.mark_reachable(session=session, telegram_user_id=telegram_user_id)
    if patient_id is None:
        return False
    _audit_reachability(session, patient_id, now, actor="patient", reachable=True)
    logger.info("patient reachable again", extra={"fields": {"patient_id": patient_id}})
    return True


def note_blocked(ctx: AppContext, *, telegram_user_id: int) -> bool:
    """Telegram reported that a patient blocked the bot: mark them unreachable straight away.
    True if they were reachable until now."""
    now = ctx.clock.now()
    with ctx.session() as session:
        patient_id = schedule.patient_of_account(session=session, telegram_user_id=telegram_user_id)
        if patient_id is None:
            return False
        newly = schedule.mark_unreachable(session=session, patient_ids=[patient_id], now=now)
        for marked in newly:
            _audit_reachability(session, marked, now, actor="patient", reachable=False)
    return bool(newly)


@dataclass(frozen=True)
class UnreachablePatient:
    patient_id: int
    clinic_ref: str
    physician_id: int
    since: datetime


@dataclass(frozen=True)
class DeliveryReport:
    """For an operator: deliveries that did not arrive, and patients Telegram refuses."""

    problems: list[deliveries.DeliveryProblem]
    unreachable: list[UnreachablePatient]


def delivery_report(ctx: AppContext, *, days: int = 7, limit: int = 100) -> DeliveryReport:
    """Failed, refused and interrupted deliveries of the last `days`, newest first, and every
    patient currently unreachable (staff-facing: names them by clinic reference)."""
    now = ctx.clock.now()
    with ctx.session() as session:
        problems = deliveries.delivery_problems(
            session=session,
            since=now - timedelta(days=days),
            stale_before=now - STALE_CLAIM,
            limit=limit,
        )
        unreachable = []
        for patient in schedule.unreachable_patients(session=session, limit=limit):
            assert patient.id is not None
            assert patient.unreachable_since is not None
            unreachable.append(
                UnreachablePatient(
                    patient_id=patient.id,
                    clinic_ref=patient.clinic_ref,
                    physician_id=patient.physician_id,
                    since=patient.unreachable_since,
                )
            )
    return DeliveryReport(problems=problems, unreachable=unreachable)
