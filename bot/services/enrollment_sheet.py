"""Enrolling patients from the clinic web app: add a patient or renew their code, and the
facts of the printed enrollment sheet (code, t.me link, language).

Codes are stored only as hashes (`bot.services.staff`), so a sheet can be printed only from
the answer that issued the code; renewing issues a new code and the old one stops working.
An admin enrolls for every physician, a physician for themself, a nurse for the physicians
they are assigned to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.context import AppContext
from bot.services import staff
from bot.services.accounts import PhysicianChoice, Principal
from storage import patients, physicians
from storage.models import PatientStatus

_STAFF_ERRORS = (
    ("--ref:", "duplicate_ref"),
    ("--ref", "bad_ref"),
    ("--language", "bad_language"),
    ("--timezone", "bad_timezone"),
    ("--physician", "no_physician"),
)


class EnrollmentError(ValueError):
    """A request the page answers with the reason named by `code`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _code_of(error: staff.StaffError) -> str:
    message = str(error)
    for prefix, code in _STAFF_ERRORS:
        if message.startswith(prefix):
            return code
    return "unknown"


@dataclass(frozen=True)
class Sheet:
    """What the printed enrollment sheet says, in the patient's language."""

    clinic_ref: str
    display_name: str | None
    language: str
    code: str
    link: str
    expires_at: datetime
    renewed: bool


def physicians_for(ctx: AppContext, *, principal: Principal) -> tuple[PhysicianChoice, ...]:
    """The physicians this account may enroll patients for."""
    allowed = principal.physicians_served
    with ctx.session() as session:
        return tuple(
            PhysicianChoice(doctor.id, doctor.display_name)
            for doctor in physicians.list_physicians(session=session)
            if doctor.id is not None and (allowed is None or doctor.id in allowed)
        )


def add_patient(
    ctx: AppContext,
    *,
    principal: Principal,
    physician_id: int,
    clinic_ref: str,
    display_name: str | None,
    language: str | None,
    timezone: str | None,
) -> Sheet:
    """Adds a patient of a physician the account serves and returns their sheet."""
    allowed = principal.physicians_served
    if allowed is not None and physician_id not in allowed:
        raise EnrollmentError("no_physician")
    try:
        created = staff.add_patient(
            ctx,
            physician_id=physician_id,
            clinic_ref=clinic_ref,
            display_name=display_name,
            language=language,
            timezone=timezone,
        )
    except staff.StaffError as error:
        raise EnrollmentError(_code_of(error)) from None
    return _sheet(ctx, created.clinic_ref, created.code, renewed=False)


def renew_code(ctx: AppContext, *, principal: Principal, clinic_ref: str) -> Sheet:
    """A fresh code for a patient the account serves; the previous one stops working.
    Somebody else's patient is refused like an unknown reference."""
    ref = clinic_ref.strip()[:64]
    allowed = principal.physicians_served
    with ctx.session() as session:
        patient = patients.get_patient_by_ref(session=session, clinic_ref=ref) if ref else None
        if (
            patient is None
            or patient.status == PatientStatus.DELETED.value
            or (allowed is not None and patient.physician_id not in allowed)
        ):
            raise EnrollmentError("no_patient")
    try:
        code = staff.new_patient_code(ctx, clinic_ref=ref)
    except staff.StaffError:
        raise EnrollmentError("no_patient") from None
    return _sheet(ctx, ref, code, renewed=True)


def _sheet(ctx: AppContext, clinic_ref: str, code: staff.IssuedCode, *, renewed: bool) -> Sheet:
    with ctx.session() as session:
        patient = patients.get_patient_by_ref(session=session, clinic_ref=clinic_ref)
        assert patient is not None
        return Sheet(
            clinic_ref=patient.clinic_ref,
            display_name=patient.display_name,
            language=patient.language,
            code=code.code,
            link=code.link,
            expires_at=datetime.fromisoformat(code.expires_at),
            renewed=renewed,
        )
