"""Stored scores of administrations, with the lab values they were computed from."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from storage.models import Administration, AdministrationStatus, LabResult, ScoreRecord

_SCORE_OF = select(ScoreRecord).where(
    col(ScoreRecord.administration_id) == bindparam("administration_id")
)


def upsert_score(
    *,
    session: Session,
    administration_id: int,
    basdai: Decimal | None,
    asdas_crp: Decimal | None,
    asdas_crp_lab_id: int | None,
    crp_floored: bool,
    asdas_esr: Decimal | None,
    asdas_esr_lab_id: int | None,
    now: datetime,
) -> ScoreRecord:
    """Writes the scores of one administration, replacing what was there."""
    record = get_score(session=session, administration_id=administration_id)
    if record is None:
        record = ScoreRecord(administration_id=administration_id, computed_at=now)
    record.basdai = basdai
    record.asdas_crp = asdas_crp
    record.asdas_crp_lab_id = asdas_crp_lab_id
    record.crp_floored = crp_floored
    record.asdas_esr = asdas_esr
    record.asdas_esr_lab_id = asdas_esr_lab_id
    record.computed_at = now
    session.add(record)
    session.flush()
    return record


def get_score(*, session: Session, administration_id: int) -> ScoreRecord | None:
    """The stored scores of one administration, or None."""
    return session.exec(_SCORE_OF, params={"administration_id": administration_id}).first()


def scores_of_many(*, session: Session, administration_ids: list[int]) -> dict[int, ScoreRecord]:
    """Stored scores of several administrations in one query."""
    if not administration_ids:
        return {}
    rows = session.exec(
        select(ScoreRecord).where(col(ScoreRecord.administration_id).in_(administration_ids))
    )
    return {row.administration_id: row for row in rows}


def completed_near(
    *, session: Session, patient_id: int, around: datetime, window: timedelta
) -> list[Administration]:
    """A patient's completed administrations finished within ±window of a moment."""
    return list(
        session.exec(
            select(Administration).where(
                Administration.patient_id == patient_id,
                Administration.status == AdministrationStatus.COMPLETED.value,
                col(Administration.completed_at) >= around - window,
                col(Administration.completed_at) <= around + window,
            )
        )
    )


def delete_scores_of_patient(*, session: Session, patient_id: int) -> None:
    """Removes every stored score of a patient (data deletion)."""
    ids = select(Administration.id).where(Administration.patient_id == patient_id)
    for record in session.exec(
        select(ScoreRecord).where(col(ScoreRecord.administration_id).in_(ids))
    ):
        session.delete(record)
    session.flush()


def completed_scores_of_patients(
    *, session: Session, patient_ids: list[int]
) -> list[tuple[int, datetime, ScoreRecord, Decimal | None]]:
    """Every completed administration's scores of these patients in one query, oldest first:
    (patient id, completion time, scores, the CRP in mg/L its ASDAS-CRP used)."""
    if not patient_ids:
        return []
    rows = session.execute(
        select(
            col(Administration.patient_id),
            col(Administration.completed_at),
            ScoreRecord,
            col(LabResult.value_normalised),
        )
        .join(ScoreRecord, col(ScoreRecord.administration_id) == col(Administration.id))
        .outerjoin(LabResult, col(LabResult.id) == col(ScoreRecord.asdas_crp_lab_id))
        .where(
            col(Administration.patient_id).in_(patient_ids),
            col(Administration.status) == AdministrationStatus.COMPLETED.value,
        )
        .order_by(col(Administration.completed_at), col(Administration.id))
    )
    return [(row[0], row[1], row[2], row[3]) for row in rows]
