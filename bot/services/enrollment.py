"""Linking a Telegram account to a patient or physician with a one-time code.

Refusals never say why a code failed (unknown, used, expired, revoked look alike), so nothing
is revealed about other people's codes. Wrong codes are counted per account for rate limiting
under a keyed hash of the Telegram user id: Telegram ids are stored only in `chatlink`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

from sqlmodel import Session

from bot.context import AppContext
from bot.services.keyed import account_hash
from bot.services.patients import STEP_LANGUAGE, PatientView, view_of
from bot.services.staff import hash_code, legacy_hash_code, normalise_code
from storage import audit, enrollment, patients, physicians
from storage.models import ChatLink, PatientStatus, Role

logger = logging.getLogger(__name__)

RATE_WINDOW: Final = timedelta(hours=1)
MIN_CODE_LENGTH: Final = 6
MAX_CODE_LENGTH: Final = 24


class Outcome(StrEnum):
    PATIENT_LINKED = "patient_linked"
    PHYSICIAN_LINKED = "physician_linked"
    ALREADY_LINKED = "already_linked"
    INVALID = "invalid"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class EnrollmentResult:
    """What became of a code; `language` is the one to answer in."""

    outcome: Outcome
    language: str
    patient: PatientView | None = None
    physician_id: int | None = None


def looks_like_code(text: str) -> bool:
    """Whether typed text could be an enrollment code (one short word of letters and digits).

    Anything else from an unknown account gets the how-to-join text and is not counted.
    """
    stripped = text.strip()
    if not stripped or len(stripped.split()) > 3:
        return False
    normalised = normalise_code(stripped)
    if not normalised.isascii():
        return False
    return MIN_CODE_LENGTH <= len(normalised) <= MAX_CODE_LENGTH


def enroll(
    ctx: AppContext, *, telegram_user_id: int, chat_id: int, code_text: str, language: str
) -> EnrollmentResult:
    """Links the account to whoever the code belongs to, using the code up.

    Refused when the account is already linked (the code stays valid), when it has entered
    `enrollment_max_failures_per_hour` wrong codes within the last hour, or when the code is
    not valid; each refused code counts as one failure.
    """
    now = ctx.clock.now()
    limit = ctx.settings.enrollment_max_failures_per_hour
    key = account_hash(ctx, telegram_user_id)
    with ctx.session() as session:
        link = enrollment.get_link_by_user(session=session, telegram_user_id=telegram_user_id)
        if link is not None:
            return EnrollmentResult(
                Outcome.ALREADY_LINKED, _language_of_link(session, link, language)
            )
        since = now - RATE_WINDOW
        enrollment.purge_attempts(session=session, before=since)
        # The entry counts as a failure until the code proves right (one atomic statement).
        attempt = enrollment.reserve_attempt(
            session=session, account_hash=key, now=now, since=since, limit=limit
        )
        if attempt is None:
            return EnrollmentResult(Outcome.RATE_LIMITED, language)
        code = enrollment.claim_code(
            session=session, code_hash=hash_code(ctx, code_text), now=now
        ) or enrollment.claim_code(session=session, code_hash=legacy_hash_code(code_text), now=now)
        patient = (
            patients.get_patient_for_update(session=session, patient_id=code.patient_id)
            if code is not None and code.role == Role.PATIENT.value and code.patient_id
            else None
        )
        physician = (
            physicians.get_physician(session=session, physician_id=code.physician_id)
            if code is not None and code.role == Role.PHYSICIAN.value and code.physician_id
            else None
        )
        if (patient is not None and patient.status != PatientStatus.DELETED.value) or (
            physician is not None
        ):
            enrollment.release_attempt(session=session, attempt_id=attempt)
        if patient is not None and patient.status != PatientStatus.DELETED.value:
            assert patient.id is not None
            enrollment.delete_link_for_patient(session=session, patient_id=patient.id)
            enrollment.create_link(
                session=session,
                telegram_user_id=telegram_user_id,
                chat_id=chat_id,
                now=now,
                patient_id=patient.id,
            )
            if patient.status in (PatientStatus.INVITED.value, PatientStatus.ONBOARDING.value):
                patient.status = PatientStatus.ONBOARDING.value
                patient.onboarding_step = STEP_LANGUAGE
            elif patient.status == PatientStatus.WITHDRAWN.value:
                # The clinic handed out a fresh code and the patient used it: they are back.
                patient.status = PatientStatus.ACTIVE.value
                patient.withdrawn_at = None
                patient.onboarding_step = None
            patients.save_patient(session=session, patient=patient)
            audit.record_event(
                session=session,
                at=now,
                actor="patient",
                entity="patient",
                entity_id=patient.id,
                patient_id=patient.id,
                action="link",
            )
            logger.info("patient linked", extra={"fields": {"patient_id": patient.id}})
            return EnrollmentResult(
                Outcome.PATIENT_LINKED, patient.language, patient=view_of(ctx, patient)
            )
        if physician is not None:
            assert physician.id is not None
            enrollment.delete_link_for_physician(session=session, physician_id=physician.id)
            enrollment.create_link(
                session=session,
                telegram_user_id=telegram_user_id,
                chat_id=chat_id,
                now=now,
                physician_id=physician.id,
            )
            logger.info("physician linked", extra={"fields": {"physician_id": physician.id}})
            return EnrollmentResult(
                Outcome.PHYSICIAN_LINKED, physician.language, physician_id=physician.id
            )
        logger.info("enrollment code refused")
        failures = enrollment.count_failed_attempts(session=session, account_hash=key, since=since)
        if failures >= limit:
            return EnrollmentResult(Outcome.RATE_LIMITED, language)
        return EnrollmentResult(Outcome.INVALID, language)


def _language_of_link(session: Session, link: ChatLink, default: str) -> str:
    if link.patient_id is not None:
        patient = patients.get_patient(session=session, patient_id=link.patient_id)
        return patient.language if patient is not None else default
    if link.physician_id is not None:
        physician = physicians.get_physician(session=session, physician_id=link.physician_id)
        return physician.language if physician is not None else default
    return default


@dataclass(frozen=True)
class Account:
    """Who a Telegram account is to spondybot."""

    kind: str  # "unknown" | "patient" | "physician"
    language: str
    patient_id: int | None = None
    physician_id: int | None = None


def identify(ctx: AppContext, *, telegram_user_id: int, language: str) -> Account:
    """Whether an account is a linked patient, a linked physician, or unknown to us."""
    with ctx.session() as session:
        link = enrollment.get_link_by_user(session=session, telegram_user_id=telegram_user_id)
        if link is None:
            return Account("unknown", language)
        if link.physician_id is not None:
            physician = physicians.get_physician(session=session, physician_id=link.physician_id)
            return Account(
                "physician",
                physician.language if physician else language,
                physician_id=link.physician_id,
            )
        patient = (
            patients.get_patient(session=session, patient_id=link.patient_id)
            if link.patient_id is not None
            else None
        )
        if patient is None or patient.status == PatientStatus.DELETED.value:
            return Account("unknown", language)
        return Account("patient", patient.language, patient_id=patient.id)
