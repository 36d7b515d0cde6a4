"""Fixtures for lab tests: a clinic with patients, and questionnaires answered and completed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal

import pytest

from bot.context import AppContext
from bot.domain import instruments
from storage import audit, scores
from storage.models import AuditEvent, ScoreRecord
from tests.factories import make_completed_questionnaire, make_patient, make_physician

# The published case of clinical spec §5, after treatment: back pain 2, stiffness 12 min (1),
# global 2, peripheral 0; with CRP 7.59 mg/L its ASDAS-CRP is 1.767 (1.8, low activity).
CASE_ANSWERS: dict[str, int] = {
    "q1": 2,
    "q2": 2,
    "q3": 0,
    "q4": 1,
    "q5": 2,
    "q6": 15,
    "patient_global": 2,
}


@dataclass(frozen=True)
class Clinic:
    """Two physicians; Dr A follows MRN-0001 and MRN-0002, Dr B follows MRN-0003. `codes`
    holds each one's one-time code, by "dr_a", "dr_b" and clinic reference."""

    physician_a: int
    physician_b: int
    patient_1: int
    patient_2: int
    patient_3: int
    codes: dict[str, str]


@pytest.fixture
def clinic(ctx: AppContext) -> Clinic:
    a = make_physician(ctx, name="Dr A")
    b = make_physician(ctx, name="Dr B", language="zh")
    p1 = make_patient(ctx, physician_id=a.physician_id, ref="MRN-0001", name="Ana Ortiz")
    p2 = make_patient(ctx, physician_id=a.physician_id, ref="MRN-0002")
    p3 = make_patient(ctx, physician_id=b.physician_id, ref="MRN-0003")
    codes = {
        "dr_a": a.code.code,
        "dr_b": b.code.code,
        **{created.clinic_ref: created.code.code for created in (p1, p2, p3)},
    }
    return Clinic(
        a.physician_id, b.physician_id, p1.patient_id, p2.patient_id, p3.patient_id, codes
    )


def questionnaire(
    ctx: AppContext,
    *,
    patient_id: int,
    completed_at: datetime,
    answers: dict[str, int] | None = None,
) -> int:
    """A questionnaire answered with buttons and completed at `completed_at`, stored and scored
    as the questionnaire service does it; returns the administration id."""
    chosen = dict(CASE_ANSWERS if answers is None else answers)
    parsed = {code: instruments.button_answer(code, value) for code, value in chosen.items()}
    return make_completed_questionnaire(
        ctx, patient_id=patient_id, completed_at=completed_at, answers=parsed
    )


def score_of(ctx: AppContext, administration_id: int) -> ScoreRecord:
    """The stored scores of one administration."""
    with ctx.session() as session:
        record = scores.get_score(session=session, administration_id=administration_id)
    assert record is not None
    return record


def asdas_crp_of(ctx: AppContext, administration_id: int) -> Decimal | None:
    return score_of(ctx, administration_id).asdas_crp


def lab_events(ctx: AppContext, lab_id: int) -> list[AuditEvent]:
    """The audit trail of one lab value, oldest first."""
    with ctx.session() as session:
        return audit.list_events(session=session, entity="lab", entity_id=lab_id)


def as_stored(value: Decimal) -> Decimal:
    """A computed score as the database keeps it (40 significant digits, storage.column_types)."""
    context = Context(prec=40)
    return Decimal(format(context.plus(value).normalize(context), "f"))
