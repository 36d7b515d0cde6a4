"""Questionnaire administrations and their answers: the conversation state lives here.

Every state change is a conditional UPDATE on what the caller believes the state to be
(compare-and-set), so a duplicate update, a double tap or a second process cannot advance a
questionnaire twice or record an answer against the wrong item.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, literal, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Administration, AdministrationStatus, Answer
from storage.types import UTCDateTime


def create_administration(
    *,
    session: Session,
    patient_id: int,
    kind: str,
    slot_at: datetime,
    now: datetime,
    expires_at: datetime,
    instrument_version: str,
    language: str,
    current_item: str | None = None,
) -> Administration | None:
    """Opens an administration for a slot; None if that slot already has one (unique key)."""
    administration = Administration(
        patient_id=patient_id,
        kind=kind,
        slot_at=slot_at,
        status=AdministrationStatus.OPEN.value,
        current_item=current_item,
        instrument_version=instrument_version,
        language=language,
        opened_at=now,
        expires_at=expires_at,
    )
    try:
        with session.begin_nested():
            session.add(administration)
            session.flush()
    except IntegrityError:
        return None
    return administration


def get_administration(*, session: Session, administration_id: int) -> Administration | None:
    """The administration with this id, read fresh from the database."""
    return session.exec(
        select(Administration)
        .where(Administration.id == administration_id)
        .execution_options(populate_existing=True)
    ).first()


def get_open_administration(
    *, session: Session, patient_id: int, now: datetime | None = None
) -> Administration | None:
    """The patient's open administration (the most recent one if several are open).

    With `now`, one whose `expires_at` has passed no longer counts as open, even before the
    scheduler has marked it missed.
    """
    query = (
        select(Administration)
        .where(
            Administration.patient_id == patient_id,
            Administration.status == AdministrationStatus.OPEN.value,
        )
        .order_by(col(Administration.slot_at).desc())
        .execution_options(populate_existing=True)
    )
    if now is not None:
        query = query.where(col(Administration.expires_at) > now)
    return session.exec(query).first()


def count_administrations(
    *, session: Session, patient_id: int, kind: str, slot_from: datetime, slot_until: datetime
) -> int:
    """How many administrations of one kind a patient has with a slot in [from, until)."""
    total = session.exec(
        select(func.count())
        .select_from(Administration)
        .where(
            Administration.patient_id == patient_id,
            Administration.kind == kind,
            col(Administration.slot_at) >= slot_from,
            col(Administration.slot_at) < slot_until,
        )
    ).one()
    return int(total)


def last_completed_before(
    *, session: Session, patient_id: int, before: datetime, exclude_id: int | None = None
) -> Administration | None:
    """The patient's most recently completed administration that finished before a moment."""
    query = (
        select(Administration)
        .where(
            Administration.patient_id == patient_id,
            Administration.status == AdministrationStatus.COMPLETED.value,
            col(Administration.completed_at) <= before,
        )
        .order_by(col(Administration.completed_at).desc(), col(Administration.id).desc())
    )
    if exclude_id is not None:
        query = query.where(Administration.id != exclude_id)
    return session.exec(query).first()


def completed_since(*, session: Session, patient_id: int, since: datetime) -> list[Administration]:
    """A patient's administrations completed at or after `since`, oldest first."""
    return list(
        session.exec(
            select(Administration)
            .where(
                Administration.patient_id == patient_id,
                Administration.status == AdministrationStatus.COMPLETED.value,
                col(Administration.completed_at) >= since,
            )
            .order_by(col(Administration.completed_at), col(Administration.id))
        )
    )


def set_language_if_unstarted(*, session: Session, administration_id: int, language: str) -> None:
    """Asks a questionnaire not yet started in the patient's current language."""
    session.execute(
        update(Administration)
        .where(
            col(Administration.id) == administration_id,
            col(Administration.current_item).is_(None),
            col(Administration.started_at).is_(None),
        )
        .values(language=language)
    )


