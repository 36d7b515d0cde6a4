"""The delivery log: every scheduled outgoing message is claimed by its dedupe key first.

A claim is an INSERT that does nothing when the key exists, so of several processes racing for
the same message exactly one gets the row and sends; the others see None and move on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.models import Delivery, DeliveryStatus


def claim_delivery(
    *,
    session: Session,
    dedupe_key: str,
    kind: str,
    now: datetime,
    patient_id: int | None = None,
    physician_id: int | None = None,
    administration_id: int | None = None,
) -> Delivery | None:
    """Claims a message for sending; None when another process (or an earlier run) has it."""
    values = {
        "dedupe_key": dedupe_key,
        "kind": kind,
        "patient_id": patient_id,
        "physician_id": physician_id,
        "administration_id": administration_id,
        "status": DeliveryStatus.CLAIMED.value,
        "claimed_at": now,
        "attempts": 0,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Delivery)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(col(Delivery.id))
    )
    delivery_id = session.execute(statement).scalar()
    if delivery_id is None:
        return None
    return session.get(Delivery, delivery_id)


def finish_delivery(
    *,
    session: Session,
    delivery_id: int,
    status: DeliveryStatus,
    now: datetime,
    attempts: int,
    error: str | None = None,
) -> None:
    """Records how a claimed message ended: sent, failed (with the reason) or unreachable."""
    session.execute(
        update(Delivery)
        .where(col(Delivery.id) == delivery_id)
        .values(
            status=status.value,
            sent_at=now if status is DeliveryStatus.SENT else None,
            attempts=attempts,
            error=None if error is None else error[:500],
        )
    )


def get_delivery(*, session: Session, dedupe_key: str) -> Delivery | None:
    """The delivery with this key, or None."""
    return session.exec(select(Delivery).where(Delivery.dedupe_key == dedupe_key)).first()


def list_deliveries(
    *,
    session: Session,
    statuses: tuple[DeliveryStatus, ...] | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """Recent deliveries, newest first, optionally only some statuses."""
    query = select(Delivery).order_by(col(Delivery.claimed_at).desc()).limit(limit)
    if statuses:
        query = query.where(col(Delivery.status).in_([status.value for status in statuses]))
    if since is not None:
        query = query.where(col(Delivery.claimed_at) >= since)
    return list(session.exec(query))
