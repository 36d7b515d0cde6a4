"""Patient records and their preferences."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import and_, bindparam, delete, inspect, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.administrations import ANSWER_COLUMNS, AdministrationRecord, StoredAnswer
from storage.column_types import UTCDateTime
from storage.db import run_prepared, sync_cached
from storage.models import (
    Administration,
    Answer,
    AuditEvent,
    ChatLink,
    Delivery,
    EnrollmentCode,
    LabResult,
    Patient,
    PatientStatus,
    PendingLabEntry,
    PendingTherapyChange,
    ProcessedUpdate,
    SafetyAnswer,
    SafetyCheckin,
    ScoreRecord,
    TherapyEpisodeRow,
    table_of,
)


class DuplicateClinicRef(ValueError):
    """A patient with this clinic reference already exists."""


def create_patient(
    *,
    session: Session,
    physician_id: int,
    clinic_ref: str,
    now: datetime,
    language: str,
    timezone: str,
    schedule_weekday: int,
    schedule_time: time,
    display_name: str | None = None,
) -> Patient:
    """Adds a patient in the INVITED state with a random research id used for pseudonyms."""
    if get_patient_by_ref(session=session, clinic_ref=clinic_ref) is not None:
        raise DuplicateClinicRef(clinic_ref)
    patient = Patient(
        physician_id=physician_id,
        clinic_ref=clinic_ref,
        display_name=display_name,
        research_id=secrets.token_hex(16),
        language=language,
        timezone=timezone,
        schedule_weekday=schedule_weekday,
        schedule_time=schedule_time,
        status=PatientStatus.INVITED.value,
        created_at=now,
    )
    session.add(patient)
    session.flush()
    return patient


def get_patient(*, session: Session, patient_id: int) -> Patient | None:
    """The patient with this id, or None."""
    return session.get(Patient, patient_id)


def get_patient_for_update(*, session: Session, patient_id: int) -> Patient | None:
    """The patient row, locked for this transaction on PostgreSQL (SQLite locks the database)."""
    return session.exec(select(Patient).where(Patient.id == patient_id).with_for_update()).first()


_LINKED_FOR_UPDATE = (
    select(Patient)
    .join(ChatLink, col(ChatLink.patient_id) == col(Patient.id))
    .where(col(ChatLink.telegram_user_id) == bindparam("telegram_user_id"))
    .with_for_update(of=Patient)
)


def get_linked_patient_for_update(*, session: Session, telegram_user_id: int) -> Patient | None:
    """The patient a Telegram account is linked to (None for none or a physician), locked for
    this transaction on PostgreSQL; one query, since every press and message starts here."""
    return session.exec(_LINKED_FOR_UPDATE, params={"telegram_user_id": telegram_user_id}).first()


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """What a press needs of a patient row, read without the ORM (every tap reads it): a record
    of the row as read, not an object to change and save."""

    id: int
    status: str
    language: str
    timezone: str
    schedule_weekday: int
    schedule_time: time
    paused_until: datetime | None
    baseline_date: datetime | None


_PATIENT = table_of(Patient)
_LINK = table_of(ChatLink)
_ADMINISTRATION = table_of(Administration)
_ANSWER = table_of(Answer)
_LINKED_WITH_ADMINISTRATION = (
    sa_select(
        _PATIENT.c.id,
        _PATIENT.c.status,
        _PATIENT.c.language,
        _PATIENT.c.timezone,
        _PATIENT.c.schedule_weekday,
        _PATIENT.c.schedule_time,
        _PATIENT.c.paused_until,
        _PATIENT.c.baseline_date,
        _ADMINISTRATION.c.id,
        _ADMINISTRATION.c.patient_id,
        _ADMINISTRATION.c.kind,
        _ADMINISTRATION.c.slot_at,
        _ADMINISTRATION.c.status,
        _ADMINISTRATION.c.current_item,
        _ADMINISTRATION.c.return_to_summary,
        _ADMINISTRATION.c.instrument_version,
        _ADMINISTRATION.c.language,
        _ADMINISTRATION.c.expires_at,
        _ADMINISTRATION.c.completed_at,
        _ADMINISTRATION.c.question_message_id,
        *ANSWER_COLUMNS,
    )
    .select_from(_PATIENT)
    .join(_LINK, _LINK.c.patient_id == _PATIENT.c.id)
    .outerjoin(
        _ADMINISTRATION,
        and_(
            _ADMINISTRATION.c.id == bindparam("administration_id"),
            _ADMINISTRATION.c.patient_id == _PATIENT.c.id,
        ),
    )
    .outerjoin(_ANSWER, _ANSWER.c.administration_id == _ADMINISTRATION.c.id)
    .where(_LINK.c.telegram_user_id == bindparam("telegram_user_id"))
    .with_for_update(of=_PATIENT)
)
_PATIENT_FIELDS = len(PatientRecord.__slots__)
_ADMINISTRATION_END = _PATIENT_FIELDS + len(AdministrationRecord.__slots__)


def get_linked_patient_with_administration(
    *, session: Session, telegram_user_id: int, administration_id: int
) -> tuple[PatientRecord | None, AdministrationRecord | None, dict[str, StoredAnswer]]:
    """The patient a Telegram account is linked to (None for none or a physician), locked for
    this transaction on PostgreSQL, and in the same query that patient's administration with
    this id (None if there is none, or it is another patient's) and its current answers by
    item code: a button press names its questionnaire, and every press starts here, so all of
    it is read at once, as records, without the ORM (one row per answer, at least one)."""
    params = {"telegram_user_id": telegram_user_id, "administration_id": administration_id}
    rows = run_prepared(session, _LINKED_WITH_ADMINISTRATION, params).all()
    if not rows:
        return None, None, {}
    first = rows[0]
    patient = PatientRecord(*first[:_PATIENT_FIELDS])
    if first[_PATIENT_FIELDS] is None:
        return patient, None, {}
    administration = AdministrationRecord(*first[_PATIENT_FIELDS:_ADMINISTRATION_END])
    answers = {}
    for row in rows:
        if row[_ADMINISTRATION_END] is not None:
            answer = StoredAnswer._make(row[_ADMINISTRATION_END:])
            answers[answer.item_code] = answer
    return patient, administration, answers


_SET_BASELINE = (
    update(_PATIENT)
    .where(_PATIENT.c.id == bindparam("patient_id"), _PATIENT.c.baseline_date.is_(None))
    .values(baseline_date=bindparam("at", type_=UTCDateTime()))
)


def set_baseline_date(*, session: Session, patient_id: int, at: datetime) -> None:
    """Sets the date of a patient's first completed questionnaire, unless it is set already."""
    if run_prepared(session, _SET_BASELINE, {"patient_id": patient_id, "at": at}).rowcount == 1:
        sync_cached(session, Patient, patient_id, baseline_date=at)


def get_patient_by_ref(*, session: Session, clinic_ref: str) -> Patient | None:
    """The patient with this clinic reference, or None."""
    if "\x00" in clinic_ref:  # no reference holds NUL, and PostgreSQL refuses to compare one
        return None
    return session.exec(select(Patient).where(Patient.clinic_ref == clinic_ref)).first()


def list_patients(
    *, session: Session, physician_id: int | None = None, include_deleted: bool = False
) -> list[Patient]:
    """Patients, optionally of one physician, in creation order."""
    query = select(Patient).order_by(col(Patient.id))
    if physician_id is not None:
        query = query.where(Patient.physician_id == physician_id)
    if not include_deleted:
        query = query.where(Patient.status != PatientStatus.DELETED.value)
    return list(session.exec(query))


# What decides when a patient's weekly slots fall due (bot.domain.timing: the slot's weekday,
# time and zone, being active, the activation anchor, a pause). A change to any of them clears
# the patient's `next_check_at`, so the next tick works their slots out again.
SLOT_DECIDING = (
    "status",
    "timezone",
    "schedule_weekday",
    "schedule_time",
    "consent_at",
    "created_at",
    "paused_until",
)


def save_patient(*, session: Session, patient: Patient) -> Patient:
    """Writes the changed fields of a patient loaded in this session; a change to what decides
    the weekly slots (`SLOT_DECIDING`) also clears the patient's next check."""
    state = inspect(patient)
    if any(state.attrs[name].history.has_changes() for name in SLOT_DECIDING):
        patient.next_check_at = None
    session.add(patient)
    session.flush()
    return patient


def delete_patient_data(*, session: Session, patient_id: int, now: datetime) -> bool:
    """Erases what a patient gave us, keeping only a row that says the record was deleted.

    Removes answers, scores, administrations, the delivery log, lab results, lab entries
    waiting for a physician's Save, therapy episodes and the changes to them waiting for a
    Save, safety check-ins and the Telegram link; forgets which of the account's messages and
    button presses were handled (their keys name the chat and the user); revokes unused
    enrollment codes; strips the content (before/after) from the patient's audit events while
    keeping the events themselves; clears the display name, baseline and contact state, gives
    the record a new random research id (so earlier exports no longer lead back to it) and
    marks the patient DELETED. The clinic reference stays, so the clinic can see that the
    patient asked for deletion (docs/security.md). False if there is no such patient.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        return False
    link = session.exec(select(ChatLink).where(ChatLink.patient_id == patient_id)).first()
    if link is not None:
        session.execute(
            update(ProcessedUpdate)
            .where(
                or_(
                    col(ProcessedUpdate.message_key).startswith(f"m:{link.chat_id}:"),
                    col(ProcessedUpdate.message_key).startswith(f"q:{link.telegram_user_id}:"),
                )
            )
            .values(message_key=None)
        )
    session.execute(delete(PendingLabEntry).where(col(PendingLabEntry.patient_id) == patient_id))
    administration_ids = select(Administration.id).where(Administration.patient_id == patient_id)
    session.execute(
        delete(Delivery).where(
            or_(
                col(Delivery.patient_id) == patient_id,
                col(Delivery.administration_id).in_(administration_ids),
            )
        )
    )
    # Check-ins refer to administrations, so they go first.
    checkin_ids = select(SafetyCheckin.id).where(SafetyCheckin.patient_id == patient_id)
    session.execute(delete(SafetyAnswer).where(col(SafetyAnswer.checkin_id).in_(checkin_ids)))
    session.execute(delete(SafetyCheckin).where(col(SafetyCheckin.patient_id) == patient_id))
    session.execute(
        delete(ScoreRecord).where(col(ScoreRecord.administration_id).in_(administration_ids))
    )
    session.execute(delete(Answer).where(col(Answer.administration_id).in_(administration_ids)))
    session.execute(delete(Administration).where(col(Administration.patient_id) == patient_id))
    session.execute(delete(LabResult).where(col(LabResult.patient_id) == patient_id))
    # Pending chat entries refer to episodes, so they go first.
    session.execute(
        delete(PendingTherapyChange).where(col(PendingTherapyChange.patient_id) == patient_id)
    )
    session.execute(
        delete(TherapyEpisodeRow).where(col(TherapyEpisodeRow.patient_id) == patient_id)
    )
    session.execute(delete(ChatLink).where(col(ChatLink.patient_id) == patient_id))
    session.execute(
        update(EnrollmentCode)
        .where(
            col(EnrollmentCode.patient_id) == patient_id,
            col(EnrollmentCode.used_at).is_(None),
            col(EnrollmentCode.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    session.execute(
        update(AuditEvent)
        .where(col(AuditEvent.patient_id) == patient_id)
        .values(before=None, after=None)
    )
    patient.status = PatientStatus.DELETED.value
    patient.display_name = None
    patient.research_id = secrets.token_hex(16)
    patient.baseline_date = None
    patient.unreachable_since = None
    patient.onboarding_step = None
    patient.paused_until = None
    patient.withdrawn_at = patient.withdrawn_at or now
    patient.next_check_at = None
    session.add(patient)
    session.flush()
    return True