def list_administrations(
    *,
    session: Session,
    patient_id: int,
    since: datetime | None = None,
    statuses: tuple[AdministrationStatus, ...] | None = None,
) -> list[Administration]:
    """A patient's administrations, oldest slot first."""
    query = (
        select(Administration)
        .where(Administration.patient_id == patient_id)
        .order_by(col(Administration.slot_at))
    )
    if since is not None:
        query = query.where(col(Administration.slot_at) >= since)
    if statuses:
        query = query.where(col(Administration.status).in_([s.value for s in statuses]))
    return list(session.exec(query))


def move_current_item(
    *,
    session: Session,
    administration_id: int,
    expected_item: str | None,
    new_item: str | None,
    return_to_summary: bool,
    now: datetime,
) -> bool:
    """Moves an open administration from `expected_item` to `new_item`; False if it was not
    there any more (a stale or duplicate press), in which case nothing changes."""
    condition = (
        col(Administration.current_item).is_(None)
        if expected_item is None
        else col(Administration.current_item) == expected_item
    )
    result = session.execute(
        update(Administration)
        .where(
            col(Administration.id) == administration_id,
            col(Administration.status) == AdministrationStatus.OPEN.value,
            condition,
        )
        .values(
            current_item=new_item,
            return_to_summary=return_to_summary,
            # The first move starts the administration; later moves keep its start time.
            started_at=func.coalesce(
                col(Administration.started_at), literal(now, type_=UTCDateTime())
            ),
        )
    )
    return getattr(result, "rowcount", 0) == 1


def save_answer(
    *,
    session: Session,
    administration_id: int,
    item_code: str,
    raw_value: Decimal,
    score: Decimal,
    now: datetime,
    current: dict[str, Answer] | None = None,
) -> tuple[Answer, Answer | None]:
    """Writes an item's answer (a correction raises its version); returns (new, previous).

    `current` is the administration's answers as `answers_of` just loaded them in this unit of
    work (after its compare-and-set move, so no one else can have changed them); passing it
    saves reading them again.
    """
    if current is not None:
        existing = current.get(item_code)
    else:
        existing = session.exec(
            select(Answer)
            .where(Answer.administration_id == administration_id, Answer.item_code == item_code)
            .execution_options(populate_existing=True)
        ).first()
    if existing is None:
        answer = Answer(
            administration_id=administration_id,
            item_code=item_code,
            raw_value=raw_value,
            score=score,
            answered_at=now,
        )
        session.add(answer)
        session.flush()
        return answer, None
    previous = Answer.model_validate(existing.model_dump())
    existing.raw_value = raw_value
    existing.score = score
    existing.version = existing.version + 1
    existing.answered_at = now
    session.add(existing)
    session.flush()
    return existing, previous


def answers_of(*, session: Session, administration_id: int) -> dict[str, Answer]:
    """The current answers of one administration, by item code."""
    rows = session.exec(select(Answer).where(Answer.administration_id == administration_id))
    return {answer.item_code: answer for answer in rows}


def answers_of_many(
    *, session: Session, administration_ids: list[int]
) -> dict[int, dict[str, Answer]]:
    """Current answers of several administrations in one query."""
    result: dict[int, dict[str, Answer]] = {admin_id: {} for admin_id in administration_ids}
    if not administration_ids:
        return result
    rows = session.exec(select(Answer).where(col(Answer.administration_id).in_(administration_ids)))
    for answer in rows:
        result[answer.administration_id][answer.item_code] = answer
    return result


def complete_administration(
    *, session: Session, administration_id: int, expected_item: str, now: datetime
) -> bool:
    """Marks an open administration completed if it still stands at `expected_item`."""
    result = session.execute(
        update(Administration)
        .where(
            col(Administration.id) == administration_id,
            col(Administration.status) == AdministrationStatus.OPEN.value,
            col(Administration.current_item) == expected_item,
        )
        .values(
            status=AdministrationStatus.COMPLETED.value,
            completed_at=now,
            current_item=None,
            return_to_summary=False,
            next_reminder_at=None,
        )
    )
    return getattr(result, "rowcount", 0) == 1


def set_question_message(
    *, session: Session, administration_id: int, message_id: int | None
) -> None:
    """Remembers which chat message shows the current question, so it can be edited in place."""
    session.execute(
        update(Administration)
        .where(col(Administration.id) == administration_id)
        .values(question_message_id=message_id)
    )
