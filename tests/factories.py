"""Test data created through the real services, so it cannot drift from production writes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from itertools import count

from bot.context import AppContext
from bot.domain import instruments
from bot.services import staff
from bot.services.scores import recompute_administration
from storage import administrations

_refs = count(1)


def make_physician(
    ctx: AppContext, *, name: str = "Dr. Test", language: str = "en", timezone: str | None = None
) -> staff.PhysicianCreated:
    """A physician created as the CLI would."""
    return staff.add_physician(ctx, display_name=name, language=language, timezone=timezone)


def make_patient(
    ctx: AppContext,
    *,
    physician_id: int,
    ref: str | None = None,
    name: str | None = None,
    language: str = "en",
    timezone: str | None = None,
) -> staff.PatientCreated:
    """A patient created as the CLI would, with a fresh enrollment code."""
    return staff.add_patient(
        ctx,
        physician_id=physician_id,
        clinic_ref=ref or f"MRN-{next(_refs):05d}",
        display_name=name,
        language=language,
        timezone=timezone,
    )


def make_active_patient(
    ctx: AppContext,
    *,
    physician_id: int,
    telegram_user_id: int,
    chat_id: int | None = None,
    ref: str | None = None,
    language: str = "en",
    timezone: str = "Europe/Berlin",
    weekday: int = 0,
    at: time = time(18, 0),
) -> int:
    """An ACTIVE patient linked to a Telegram account, onboarded as the bot would do it:
    the enrollment code is used, then language, consent, time zone, weekday and time are
    chosen through the account service. Returns the patient id."""
    from bot.services import enrollment, patients

    created = make_patient(
        ctx, physician_id=physician_id, ref=ref, language=language, timezone=timezone
    )
    linked = enrollment.enroll(
        ctx,
        telegram_user_id=telegram_user_id,
        chat_id=telegram_user_id if chat_id is None else chat_id,
        code_text=created.code.code,
        language=language,
    )
    assert linked.outcome is enrollment.Outcome.PATIENT_LINKED, linked
    for step, value in (
        ("lang", language),
        ("consent", "yes"),
        ("tz", timezone),
        ("day", str(weekday)),
        ("time", at.strftime("%H:%M")),
    ):
        reply = patients.choose(ctx, telegram_user_id=telegram_user_id, step=step, value=value)
        assert reply.notice != "stale", (step, value, reply)
    assert reply.patient is not None
    assert reply.patient.status == "active", reply
    return created.patient_id


def make_completed_questionnaire(
    ctx: AppContext,
    *,
    patient_id: int,
    completed_at: datetime,
    answers: Mapping[str, instruments.ParsedAnswer | None],
) -> int:
    """A questionnaire with these answers, completed at `completed_at`, stored and scored as
    the questionnaire service does it; returns the administration id."""
    with ctx.session() as session:
        administration = administrations.create_administration(
            session=session,
            patient_id=patient_id,
            kind="scheduled",
            slot_at=completed_at - timedelta(hours=1),
            now=completed_at - timedelta(hours=1),
            expires_at=completed_at + timedelta(days=3),
            instrument_version=instruments.INSTRUMENT_VERSION,
            language="en",
            current_item="patient_global",
        )
        assert administration is not None
        assert administration.id is not None
        for code, parsed in answers.items():
            assert parsed is not None, code
            administrations.save_answer(
                session=session,
                administration_id=administration.id,
                item_code=code,
                raw_value=parsed.raw_value,
                score=parsed.score,
                now=completed_at,
            )
        assert administrations.complete_administration(
            session=session,
            administration_id=administration.id,
            expected_item="patient_global",
            now=completed_at,
        )
        recompute_administration(
            session,
            administration_id=administration.id,
            window=timedelta(days=ctx.settings.lab_window_days),
            now=completed_at,
        )
        return administration.id
