"""Lab results (CRP, ESR) and the queries that match them to questionnaires."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlmodel import Session, col, select

from storage.models import LabResult


def add_lab_result(
    *,
    session: Session,
    patient_id: int,
    analyte: str,
    value: Decimal,
    unit: str,
    value_normalised: Decimal,
    below_detection_limit: bool,
    drawn_at: datetime,
    source: str,
    entered_by: str,
    now: datetime,
    source_key: str | None = None,
) -> LabResult:
    """Stores one lab value as entered, with its normalised value."""
    lab = LabResult(
        patient_id=patient_id,
        analyte=analyte,
        value=value,
        unit=unit,
        value_normalised=value_normalised,
        below_detection_limit=below_detection_limit,
        drawn_at=drawn_at,
        source=source,
        source_key=source_key,
        entered_by=entered_by,
        created_at=now,
    )
    session.add(lab)
    session.flush()
    return lab


def get_lab_result(*, session: Session, lab_id: int) -> LabResult | None:
    """The lab result with this id (deleted ones included), or None."""
    return session.get(LabResult, lab_id)


def list_lab_results(
    *, session: Session, patient_id: int, analyte: str | None = None
) -> list[LabResult]:
    """A patient's current (not deleted) lab results, oldest first."""
    query = (
        select(LabResult)
        .where(LabResult.patient_id == patient_id, col(LabResult.deleted_at).is_(None))
        .order_by(col(LabResult.drawn_at), col(LabResult.id))
    )
    if analyte is not None:
        query = query.where(LabResult.analyte == analyte)
    return list(session.exec(query))


def labs_in_window(
    *, session: Session, patient_id: int, analyte: str, around: datetime, window: timedelta
) -> list[LabResult]:
    """Current lab results of one analyte drawn within ±window of a moment."""
    return list(
        session.exec(
            select(LabResult).where(
                LabResult.patient_id == patient_id,
                LabResult.analyte == analyte,
                col(LabResult.deleted_at).is_(None),
                col(LabResult.drawn_at) >= around - window,
                col(LabResult.drawn_at) <= around + window,
            )
        )
    )
