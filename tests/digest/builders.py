"""Digest test data: physicians, patients, questionnaires and lab values.

Scores are computed by the real scoring path (`bot.services.scores`), answers and lab values
are stored by the real storage functions, so a digest reads exactly what production writes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count

from sqlmodel import Session

from bot.context import AppContext
from bot.services import scores as score_service
from storage import administrations, enrollment, labs, physicians
from storage.models import (
    Administration,
    AdministrationKind,
    AdministrationStatus,
    Analyte,
    Patient,
    PatientStatus,
)
from tests.factories import make_patient, make_physician

_telegram_ids = count(900_000_001)
ITEMS = ("q1", "q2", "q3", "q4", "q5")
WINDOW = timedelta(days=7)


def physician(
    ctx: AppContext,
    *,
    language: str = "en",
    timezone: str = "Europe/Berlin",
    email: str | None = None,
    telegram_user_id: int | None = None,
) -> int:
    """A physician, linked to a Telegram account unless `telegram_user_id` is 0."""
    created = make_physician(ctx, language=language, timezone=timezone)
    with ctx.session() as session:
        if email is not None:
            physicians.update_physician(
                session=session, physician_id=created.physician_id, email=email
            )
        if telegram_user_id != 0:
            user = telegram_user_id or next(_telegram_ids)
            enrollment.create_link(
                session=session,
                telegram_user_id=user,
                chat_id=user,
                now=ctx.clock.now(),
                physician_id=created.physician_id,
            )
    return created.physician_id


def patient(
    ctx: AppContext,
    physician_id: int,
    *,
    ref: str | None = None,
    name: str | None = None,
    status: PatientStatus = PatientStatus.ACTIVE,
    unreachable_since: datetime | None = None,
    baseline: datetime | None = None,
) -> int:
    """A patient of the physician, enrolled (ACTIVE) unless another status is given."""
    created = make_patient(ctx, physician_id=physician_id, ref=ref, name=name)
    with ctx.session() as session:
        row = session.get(Patient, created.patient_id)
        assert row is not None
        row.status = status.value
        row.unreachable_since = unreachable_since
        row.baseline_date = baseline
        session.add(row)
    return created.patient_id


def _administration(
    session: Session, patient_id: int, slot: datetime, kind: AdministrationKind
) -> Administration:
    created = administrations.create_administration(
        session=session,
        patient_id=patient_id,
        kind=kind.value,
        slot_at=slot,
        now=slot,
        expires_at=slot + timedelta(days=3),
        instrument_version="basdai-en-1",
        language="en",
        current_item="summary",
    )
    assert created is not None
    assert created.id is not None
    return created


def completed(
    ctx: AppContext,
    patient_id: int,
    slot: datetime,
    *,
    item: object = 2,
    back: object | None = None,
    peripheral: object | None = None,
    minutes: object | None = None,
    patient_global: object = 2,
    kind: AdministrationKind = AdministrationKind.SCHEDULED,
) -> int:
    """A completed questionnaire scored the production way.

    Every BASDAI item is `item` (so BASDAI equals `item`) unless `back`, `peripheral` or
    `minutes` override items 2, 3 and 6.
    """
    values = {code: Decimal(str(item)) for code in ITEMS}
    if back is not None:
        values["q2"] = Decimal(str(back))
    if peripheral is not None:
        values["q3"] = Decimal(str(peripheral))
    q6_minutes = Decimal(str(minutes)) if minutes is not None else Decimal(str(item)) * 12
    with ctx.session() as session:
        administration = _administration(session, patient_id, slot, kind)
        assert administration.id is not None
        for code, value in values.items():
            administrations.save_answer(
                session=session,
                administration_id=administration.id,
                item_code=code,
                raw_value=value,
                score=value,
                now=slot,
            )
        administrations.save_answer(
            session=session,
            administration_id=administration.id,
            item_code="q6",
            raw_value=q6_minutes,
            score=min(q6_minutes / 12, Decimal(10)),
            now=slot,
        )
        administrations.save_answer(
            session=session,
            administration_id=administration.id,
            item_code="patient_global",
            raw_value=Decimal(str(patient_global)),
            score=Decimal(str(patient_global)),
            now=slot,
        )
        assert administrations.complete_administration(
            session=session, administration_id=administration.id, expected_item="summary", now=slot
        )
        score_service.recompute_administration(
            session, administration_id=administration.id, window=WINDOW, now=slot
        )
        return administration.id


def missed(ctx: AppContext, patient_id: int, slot: datetime) -> int:
    """A scheduled questionnaire the patient did not complete in time."""
    return _closed(ctx, patient_id, slot, AdministrationStatus.MISSED)


def still_open(ctx: AppContext, patient_id: int, slot: datetime) -> int:
    """A scheduled questionnaire still waiting for answers."""
    return _closed(ctx, patient_id, slot, AdministrationStatus.OPEN)


def _closed(ctx: AppContext, patient_id: int, slot: datetime, status: AdministrationStatus) -> int:
    with ctx.session() as session:
        administration = _administration(session, patient_id, slot, AdministrationKind.SCHEDULED)
        administration.status = status.value
        administration.current_item = None if status is not AdministrationStatus.OPEN else "q1"
        session.add(administration)
        assert administration.id is not None
        return administration.id


def crp(ctx: AppContext, patient_id: int, drawn: datetime, mg_l: object) -> int:
    """A CRP value; the scores it can affect are recomputed as the lab service does."""
    return _lab(ctx, patient_id, drawn, Analyte.CRP, "mg/L", Decimal(str(mg_l)))


def esr(ctx: AppContext, patient_id: int, drawn: datetime, mm_h: object) -> int:
    """An ESR value; the scores it can affect are recomputed as the lab service does."""
    return _lab(ctx, patient_id, drawn, Analyte.ESR, "mm/h", Decimal(str(mm_h)))


def _lab(
    ctx: AppContext, patient_id: int, drawn: datetime, analyte: Analyte, unit: str, value: Decimal
) -> int:
    with ctx.session() as session:
        lab = labs.add_lab_result(
            session=session,
            patient_id=patient_id,
            analyte=analyte.value,
            value=value,
            unit=unit,
            value_normalised=value,
            below_detection_limit=False,
            drawn_at=drawn,
            source="test",
            entered_by="test",
            now=drawn,
        )
        score_service.recompute_around_lab(
            session, patient_id=patient_id, drawn_at=drawn, window=WINDOW, now=drawn
        )
        assert lab.id is not None
        return lab.id
