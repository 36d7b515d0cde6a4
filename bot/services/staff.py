"""Clinic staff tasks: physicians, patients and their one-time enrollment codes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import time, timedelta

from sqlmodel import Session

from bot.config import Settings, check_timezone
from bot.context import AppContext
from bot.services import keyed
from storage import enrollment, patients, physicians
from storage.models import Role

# No 0/O, 1/I/L: codes are read off paper and typed on phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10


class StaffError(ValueError):
    """A staff request that cannot be carried out; the message is shown as is."""


@dataclass(frozen=True)
class IssuedCode:
    """A freshly issued one-time code, shown once to staff and never stored in clear."""

    code: str
    link: str
    expires_at: str


@dataclass(frozen=True)
class PhysicianCreated:
    physician_id: int
    display_name: str
    code: IssuedCode


@dataclass(frozen=True)
class PatientCreated:
    patient_id: int
    clinic_ref: str
    physician_id: int
    code: IssuedCode


@dataclass(frozen=True)
class PatientRow:
    patient_id: int
    clinic_ref: str
    display_name: str | None
    physician_id: int
    status: str
    language: str
    timezone: str
    linked: bool
    needs_physician: bool = False
    """Their physician was deactivated: an admin should give them a new one."""


def new_code() -> str:
    """A random code of 10 characters from a 31-letter alphabet (about 49 bits)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str:
    """What a person typed, as the code it was meant to be (case, spaces and dashes ignored)."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def hash_code(ctx: AppContext, code: str) -> str:
    """The keyed hash under which a code is stored; codes themselves are never stored.
    Raises `StaffError` naming PSEUDONYM_KEY when the server secret is not set."""
    try:
        key = keyed.server_key(ctx, purpose="issue enrollment codes")
    except keyed.MissingSecretError as error:
        raise StaffError(str(error)) from None
    return keyed.code_hash(key, normalise_code(code))


def legacy_hash_code(code: str) -> str:
    """The unkeyed SHA-256 under which codes issued before keyed hashing were stored; still
    accepted until they expire (ENROLLMENT_CODE_TTL_DAYS)."""
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


def _validated_language(language: str | None, settings: Settings) -> str:
    chosen = language or settings.clinic_language
    if chosen not in settings.languages:
        raise StaffError(f"--language must be one of {', '.join(settings.languages)}")
    return chosen


def _validated_timezone(timezone: str | None, default: str) -> str:
    try:
        return check_timezone(timezone or default)
    except ValueError as error:
        raise StaffError(f"--timezone: {error}") from None


def _issue(
    ctx: AppContext,
    *,
    session: Session,
    role: str,
    patient_id: int | None,
    physician_id: int | None,
) -> IssuedCode:
    """Creates a code, stores only its hash, and returns it with the deep link."""
    now = ctx.clock.now()
    code = new_code()
    expires = now + timedelta(days=ctx.settings.enrollment_code_ttl_days)
    enrollment.issue_code(
        session=session,
        code_hash=hash_code(ctx, code),
        role=role,
        now=now,
        expires_at=expires,
        patient_id=patient_id,
        physician_id=physician_id,
    )
    link = f"https://t.me/{ctx.settings.telegram_bot_username}?start={code}"
    return IssuedCode(code=code, link=link, expires_at=expires.replace(microsecond=0).isoformat())


def add_physician(
    ctx: AppContext,
    *,
    display_name: str,
    timezone: str | None = None,
    language: str | None = None,
    email: str | None = None,
    admin: bool = False,
) -> PhysicianCreated:
    """Creates a physician (or clinic admin) and their one-time code for linking Telegram."""
    name = display_name.strip()
    if not name:
        raise StaffError("--name must not be empty")
    if email is not None and "@" not in email:
        raise StaffError("--email must be an e-mail address")
    lang = _validated_language(language, ctx.settings)
    zone = _validated_timezone(timezone, ctx.settings.clinic_timezone)
    with ctx.session() as session:
        physician = physicians.create_physician(
            session=session,
            display_name=name,
            now=ctx.clock.now(),
            language=lang,
            timezone=zone,
            email=email,
            role=Role.ADMIN.value if admin else Role.PHYSICIAN.value,
        )
        assert physician.id is not None
        code = _issue(
            ctx,
            role=Role.PHYSICIAN.value,
            patient_id=None,
            physician_id=physician.id,
            session=session,
        )
        return PhysicianCreated(physician_id=physician.id, display_name=name, code=code)


def add_patient(
    ctx: AppContext,
    *,
    physician_id: int,
    clinic_ref: str,
    display_name: str | None = None,
    language: str | None = None,
    timezone: str | None = None,
) -> PatientCreated:
    """Creates a patient of a physician and the one-time code the patient uses to join."""
    ref = clinic_ref.strip()
    if not ref or len(ref) > 64 or any(ch.isspace() for ch in ref):
        raise StaffError("--ref must be 1 to 64 characters without spaces")
    lang = _validated_language(language, ctx.settings)
    zone = _validated_timezone(timezone, ctx.settings.clinic_timezone)
    with ctx.session() as session:
        if physicians.get_physician(session=session, physician_id=physician_id) is None:
            raise StaffError(f"--physician: no physician with id {physician_id}")
        try:
            patient = patients.create_patient(
                session=session,
                physician_id=physician_id,
                clinic_ref=ref,
                display_name=(display_name or "").strip() or None,
                now=ctx.clock.now(),
                language=lang,
                timezone=zone,
                schedule_weekday=ctx.settings.default_questionnaire_weekday,
                schedule_time=ctx.settings.default_questionnaire_time,
            )
        except patients.DuplicateClinicRef:
            raise StaffError(f"--ref: a patient with reference {ref!r} already exists") from None
        assert patient.id is not None
        code = _issue(
            ctx,
            role=Role.PATIENT.value,
            patient_id=patient.id,
            physician_id=None,
            session=session,
        )
        return PatientCreated(
            patient_id=patient.id, clinic_ref=ref, physician_id=physician_id, code=code
        )


def list_patients(ctx: AppContext, *, physician_id: int | None = None) -> list[PatientRow]:
    """Every patient who has not asked for deletion, with whether Telegram is linked."""
    with ctx.session() as session:
        rows = []
        for patient in patients.list_patients(session=session, physician_id=physician_id):
            assert patient.id is not None
            link = enrollment.get_link_for_patient(session=session, patient_id=patient.id)
            physician = physicians.get_physician(session=session, physician_id=patient.physician_id)
            rows.append(
                PatientRow(
                    patient_id=patient.id,
                    clinic_ref=patient.clinic_ref,
                    display_name=patient.display_name,
                    physician_id=patient.physician_id,
                    status=patient.status,
                    language=patient.language,
                    timezone=patient.timezone,
                    linked=link is not None,
                    needs_physician=physician is not None and physician.deactivated_at is not None,
                )
            )
        return rows


def new_patient_code(ctx: AppContext, *, clinic_ref: str) -> IssuedCode:
    """Issues a fresh code for a patient; their previous unused code stops working."""
    with ctx.session() as session:
        patient = patients.get_patient_by_ref(session=session, clinic_ref=clinic_ref)
        if patient is None or patient.status == "deleted":
            raise StaffError(f"no patient with reference {clinic_ref!r}")
        assert patient.id is not None
        return _issue(
            ctx,
            role=Role.PATIENT.value,
            patient_id=patient.id,
            physician_id=None,
            session=session,
        )


def new_physician_code(ctx: AppContext, *, physician_id: int) -> IssuedCode:
    """Issues a fresh code for a physician; their previous unused code stops working."""
    with ctx.session() as session:
        physician = physicians.get_physician(session=session, physician_id=physician_id)
        if physician is None:
            raise StaffError(f"no physician with id {physician_id}")
        if physician.deactivated_at is not None:
            raise StaffError(f"physician {physician_id} was deactivated: no new code")
        return _issue(
            ctx,
            role=Role.PHYSICIAN.value,
            patient_id=None,
            physician_id=physician_id,
            session=session,
        )


def set_physician_digest_time(
    ctx: AppContext, *, physician_id: int, weekday: int, at: time
) -> None:
    """Moves a physician's weekly digest to another weekday and local time."""
    with ctx.session() as session:
        if (
            physicians.set_digest_schedule(
                session=session, physician_id=physician_id, weekday=weekday, at=at
            )
            is None
        ):
            raise StaffError(f"no physician with id {physician_id}")
