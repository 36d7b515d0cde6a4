"""Previews a physician confirms with a button (a lab entry, a therapy change): read and
resolved the same way, at most once, whichever process handles the press."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import PendingLabEntry, PendingTherapyChange

PENDING = "pending"
SAVED = "saved"
CANCELLED = "cancelled"

Pending = TypeVar("Pending", PendingLabEntry, PendingTherapyChange)


def create_pending(
    *,
    session: Session,
    model: type[Pending],
    physician_id: int,
    patient_id: int,
    now: datetime,
    expires_at: datetime,
    **columns: Any,
) -> Pending:
    """Remembers what a physician typed, shown to them for confirmation until `expires_at`;
    `columns` are the preview's own (the lab values, or the therapy change)."""
    entry = model(
        physician_id=physician_id,
        patient_id=patient_id,
        **columns,
        status=PENDING,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(entry)
    session.flush()
    return entry


def get_pending(*, session: Session, model: type[Pending], row_id: int) -> Pending | None:
    """The preview with this id (whatever its status), read fresh, or None."""
    return session.exec(
        select(model).where(col(model.id) == row_id).execution_options(populate_existing=True)
    ).first()


def resolve_pending(
    *,
    session: Session,
    model: type[Pending],
    row_id: int,
    physician_id: int,
    status: str,
    now: datetime,
) -> bool:
    """Moves a physician's own, unexpired preview to `status`; False if it was not pending any
    more (pressed twice, in two processes, or expired), in which case nothing changes."""
    result = session.execute(
        update(model)
        .where(
            col(model.id) == row_id,
            col(model.physician_id) == physician_id,
            col(model.status) == PENDING,
            col(model.expires_at) > now,
        )
        .values(status=status, resolved_at=now)
    )
    return getattr(result, "rowcount", 0) == 1
