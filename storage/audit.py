"""The append-only audit trail."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from storage.db import run_prepared
from storage.models import AuditEvent, table_of

_EVENT = table_of(AuditEvent)
_INSERT_EVENT = insert(_EVENT).returning(_EVENT.c.id)


def record_event(
    *,
    session: Session,
    at: datetime,
    actor: str,
    entity: str,
    action: str,
    entity_id: int | None = None,
    patient_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> int:
    """Appends one change; values are stored as JSON text with decimals kept exact as strings.

    Returns the new event's id (the trail is never changed afterwards)."""
    values: dict[str, Any] = {
        "at": at,
        "actor": actor,
        "entity": entity,
        "entity_id": entity_id,
        "patient_id": patient_id,
        "action": action,
        "before": None if before is None else json.dumps(before, default=str, sort_keys=True),
        "after": None if after is None else json.dumps(after, default=str, sort_keys=True),
    }
    return int(run_prepared(session, _INSERT_EVENT, values).scalar_one())


def list_events(
    *, session: Session, entity: str | None = None, entity_id: int | None = None
) -> list[AuditEvent]:
    """Audit events in order, optionally for one entity."""
    query = select(AuditEvent).order_by(col(AuditEvent.id))
    if entity is not None:
        query = query.where(AuditEvent.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEvent.entity_id == entity_id)
    return list(session.exec(query))


def recent_events(
    *,
    session: Session,
    limit: int,
    patient_id: int | None = None,
    actor: str | None = None,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """The newest events first, optionally of one patient or one actor, older than an id."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
    if patient_id is not None:
        query = query.where(AuditEvent.patient_id == patient_id)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if before_id is not None:
        query = query.where(col(AuditEvent.id) < before_id)
    return list(session.exec(query))
