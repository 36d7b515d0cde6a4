"""The delivery log: every scheduled outgoing message is claimed by its dedupe key first.

A claim is an INSERT that does nothing when the key exists, so of several processes racing for
the same message exactly one gets the row and sends; the others see None and move on. The claim
is committed before the message is sent, so a process that dies in between leaves a row that
stays `claimed` and is never sent by anyone (at-most-once; see `bot.services.scheduling`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.models import Delivery, DeliveryStatus, Patient, SendBudget


def claim_delivery(
    *,
    session: Session,
    dedupe_key: str,
    kind: str,
    now: datetime,
    patient_id: int | None = None,
    physician_id: int | None = None,
    administration_id: int | None = None,
    status: DeliveryStatus = DeliveryStatus.CLAIMED,
) -> Delivery | None:
    """Claims a message for sending; None when another process (or an earlier run) has it.

    With `status=QUEUED` the message is only put in the log, for `take_queued` to claim later.
    """
    values = {
        "dedupe_key": dedupe_key,
        "kind": kind,
        "patient_id": patient_id,
        "physician_id": physician_id,
        "administration_id": administration_id,
        "status": status.value,
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


def take_queued(*, session: Session, kind: str, now: datetime) -> list[Delivery]:
    """Claims every queued message of a kind; a conditional update per row, so of several
    processes taking the same queue each message goes to exactly one."""
    queued = session.exec(
        select(Delivery.id).where(
            Delivery.kind == kind, Delivery.status == DeliveryStatus.QUEUED.value
        )
    ).all()
    taken: list[Delivery] = []
    for delivery_id in queued:
        result = session.execute(
            update(Delivery)
            .where(
                col(Delivery.id) == delivery_id,
                col(Delivery.status) == DeliveryStatus.QUEUED.value,
            )
            .values(status=DeliveryStatus.CLAIMED.value, claimed_at=now)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            delivery = session.get(Delivery, delivery_id)
            if delivery is not None:
                taken.append(delivery)
    return taken


@dataclass(frozen=True)
class Claim:
    """One message to claim: its dedupe key and whom it is for."""

    dedupe_key: str
    kind: str
    patient_id: int | None = None
    physician_id: int | None = None
    administration_id: int | None = None


def claim_deliveries(*, session: Session, claims: list[Claim], now: datetime) -> dict[str, int]:
    """Claims many messages in one INSERT … ON CONFLICT DO NOTHING; the delivery id of each
    key this call won (keys already claimed, by anyone, are absent)."""
    if not claims:
        return {}
    rows = [
        {
            "dedupe_key": claim.dedupe_key,
            "kind": claim.kind,
            "patient_id": claim.patient_id,
            "physician_id": claim.physician_id,
            "administration_id": claim.administration_id,
            "status": DeliveryStatus.CLAIMED.value,
            "claimed_at": now,
            "attempts": 0,
        }
        for claim in claims
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Delivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(col(Delivery.id), col(Delivery.dedupe_key))
    )
    return {str(key): int(delivery_id) for delivery_id, key in session.execute(statement)}


# Budget rows older than this many seconds are removed when a new second begins.
BUDGET_KEPT_SECONDS = 60


def take_send_slot(*, session: Session, second: int, limit: int) -> bool:
    """Counts one send against `second`'s budget of `limit`, in one INSERT … ON CONFLICT DO
    UPDATE … WHERE used < limit; False (nothing changed) when the second's budget is spent.
    The first send of a second removes the rows of seconds long past."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(SendBudget)
        .values(second=second, used=1)
        .on_conflict_do_update(
            index_elements=["second"],
            set_={"used": col(SendBudget.used) + 1},
            where=col(SendBudget.used) < limit,
        )
        .returning(col(SendBudget.used))
    )
    used = session.execute(statement).scalar_one_or_none()
    if used == 1:
        session.execute(
            delete(SendBudget).where(col(SendBudget.second) < second - BUDGET_KEPT_SECONDS)
        )
    return used is not None


@dataclass(frozen=True)
class Finished:
    """How one claimed delivery ended."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    error: str | None = None


def finish_deliveries(*, session: Session, finished: list[Finished], now: datetime) -> None:
    """Records how many claimed deliveries ended, in one executemany UPDATE by primary key."""
    if not finished:
        return
    session.execute(
        update(Delivery),
        [
            {
                "id": item.delivery_id,
                "status": item.status.value,
                "sent_at": now if item.status is DeliveryStatus.SENT else None,
                "attempts": item.attempts,
                "error": None if item.error is None else item.error[:500],
            }
            for item in finished
        ],
    )


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


@dataclass(frozen=True)
class DeliveryProblem:
    """A scheduled message that did not arrive, with whom it was for (staff-facing)."""

    delivery_id: int
    kind: str
    status: str
    claimed_at: datetime
    attempts: int
    error: str | None
    patient_id: int | None
    clinic_ref: str | None
    physician_id: int | None


def delivery_problems(
    *, session: Session, since: datetime, stale_before: datetime, limit: int
) -> list[DeliveryProblem]:
    """Failed and unreachable deliveries claimed since `since`, and claims still unfinished
    from before `stale_before` (their process stopped between claim and send), newest first."""
    query = (
        select(Delivery, Patient.clinic_ref)
        .join(Patient, col(Patient.id) == col(Delivery.patient_id), isouter=True)
        .where(
            col(Delivery.claimed_at) >= since,
            or_(
                col(Delivery.status).in_(
                    [DeliveryStatus.FAILED.value, DeliveryStatus.UNREACHABLE.value]
                ),
                and_(
                    col(Delivery.status) == DeliveryStatus.CLAIMED.value,
                    col(Delivery.claimed_at) < stale_before,
                ),
            ),
        )
        .order_by(col(Delivery.claimed_at).desc(), col(Delivery.id).desc())
        .limit(limit)
    )
    problems = []
    for delivery, clinic_ref in session.exec(query):
        assert delivery.id is not None
        problems.append(
            DeliveryProblem(
                delivery_id=delivery.id,
                kind=delivery.kind,
                status=delivery.status,
                claimed_at=delivery.claimed_at,
                attempts=delivery.attempts,
                error=delivery.error,
                patient_id=delivery.patient_id,
                clinic_ref=clinic_ref,
                physician_id=delivery.physician_id,
            )
        )
    return problems


def patients_of_deliveries(*, session: Session, delivery_ids: list[int]) -> dict[int, int]:
    """The patient each of these deliveries was for (deliveries to physicians are left out)."""
    if not delivery_ids:
        return {}
    rows = session.execute(
        sa_select(col(Delivery.id), col(Delivery.patient_id)).where(
            col(Delivery.id).in_(delivery_ids), col(Delivery.patient_id).is_not(None)
        )
    )
    return {int(delivery_id): int(patient_id) for delivery_id, patient_id in rows}
