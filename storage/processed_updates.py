"""Telegram update ids already handled, so an update delivered twice is acted on once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from storage.db import run_prepared
from storage.models import ProcessedUpdate, table_of

_PROCESSED = table_of(ProcessedUpdate)
# One INSERT that does nothing on any conflict, per dialect (the clause is dialect-specific).
_CLAIM = {
    "postgresql": postgresql.insert(_PROCESSED)
    .on_conflict_do_nothing()
    .returning(_PROCESSED.c.update_id),
    "sqlite": sqlite.insert(_PROCESSED).on_conflict_do_nothing().returning(_PROCESSED.c.update_id),
}


def claim_update(
    *, session: Session, update_id: int, now: datetime, message_key: str | None = None
) -> bool:
    """Records an update id as handled; False if it was already recorded (a redelivery).

    `message_key` names the message or button press the update carries; when given, a second
    update carrying the same one is a redelivery too, whatever its id. An INSERT that does
    nothing on any conflict, so two processes receiving the same update agree on which one
    handles it.
    """
    statement = _CLAIM[session.get_bind().dialect.name]
    values = {"update_id": update_id, "processed_at": now, "message_key": message_key}
    return run_prepared(session, statement, values).scalar() is not None


def forget_updates(*, session: Session, before: datetime) -> int:
    """Drops ids handled before a moment (Telegram keeps undelivered updates for 24 hours)."""
    result = session.execute(
        delete(ProcessedUpdate).where(col(ProcessedUpdate.processed_at) < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)
