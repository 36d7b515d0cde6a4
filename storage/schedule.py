"""Due-work queries of the scheduler: weekly slots to open, reminders, expiry, pauses, reachability.

Every query is bounded (a page of rows, keyset-paginated by id) and runs on an index:
`patient.next_check_at`, `patient.status`, the unique (patient_id, kind, slot_at) of
`administration`, `administration.next_reminder_at`, `administration.expires_at` and the
unique `chatlink.patient_id`. Nothing is loaded per patient in a loop.

Row locks use `FOR UPDATE SKIP LOCKED` so that several processes ticking at once on PostgreSQL
take disjoint pages instead of queueing behind each other; SQLite ignores the clause (its
`BEGIN IMMEDIATE` already serialises writers). Locks also keep a page's rows from changing
between reading and writing them; what makes each message go out once, though, is the unique
key of the administration and of the delivery claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import ColumnElement, Exists, bindparam, exists, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.column_types import UTCDateTime
from storage.db import run_prepared, sync_cached
from storage.models import (
    Administration,
    AdministrationKind,
    AdministrationStatus,
    ChatLink,
    Patient,
    PatientStatus,
    SchedulerMark,
    table_of,
)


@dataclass(frozen=True)
class InvitationCandidate:
    """An active, reachable, linked patient with no scheduled administration lately."""

    patient_id: int
    chat_id: int
    language: str
    timezone: str
    schedule_weekday: int
    schedule_time: time
    activated_at: datetime
    paused_until: datetime | None
    last_slot_at: datetime | None


@dataclass(frozen=True)
class ReminderCandidate:
    """An open administration whose next reminder time has come."""

    administration_id: int
    patient_id: int
    chat_id: int
    language: str
    timezone: str
    next_reminder_at: datetime
    reminders_sent: int
    expires_at: datetime
    started: bool


def _scheduled_since(since: datetime) -> Exists:
    """EXISTS: the patient (correlated) has a scheduled administration with a slot after `since`."""
    return (
        exists()
        .where(
            col(Administration.patient_id) == col(Patient.id),
            col(Administration.kind) == AdministrationKind.SCHEDULED.value,
            col(Administration.slot_at) > since,
        )
        .correlate(Patient)
    )


def _schedulable() -> list[ColumnElement[bool]]:
    return [
        col(Patient.status) == PatientStatus.ACTIVE.value,
        col(Patient.unreachable_since).is_(None),
    ]


def invitation_candidates(
    *,
    session: Session,
    now: datetime,
    recent_since: datetime,
    after_patient_id: int,
    limit: int,
) -> list[InvitationCandidate]:
    """A page of schedulable patients (by id, after `after_patient_id`) whose next check has
    come by `now` (or is not known) and with no scheduled slot later than `recent_since`, each
    with their newest scheduled slot; reads without locking.

    The next check (`record_next_checks`) keeps a patient whose next slot is days away out of
    the page, through the `patient.next_check_at` index: a tick with nothing due reads nobody.
    """
    last_slot = (
        select(func.max(col(Administration.slot_at)))
        .where(
            col(Administration.patient_id) == col(Patient.id),
            col(Administration.kind) == AdministrationKind.SCHEDULED.value,
        )
        .correlate(Patient)
        .scalar_subquery()
    )
    query = (
        sa_select(
            col(Patient.id),
            col(ChatLink.chat_id),
            col(Patient.language),
            col(Patient.timezone),
            col(Patient.schedule_weekday),
            col(Patient.schedule_time),
            col(Patient.consent_at),
            col(Patient.created_at),
            col(Patient.paused_until),
            last_slot,
        )
        .join(ChatLink, col(ChatLink.patient_id) == col(Patient.id))
        .where(
            *_schedulable(),
            or_(col(Patient.next_check_at).is_(None), col(Patient.next_check_at) <= now),
            ~_scheduled_since(recent_since),
            col(Patient.id) > after_patient_id,
        )
        .order_by(col(Patient.id))
        .limit(limit)
    )
    return [
        InvitationCandidate(
            patient_id=row[0],
            chat_id=row[1],
            language=row[2],
            timezone=row[3],
            schedule_weekday=row[4],
            schedule_time=row[5],
            activated_at=row[6] or row[7],
            paused_until=row[8],
            last_slot_at=row[9],
        )
        for row in session.execute(query)
    ]


def lock_patients_to_invite(
    *, session: Session, patient_ids: list[int], recent_since: datetime
) -> set[int]:
    """Locks those of `patient_ids` that are still schedulable and still without a recent slot;
    rows another process holds are skipped (it is inviting them right now)."""
    if not patient_ids:
        return set()
    query = (
        sa_select(col(Patient.id))
        .where(
            col(Patient.id).in_(patient_ids),
            *_schedulable(),
            ~_scheduled_since(recent_since),
        )
        .with_for_update(skip_locked=True)
    )
    return {int(value) for value in session.execute(query).scalars()}


@dataclass(frozen=True)
class NextCheck:
    """When a tick next needs to look at a patient (`bot.domain.timing.next_check_at`), worked
    out from the schedule of `candidate` as it was read."""

    candidate: InvitationCandidate
    at: datetime


_PATIENT = table_of(Patient)
_RECORD_NEXT_CHECK = (
    update(_PATIENT)
    .where(
        _PATIENT.c.id == bindparam("b_id"),
        _PATIENT.c.status == PatientStatus.ACTIVE.value,
        _PATIENT.c.timezone == bindparam("b_timezone"),
        _PATIENT.c.schedule_weekday == bindparam("b_weekday"),
        _PATIENT.c.schedule_time == bindparam("b_time"),
        func.coalesce(_PATIENT.c.consent_at, _PATIENT.c.created_at)
        == bindparam("b_activated", type_=UTCDateTime()),
        _PATIENT.c.paused_until.is_not_distinct_from(bindparam("b_paused", type_=UTCDateTime())),
    )
    .values(next_check_at=bindparam("b_at", type_=UTCDateTime()))
)


def record_next_checks(*, session: Session, checks: list[NextCheck]) -> None:
    """Stores when each patient's next check is due, in one executemany UPDATE by id.

    The candidate page is read without locks, so a patient may have changed their schedule
    (and had `next_check_at` cleared) since: a check is written only where the schedule it was
    worked out from is still the stored one, so such a change is never overwritten.
    """
    if not checks:
        return
    session.execute(
        _RECORD_NEXT_CHECK,
        [
            {
                "b_id": check.candidate.patient_id,
                "b_timezone": check.candidate.timezone,
                "b_weekday": check.candidate.schedule_weekday,
                "b_time": check.candidate.schedule_time,
                "b_activated": check.candidate.activated_at,
                "b_paused": check.candidate.paused_until,
                "b_at": check.at,
            }
            for check in checks
        ],
    )


@dataclass(frozen=True)
class NewAdministration:
    """A weekly administration to open (or to record at once as missed)."""

    patient_id: int
    slot_at: datetime
    status: str
    expires_at: datetime
    next_reminder_at: datetime | None
    instrument_version: str
    language: str


def open_scheduled_administrations(
    *, session: Session, rows: list[NewAdministration], now: datetime
) -> dict[tuple[int, datetime], int]:
    """Inserts many scheduled administrations in one statement; a slot that already has one
    (unique patient, kind and slot) is left alone. Returns the new ids by (patient, slot)."""
    if not rows:
        return {}
    values = [
        {
            "patient_id": row.patient_id,
            "kind": AdministrationKind.SCHEDULED.value,
            "slot_at": row.slot_at,
            "status": row.status,
            "current_item": None,
            "return_to_summary": False,
            "instrument_version": row.instrument_version,
            "language": row.language,
            "opened_at": now,
            "expires_at": row.expires_at,
            "next_reminder_at": row.next_reminder_at,
            "reminders_sent": 0,
        }
        for row in rows
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Administration)
        .values(values)
        .on_conflict_do_nothing(index_elements=["patient_id", "kind", "slot_at"])
        .returning(
            col(Administration.id), col(Administration.patient_id), col(Administration.slot_at)
        )
    )
    return {
        (int(patient_id), slot_at): int(administration_id)
        for administration_id, patient_id, slot_at in session.execute(statement)
    }


def set_next_reminder(*, session: Session, administration_id: int, at: datetime | None) -> bool:
    """Sets when the next reminder of an open administration goes out (None: no more)."""
    result = session.execute(
        update(Administration)
        .where(
            col(Administration.id) == administration_id,
            col(Administration.status) == AdministrationStatus.OPEN.value,
        )
        .values(next_reminder_at=at)
    )
    return getattr(result, "rowcount", 0) == 1


def expire_open_administrations(*, session: Session, now: datetime) -> int:
    """Marks every open administration whose time is up as missed; how many changed.

    One set-based UPDATE on the `expires_at` index; partial answers stay where they are.
    """
    result = session.execute(
        update(Administration)
        .where(
            col(Administration.status) == AdministrationStatus.OPEN.value,
            col(Administration.expires_at) <= now,
        )
        .values(status=AdministrationStatus.MISSED.value, next_reminder_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def count_open_administrations_expiring(*, session: Session, now: datetime) -> int:
    """How many open administrations a tick at `now` would mark missed (reads only)."""
    query = (
        sa_select(func.count())
        .select_from(Administration)
        .where(
            col(Administration.status) == AdministrationStatus.OPEN.value,
            col(Administration.expires_at) <= now,
        )
    )
    return int(session.execute(query).scalar_one())


def count_patients(*, session: Session, status: PatientStatus) -> int:
    """How many patients are in `status` (reads only)."""
    query = sa_select(func.count()).select_from(Patient).where(col(Patient.status) == status.value)
    return int(session.execute(query).scalar_one())


def lock_patients_to_resume(*, session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of paused patients whose pause has ended, locked (others' locks skipped)."""
    query = (
        sa_select(col(Patient.id))
        .where(
            col(Patient.status) == PatientStatus.PAUSED.value,
            col(Patient.paused_until).is_not(None),
            col(Patient.paused_until) <= now,
        )
        .order_by(col(Patient.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [int(value) for value in session.execute(query).scalars()]


def resume_patients(*, session: Session, patient_ids: list[int]) -> None:
    """Makes paused patients active again; `paused_until` stays as the moment they came back,
    and their next check is worked out again from it."""
    if not patient_ids:
        return
    session.execute(
        update(Patient)
        .where(
            col(Patient.id).in_(patient_ids),
            col(Patient.status) == PatientStatus.PAUSED.value,
        )
        .values(status=PatientStatus.ACTIVE.value, next_check_at=None)
    )


def due_reminders(
    *, session: Session, now: datetime, after_administration_id: int, limit: int
) -> list[ReminderCandidate]:
    """A page of open administrations of schedulable, linked patients whose reminder is due,
    locked for this transaction (rows another process is reminding right now are skipped)."""
    query = (
        sa_select(
            col(Administration.id),
            col(Administration.patient_id),
            col(ChatLink.chat_id),
            col(Patient.language),
            col(Patient.timezone),
            col(Administration.next_reminder_at),
            col(Administration.reminders_sent),
            col(Administration.expires_at),
            col(Administration.started_at),
            col(Administration.current_item),
        )
        .join(Patient, col(Patient.id) == col(Administration.patient_id))
        .join(ChatLink, col(ChatLink.patient_id) == col(Patient.id))
        .where(
            col(Administration.next_reminder_at) <= now,
            col(Administration.status) == AdministrationStatus.OPEN.value,
            col(Administration.id) > after_administration_id,
            *_schedulable(),
        )
        .order_by(col(Administration.id))
        .limit(limit)
        .with_for_update(of=Administration, skip_locked=True)
    )
    return [
        ReminderCandidate(
            administration_id=row[0],
            patient_id=row[1],
            chat_id=row[2],
            language=row[3],
            timezone=row[4],
            next_reminder_at=row[5],
            reminders_sent=row[6],
            expires_at=row[7],
            started=row[8] is not None or row[9] is not None,
        )
        for row in session.execute(query)
    ]


@dataclass(frozen=True)
class ReminderUpdate:
    """The reminder state an administration moves to once a reminder is claimed or deferred."""

    administration_id: int
    reminders_sent: int
    next_reminder_at: datetime | None


def update_reminders(*, session: Session, updates: list[ReminderUpdate]) -> None:
    """Writes new reminder states of administrations this transaction has locked
    (`due_reminders`), in one executemany UPDATE by primary key."""
    if not updates:
        return
    session.execute(
        update(Administration),
        [
            {
                "id": item.administration_id,
                "reminders_sent": item.reminders_sent,
                "next_reminder_at": item.next_reminder_at,
            }
            for item in updates
        ],
    )


@dataclass(frozen=True)
class OwnAdministration:
    """An administration together with the patient it belongs to, as seen by that patient."""

    administration: Administration
    patient: Patient


def administration_of_account(
    *, session: Session, administration_id: int, telegram_user_id: int
) -> OwnAdministration | None:
    """The administration if it belongs to the patient linked to this Telegram account."""
    row = session.exec(
        select(Administration, Patient)
        .join(Patient, col(Patient.id) == col(Administration.patient_id))
        .join(ChatLink, col(ChatLink.patient_id) == col(Patient.id))
        .where(
            col(Administration.id) == administration_id,
            col(ChatLink.telegram_user_id) == telegram_user_id,
        )
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        return None
    return OwnAdministration(administration=row[0], patient=row[1])


def mark_unreachable(*, session: Session, patient_ids: list[int], now: datetime) -> list[int]:
    """Records that Telegram refused delivery (the patient blocked the bot); returns the ids
    that were reachable until now."""
    if not patient_ids:
        return []
    result = session.execute(
        update(Patient)
        .where(col(Patient.id).in_(patient_ids), col(Patient.unreachable_since).is_(None))
        .values(unreachable_since=now)
        .returning(col(Patient.id))
    )
    return sorted(int(row[0]) for row in result)


_LINK = table_of(ChatLink)
_MARK_REACHABLE = (
    update(_PATIENT)
    .where(
        _PATIENT.c.id
        == sa_select(_LINK.c.patient_id)
        .where(_LINK.c.telegram_user_id == bindparam("telegram_user_id"))
        .scalar_subquery(),
        _PATIENT.c.unreachable_since.is_not(None),
    )
    .values(unreachable_since=None)
    .returning(_PATIENT.c.id)
)


def mark_reachable(*, session: Session, telegram_user_id: int) -> int | None:
    """Clears the unreachable mark of the patient linked to this account; the patient's id if
    there was a mark to clear, else None. One indexed UPDATE, cheap enough for every update."""
    row = run_prepared(session, _MARK_REACHABLE, {"telegram_user_id": telegram_user_id}).first()
    if row is None:
        return None
    patient_id = int(row[0])
    sync_cached(session, Patient, patient_id, unreachable_since=None)
    return patient_id


def patient_of_account(*, session: Session, telegram_user_id: int) -> int | None:
    """The id of the patient linked to this Telegram account, or None."""
    value = session.execute(
        sa_select(col(ChatLink.patient_id)).where(
            col(ChatLink.telegram_user_id) == telegram_user_id
        )
    ).scalar()
    return None if value is None else int(value)


def unreachable_patients(*, session: Session, limit: int) -> list[Patient]:
    """Patients Telegram refuses delivery to (and who have not left), longest unreachable first."""
    return list(
        session.exec(
            select(Patient)
            .where(
                col(Patient.unreachable_since).is_not(None),
                col(Patient.status).not_in(
                    [PatientStatus.WITHDRAWN.value, PatientStatus.DELETED.value]
                ),
            )
            .order_by(col(Patient.unreachable_since), col(Patient.id))
            .limit(limit)
        )
    )


def handled_until(*, session: Session, name: str) -> datetime | None:
    """Up to when the scheduler's work called `name` has been handled by a completed tick."""
    mark = session.get(SchedulerMark, name, populate_existing=True)
    return None if mark is None else mark.handled_until


def advance_handled_until(*, session: Session, name: str, at: datetime) -> None:
    """Moves the mark forward to `at` (never back: an older tick finishing late leaves it)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(SchedulerMark)
        .values(name=name, handled_until=at)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    session.execute(
        update(SchedulerMark)
        .where(col(SchedulerMark.name) == name, col(SchedulerMark.handled_until) < at)
        .values(handled_until=at)
    )
