"""Therapy episodes of patients (clinical spec §7): stored, corrected and listed."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage import pending
from storage.models import PendingTherapyChange, TherapyColumns, TherapyEpisodeRow


def add_therapy(
    *,
    session: Session,
    patient_id: int,
    episode: TherapyColumns,
    entered_by: str,
    now: datetime,
) -> TherapyEpisodeRow:
    """Stores one episode as entered."""
    row = TherapyEpisodeRow(
        patient_id=patient_id,
        **episode.model_dump(),
        entered_by=entered_by,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_therapy(*, session: Session, therapy_id: int) -> TherapyEpisodeRow | None:
    """The episode with this id, or None."""
    return session.get(TherapyEpisodeRow, therapy_id)


def list_therapies(*, session: Session, patient_id: int) -> list[TherapyEpisodeRow]:
    """A patient's episodes by start date, then in the order they were entered."""
    return list(
        session.exec(
            select(TherapyEpisodeRow)
            .where(TherapyEpisodeRow.patient_id == patient_id)
            .order_by(col(TherapyEpisodeRow.start_date), col(TherapyEpisodeRow.id))
        )
    )


def list_therapies_of_many(
    *, session: Session, patient_ids: list[int]
) -> dict[int, list[TherapyEpisodeRow]]:
    """Episodes of several patients in one query, by patient, each list by start date."""
    found: dict[int, list[TherapyEpisodeRow]] = {patient_id: [] for patient_id in patient_ids}
    if not patient_ids:
        return found
    rows = session.exec(
        select(TherapyEpisodeRow)
        .where(col(TherapyEpisodeRow.patient_id).in_(patient_ids))
        .order_by(col(TherapyEpisodeRow.start_date), col(TherapyEpisodeRow.id))
    )
    for row in rows:
        found[row.patient_id].append(row)
    return found


def change_therapy(
    *,
    session: Session,
    therapy: TherapyEpisodeRow,
    episode: TherapyColumns,
    now: datetime,
) -> TherapyEpisodeRow:
    """Writes new values over an episode loaded in this session (the caller audits the old)."""
    for name, value in episode.model_dump().items():
        setattr(therapy, name, value)
    therapy.updated_at = now
    session.add(therapy)
    session.flush()
    return therapy


def create_pending_change(
    *,
    session: Session,
    physician_id: int,
    patient_id: int,
    action: str,
    therapy_id: int | None,
    episode: TherapyColumns,
    now: datetime,
    expires_at: datetime,
) -> PendingTherapyChange:
    """Remembers an episode to add, or a stop, shown to a physician for confirmation."""
    return pending.create_pending(
        session=session,
        model=PendingTherapyChange,
        physician_id=physician_id,
        patient_id=patient_id,
        now=now,
        expires_at=expires_at,
        action=action,
        therapy_id=therapy_id,
        **episode.model_dump(),
    )
