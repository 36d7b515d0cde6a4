"""Patient records and their preferences."""

from __future__ import annotations

import secrets
from datetime import datetime, time

from sqlmodel import Session, col, select

from storage.models import Patient, PatientStatus


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


def get_patient_by_ref(*, session: Session, clinic_ref: str) -> Patient | None:
    """The patient with this clinic reference, or None."""
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


def save_patient(*, session: Session, patient: Patient) -> Patient:
    """Writes the changed fields of a patient loaded in this session."""
    session.add(patient)
    session.flush()
    return patient
