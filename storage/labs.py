"""Lab results (CRP, ESR), the queries that match them to questionnaires, and lab entries a
physician has typed in chat but not yet confirmed."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import bindparam
from sqlmodel import Session, col, or_, select

from storage import pending
from storage.column_types import UTCDateTime
from storage.models import Analyte, LabResult, Patient, PendingLabEntry, ScoreRecord


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
    *,
    session: Session,
    patient_id: int,
    analyte: str | None = None,
    include_deleted: bool = False,
) -> list[LabResult]:
    """A patient's current (not deleted, unless asked) lab results, oldest first."""
    query = (
        select(LabResult)
        .where(LabResult.patient_id == patient_id)
        .order_by(col(LabResult.drawn_at), col(LabResult.id))
    )
    if not include_deleted:
        query = query.where(col(LabResult.deleted_at).is_(None))
    if analyte is not None:
        query = query.where(LabResult.analyte == analyte)
    return list(session.exec(query))


def latest_lab_results_of_clinic(
    *, session: Session, offset: int, limit: int, include_deleted: bool = False
) -> list[tuple[LabResult, str]]:
    """Lab results of every patient with their clinic reference, most recently drawn first."""
    query = (
        select(LabResult, Patient.clinic_ref)
        .join(Patient, col(Patient.id) == col(LabResult.patient_id))
        .order_by(col(LabResult.drawn_at).desc(), col(LabResult.id).desc())
        .offset(offset)
        .limit(limit)
    )
    if not include_deleted:
        query = query.where(col(LabResult.deleted_at).is_(None))
    return [(lab, clinic_ref) for lab, clinic_ref in session.exec(query)]


def find_same_sample(
    *, session: Session, patient_id: int, analyte: str, drawn_at: datetime
) -> LabResult | None:
    """The current lab result of one analyte drawn at exactly this instant, if any."""
    return session.exec(
        select(LabResult)
        .where(
            LabResult.patient_id == patient_id,
            LabResult.analyte == analyte,
            LabResult.drawn_at == drawn_at,
            col(LabResult.deleted_at).is_(None),
        )
        .order_by(col(LabResult.id))
    ).first()


def get_by_source_key(*, session: Session, source_key: str) -> LabResult | None:
    """The lab result imported under this key (deleted ones included), or None."""
    return session.exec(select(LabResult).where(LabResult.source_key == source_key)).first()


def latest_lab_result(*, session: Session, patient_id: int, analyte: str) -> LabResult | None:
    """A patient's most recently drawn current result of one analyte, or None."""
    return session.exec(
        select(LabResult)
        .where(
            LabResult.patient_id == patient_id,
            LabResult.analyte == analyte,
            col(LabResult.deleted_at).is_(None),
        )
        .order_by(col(LabResult.drawn_at).desc(), col(LabResult.id).desc())
    ).first()


def change_lab_result(
    *,
    session: Session,
    lab: LabResult,
    value: Decimal,
    unit: str,
    value_normalised: Decimal,
    below_detection_limit: bool,
    drawn_at: datetime,
) -> LabResult:
    """Corrects a lab result in place (the caller records the old value in the audit trail)."""
    lab.value = value
    lab.unit = unit
    lab.value_normalised = value_normalised
    lab.below_detection_limit = below_detection_limit
    lab.drawn_at = drawn_at
    session.add(lab)
    session.flush()
    return lab


def mark_deleted(*, session: Session, lab: LabResult, now: datetime) -> LabResult:
    """Withdraws a lab result from every calculation; the row stays for scores' provenance."""
    lab.deleted_at = now
    session.add(lab)
    session.flush()
    return lab


def administrations_using(*, session: Session, lab_id: int) -> list[int]:
    """Ids of administrations whose stored ASDAS was computed from this lab result."""
    rows = session.exec(
        select(ScoreRecord.administration_id).where(
            or_(
                col(ScoreRecord.asdas_crp_lab_id) == lab_id,
                col(ScoreRecord.asdas_esr_lab_id) == lab_id,
            )
        )
    )
    return sorted(rows)


def create_pending_entry(
    *,
    session: Session,
    physician_id: int,
    patient_id: int,
    crp_value: Decimal,
    crp_unit: str,
    crp_below_detection_limit: bool,
    esr_value: Decimal | None,
    drawn_at: datetime,
    now: datetime,
    expires_at: datetime,
) -> PendingLabEntry:
    """Remembers a lab entry shown to a physician for confirmation."""
    return pending.create_pending(
        session=session,
        model=PendingLabEntry,
        physician_id=physician_id,
        patient_id=patient_id,
        now=now,
        expires_at=expires_at,
        crp_value=crp_value,
        crp_unit=crp_unit,
        crp_below_detection_limit=crp_below_detection_limit,
        esr_value=esr_value,
        drawn_at=drawn_at,
    )


_IN_WINDOW = select(LabResult).where(
    col(LabResult.patient_id) == bindparam("patient_id"),
    col(LabResult.analyte).in_([analyte.value for analyte in Analyte]),
    col(LabResult.deleted_at).is_(None),
    col(LabResult.drawn_at) >= bindparam("start", type_=UTCDateTime()),
    col(LabResult.drawn_at) <= bindparam("end", type_=UTCDateTime()),
)


def labs_in_window(
    *, session: Session, patient_id: int, around: datetime, window: timedelta
) -> list[LabResult]:
    """Current lab results of every analyte (CRP and ESR) drawn within ±window of a moment,
    in one query: a completion matches both."""
    params = {"patient_id": patient_id, "start": around - window, "end": around + window}
    return list(session.exec(_IN_WINDOW, params=params))
