"""Telegram update ids already handled, so an update delivered twice is acted on once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, exists
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from storage.db import run_prepared
from storage.models import ChatLink, Patient, ProcessedUpdate, table_of

_PROCESSED = table_of(ProcessedUpdate)
_PATIENT = table_of(Patient)
_LINK = table_of(ChatLink)
# Whether the account that wrote belongs to a patient marked unreachable, read by the claim
# itself: almost no update needs the mark cleared, so the clearing UPDATE runs only then.
# SQLite's RETURNING names columns without their table, so each level of the subquery reads
# one table only, where no name is ambiguous.
_CONTACT_UNREACHABLE = (
    exists()
    .where(
        _PATIENT.c.unreachable_since.is_not(None),
        _PATIENT.c.id.in_(
            sa_select(_LINK.c.patient_id).where(
                _LINK.c.telegram_user_id == bindparam("contact_from")
            )
        ),
    )
    .label("contact_unreachable")
)
# One INSERT that does nothing on any conflict, per dialect (the clause is dialect-specific).
_CLAIM = {
    "postgresql": postgresql.insert(_PROCESSED)
    .on_conflict_do_nothing()
    .returning(_PROCESSED.c.update_id, _CONTACT_UNREACHABLE),
    "sqlite": sqlite.insert(_PROCESSED)
    .on_conflict_do_nothing()
    .returning(_PROCESSED.c.update_id, _CONTACT_UNREACHABLE),
}


@dataclass(frozen=True)
class UpdateClaimed:
    """What claiming an update found."""

    first: bool
    """True the first time; False for a redelivery."""
    contact_unreachable: bool = False
    """The account that wrote belongs to a patient marked unreachable (first time only)."""


def claim_update(
    *,
    session: Session,
    update_id: int,
    now: datetime,
    message_key: str | None = None,
    contact_from: int | None = None,
) -> UpdateClaimed:
    """Records an update id as handled; `first` is False if it was already recorded (a
    redelivery).

    `message_key` names the message or button press the update carries; when given, a second
    update carrying the same one is a redelivery too, whatever its id. An INSERT that does
    nothing on any conflict, so two processes receiving the same update agree on which one
    handles it. The same statement says whether `contact_from`, the Telegram account that
    wrote, belongs to a patient marked unreachable.
    """
    statement = _CLAIM[session.get_bind().dialect.name]
    values = {
        "update_id": update_id,
        "processed_at": now,
        "message_key": message_key,
        "contact_from": contact_from,
    }
    row = run_prepared(session, statement, values).first()
    if row is None:
        return UpdateClaimed(first=False)
    return UpdateClaimed(first=True, contact_unreachable=bool(row._mapping["contact_unreachable"]))


def forget_updates(*, session: Session, before: datetime) -> int:
    """Drops ids handled before a moment (Telegram keeps undelivered updates for 24 hours)."""
    result = session.execute(
        delete(ProcessedUpdate).where(col(ProcessedUpdate.processed_at) < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)
