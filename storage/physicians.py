"""Physician records."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import bindparam, exists
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.db import run_prepared
from storage.models import ChatLink, Patient, PatientStatus, Physician, table_of


def create_physician(
    *,
    session: Session,
    display_name: str,
    now: datetime,
    language: str,
    timezone: str,
    email: str | None = None,
    role: str = "physician",
) -> Physician:
    """Adds a physician and returns it with its id."""
    physician = Physician(
        display_name=display_name,
        email=email,
        role=role,
        language=language,
        timezone=timezone,
        created_at=now,
    )
    session.add(physician)
    session.flush()
    return physician


def get_physician(*, session: Session, physician_id: int) -> Physician | None:
    """The physician with this id, or None."""
    return session.get(Physician, physician_id)


def list_physicians(*, session: Session) -> list[Physician]:
    """All physicians, oldest first."""
    return list(session.exec(select(Physician).order_by(col(Physician.id))))


def set_digest_schedule(
    *, session: Session, physician_id: int, weekday: int, at: time
) -> Physician | None:
    """Changes when the physician's weekly digest is delivered."""
    physician = session.get(Physician, physician_id)
    if physician is None:
        return None
    physician.digest_weekday = weekday
    physician.digest_time = at
    session.add(physician)
    session.flush()
    return physician


def update_physician(
    *,
    session: Session,
    physician_id: int,
    language: str | None = None,
    timezone: str | None = None,
    email: str | None = None,
    alerts_enabled: bool | None = None,
) -> Physician | None:
    """Updates the given preferences of a physician; None leaves a field unchanged."""
    physician = session.get(Physician, physician_id)
    if physician is None:
        return None
    if language is not None:
        physician.language = language
    if timezone is not None:
        physician.timezone = timezone
    if email is not None:
        physician.email = email
    if alerts_enabled is not None:
        physician.alerts_enabled = alerts_enabled
    session.add(physician)
    session.flush()
    return physician


def count_followed_patients(*, session: Session, physician_id: int) -> int:
    """How many patients a physician follows who have not asked for deletion."""
    rows = session.exec(
        select(Patient.id).where(
            Patient.physician_id == physician_id, Patient.status != PatientStatus.DELETED.value
        )
    )
    return len(list(rows))


def deactivate_physician(*, session: Session, physician_id: int, now: datetime) -> bool:
    """Marks a physician as having left: no access and no digest from now on. False if there is
    no such physician or they were already deactivated."""
    physician = session.get(Physician, physician_id)
    if physician is None or physician.deactivated_at is not None:
        return False
    physician.deactivated_at = now
    physician.alerts_enabled = False
    session.add(physician)
    session.flush()
    return True


def set_role(*, session: Session, physician_id: int, role: str) -> str | None:
    """Gives a physician a role; returns the role they had, or None if there is no such one."""
    physician = session.get(Physician, physician_id)
    if physician is None:
        return None
    before = physician.role
    physician.role = role
    session.add(physician)
    session.flush()
    return before


_PATIENT = table_of(Patient)
_PHYSICIAN = table_of(Physician)
_LINK = table_of(ChatLink)
_ALERTABLE = sa_select(
    exists(
        sa_select(_LINK.c.id)
        .select_from(_PATIENT)
        .join(_PHYSICIAN, _PHYSICIAN.c.id == _PATIENT.c.physician_id)
        .join(_LINK, _LINK.c.physician_id == _PHYSICIAN.c.id)
        .where(
            _PATIENT.c.id == bindparam("patient_id"),
            _PHYSICIAN.c.alerts_enabled.is_(True),
            _PHYSICIAN.c.deactivated_at.is_(None),
        )
    )
)


def physician_takes_alerts(*, session: Session, patient_id: int) -> bool:
    """Whether the patient's physician could be sent an alert now: they turned alerts on, are
    not deactivated and have linked their Telegram (one statement, read with a completion, so
    that a completion whose physician takes no alerts looks no further)."""
    return bool(run_prepared(session, _ALERTABLE, {"patient_id": patient_id}).scalar())
