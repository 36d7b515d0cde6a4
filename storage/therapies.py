"""Therapy episodes of patients (clinical spec §7): stored, corrected and listed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from storage import pending
from storage.models import PendingTherapyChange, TherapyEpisodeRow


@dataclass(frozen=True)
class EpisodeColumns:
    """The columns an episode, a correction of it and a change waiting for Save share."""

    drug: str
    therapy_class: str
    dose: str | None
    start_date: date
    stop_date: date | None
    stop_reason: str | None


def add_therapy(
    *,
    session: Session,
    patient_id: int,
    episode: EpisodeColumns,
    entered_by: str,
    now: datetime,
) -> TherapyEpisodeRow:
    """Stores one episode as entered."""
    row = TherapyEpisodeRow(
        patient_id=patient_id,
        **asdict(episode),
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
    episode: EpisodeColumns,
    now: datetime,
) -> TherapyEpisodeRow:
    """Writes new values over an episode loaded in this session (the caller audits the old)."""
    for name, value in asdict(episode).items():
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
    episode: EpisodeColumns,
    now: datetime,
    expires_at: datetime,
) -> PendingTherapyChange:
    """Remembers an episode to add, or a stop, shown to a physician for confirmation."""
    entry = PendingTherapyChange(
        physician_id=physician_id,
        patient_id=patient_id,
        action=action,
        therapy_id=therapy_id,
        **asdict(episode),
        status=pending.PENDING,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(entry)
    session.flush()
    return entry
