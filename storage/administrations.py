"""Questionnaire administrations and their answers: the conversation state lives here.

Every state change is a conditional UPDATE on what the caller believes the state to be
(compare-and-set), so a duplicate update, a double tap or a second process cannot advance a
questionnaire twice or record an answer against the wrong item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.column_types import UTCDateTime
from storage.db import cached_row, run_prepared, sync_cached
from storage.models import Administration, AdministrationStatus, Answer, table_of


@dataclass(frozen=True, slots=True)
class AdministrationRecord:
    """What a press needs of an administration row, read without the ORM (a button press reads
    it on every tap): a record of the row as read, not an object to change and save."""

    id: int
    patient_id: int
    kind: str
    slot_at: datetime
    status: str
    current_item: str | None
    return_to_summary: bool
    instrument_version: str
    language: str
    expires_at: datetime
    completed_at: datetime | None
    question_message_id: int | None


class StoredAnswer(NamedTuple):
    """An item's current answer as read or just written: a record, not an object to save."""

    id: int
    administration_id: int
    item_code: str
    raw_value: Decimal
    score: Decimal
    version: int
    answered_at: datetime


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
    started_at: datetime | None = None,
) -> Administration | None:
    """Opens an administration for a slot; None if that slot already has one (unique key).

    With `current_item` and `started_at` it is opened already started at that item."""
    administration = Administration(
        patient_id=patient_id,
        kind=kind,
        slot_at=slot_at,
        status=AdministrationStatus.OPEN.value,
        current_item=current_item,
        instrument_version=instrument_version,
        language=language,
        opened_at=now,
        started_at=started_at,
        expires_at=expires_at,
    )
    try:
        with session.begin_nested():
            session.add(administration)
            session.flush()
    except IntegrityError:
        return None
    return administration


_BY_ID = (
    select(Administration)
    .where(col(Administration.id) == bindparam("administration_id"))
    .execution_options(populate_existing=True)
)


def get_administration(*, session: Session, administration_id: int) -> Administration | None:
    """The administration with this id, read fresh from the database."""
    return session.exec(_BY_ID, params={"administration_id": administration_id}).first()


_OPEN_OF_PATIENT = (
    select(Administration)
    .where(
        col(Administration.patient_id) == bindparam("patient_id"),
        col(Administration.status) == AdministrationStatus.OPEN.value,
    )
    .order_by(col(Administration.slot_at).desc())
    .execution_options(populate_existing=True)
)
_OPEN_OF_PATIENT_NOW = _OPEN_OF_PATIENT.where(
    col(Administration.expires_at) > bindparam("now", type_=UTCDateTime())
)


def get_open_administration(
    *, session: Session, patient_id: int, now: datetime | None = None
) -> Administration | None:
    """The patient's open administration (the most recent one if several are open).

    With `now`, one whose `expires_at` has passed no longer counts as open, even before the
    scheduler has marked it missed.
    """
    if now is None:
        return session.exec(_OPEN_OF_PATIENT, params={"patient_id": patient_id}).first()
    params = {"patient_id": patient_id, "now": now}
    return session.exec(_OPEN_OF_PATIENT_NOW, params=params).first()


_COUNT_OF_KIND = (
    select(func.count())
    .select_from(Administration)
    .where(
        col(Administration.patient_id) == bindparam("patient_id"),
        col(Administration.kind) == bindparam("kind"),
        col(Administration.slot_at) >= bindparam("slot_from", type_=UTCDateTime()),
        col(Administration.slot_at) < bindparam("slot_until", type_=UTCDateTime()),
    )
)


def count_administrations(
    *, session: Session, patient_id: int, kind: str, slot_from: datetime, slot_until: datetime
) -> int:
    """How many administrations of one kind a patient has with a slot in [from, until)."""
    params = {
        "patient_id": patient_id,
        "kind": kind,
        "slot_from": slot_from,
        "slot_until": slot_until,
    }
    return int(session.exec(_COUNT_OF_KIND, params=params).one())


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
    params = {"administration_id": administration_id, "language": language}
    if run_prepared(session, _SET_LANGUAGE_IF_UNSTARTED, params).rowcount == 1:
        sync_cached(session, Administration, administration_id, language=language)


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


_ADMINISTRATION = table_of(Administration)
_OPEN_WITH_ID = (
    _ADMINISTRATION.c.id == bindparam("administration_id"),
    _ADMINISTRATION.c.status == AdministrationStatus.OPEN.value,
)
_MOVE_VALUES = {
    "current_item": bindparam("new_item"),
    "return_to_summary": bindparam("return_to_summary"),
    # The first move starts the administration; later moves keep its start time.
    "started_at": func.coalesce(
        _ADMINISTRATION.c.started_at, bindparam("now", type_=UTCDateTime())
    ),
}
_MOVE_FROM_UNSTARTED = (
    update(_ADMINISTRATION)
    .where(*_OPEN_WITH_ID, _ADMINISTRATION.c.current_item.is_(None))
    .values(_MOVE_VALUES)
)
_MOVE_FROM_ITEM = (
    update(_ADMINISTRATION)
    .where(*_OPEN_WITH_ID, _ADMINISTRATION.c.current_item == bindparam("expected_item"))
    .values(_MOVE_VALUES)
)


_SET_LANGUAGE_IF_UNSTARTED = (
    update(_ADMINISTRATION)
    .where(
        _ADMINISTRATION.c.id == bindparam("administration_id"),
        _ADMINISTRATION.c.current_item.is_(None),
        _ADMINISTRATION.c.started_at.is_(None),
    )
    .values(language=bindparam("language"))
)


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
    params = {
        "administration_id": administration_id,
        "new_item": new_item,
        "return_to_summary": return_to_summary,
        "now": now,
    }
    if expected_item is None:
        result = run_prepared(session, _MOVE_FROM_UNSTARTED, params)
    else:
        result = run_prepared(session, _MOVE_FROM_ITEM, {**params, "expected_item": expected_item})
    if result.rowcount != 1:
        return False
    moved: dict[str, object] = {"current_item": new_item, "return_to_summary": return_to_summary}
    cached = cached_row(session, Administration, administration_id)
    if cached is not None and cached.started_at is None:
        moved["started_at"] = now
    sync_cached(session, Administration, administration_id, **moved)
    return True


_ANSWER = table_of(Answer)
ANSWER_COLUMNS = (
    _ANSWER.c.id,
    _ANSWER.c.administration_id,
    _ANSWER.c.item_code,
    _ANSWER.c.raw_value,
    _ANSWER.c.score,
    _ANSWER.c.version,
    _ANSWER.c.answered_at,
)
"""The columns of a `StoredAnswer`, in its order."""
_INSERT_ANSWER = insert(_ANSWER).returning(_ANSWER.c.id)
_CORRECT_ANSWER = (
    update(_ANSWER)
    .where(_ANSWER.c.id == bindparam("answer_id"))
    .values(
        raw_value=bindparam("raw_value", type_=_ANSWER.c.raw_value.type),
        score=bindparam("score", type_=_ANSWER.c.score.type),
        version=bindparam("version"),
        answered_at=bindparam("answered_at", type_=UTCDateTime()),
    )
)
_ANSWERS_OF = sa_select(*ANSWER_COLUMNS).where(
    _ANSWER.c.administration_id == bindparam("administration_id")
)
_ANSWER_OF_ITEM = _ANSWERS_OF.where(_ANSWER.c.item_code == bindparam("item_code"))


def save_answer(
    *,
    session: Session,
    administration_id: int,
    item_code: str,
    raw_value: Decimal,
    score: Decimal,
    now: datetime,
    current: Mapping[str, StoredAnswer] | None = None,
) -> tuple[StoredAnswer, StoredAnswer | None]:
    """Writes an item's answer (a correction raises its version); returns (new, previous).

    `current` is the administration's answers as `answers_of` just read them in this unit of
    work (after its compare-and-set move, so no one else can have changed them); passing it
    saves reading them again.
    """
    if current is not None:
        existing = current.get(item_code)
    else:
        params = {"administration_id": administration_id, "item_code": item_code}
        row = run_prepared(session, _ANSWER_OF_ITEM, params).first()
        existing = None if row is None else StoredAnswer._make(row)
    if existing is None:
        answer_id = run_prepared(
            session,
            _INSERT_ANSWER,
            {
                "administration_id": administration_id,
                "item_code": item_code,
                "raw_value": raw_value,
                "score": score,
                "version": 1,
                "answered_at": now,
            },
        ).scalar_one()
        return StoredAnswer(answer_id, administration_id, item_code, raw_value, score, 1, now), None
    corrected = existing._replace(
        raw_value=raw_value, score=score, version=existing.version + 1, answered_at=now
    )
    changes = {
        "raw_value": raw_value,
        "score": score,
        "version": corrected.version,
        "answered_at": now,
    }
    run_prepared(session, _CORRECT_ANSWER, {"answer_id": existing.id, **changes})
    sync_cached(session, Answer, existing.id, **changes)
    return corrected, existing


def answers_of(*, session: Session, administration_id: int) -> dict[str, StoredAnswer]:
    """The current answers of one administration, by item code."""
    rows = run_prepared(session, _ANSWERS_OF, {"administration_id": administration_id})
    return {answer.item_code: answer for answer in map(StoredAnswer._make, rows)}


_ANSWERS_OF_MANY = sa_select(*ANSWER_COLUMNS).where(
    _ANSWER.c.administration_id.in_(bindparam("administration_ids", expanding=True))
)


def answers_of_many(
    *, session: Session, administration_ids: list[int]
) -> dict[int, dict[str, StoredAnswer]]:
    """Current answers of several administrations in one query."""
    result: dict[int, dict[str, StoredAnswer]] = {admin_id: {} for admin_id in administration_ids}
    if not administration_ids:
        return result
    rows = run_prepared(session, _ANSWERS_OF_MANY, {"administration_ids": administration_ids})
    for answer in map(StoredAnswer._make, rows):
        result[answer.administration_id][answer.item_code] = answer
    return result


_COMPLETE = (
    update(_ADMINISTRATION)
    .where(*_OPEN_WITH_ID, _ADMINISTRATION.c.current_item == bindparam("expected_item"))
    .values(
        status=AdministrationStatus.COMPLETED.value,
        completed_at=bindparam("now", type_=UTCDateTime()),
        current_item=None,
        return_to_summary=False,
        next_reminder_at=None,
    )
)


def complete_administration(
    *, session: Session, administration_id: int, expected_item: str, now: datetime
) -> bool:
    """Marks an open administration completed if it still stands at `expected_item`."""
    params = {"administration_id": administration_id, "expected_item": expected_item, "now": now}
    if run_prepared(session, _COMPLETE, params).rowcount != 1:
        return False
    sync_cached(
        session,
        Administration,
        administration_id,
        status=AdministrationStatus.COMPLETED.value,
        completed_at=now,
        current_item=None,
        return_to_summary=False,
        next_reminder_at=None,
    )
    return True


_SET_QUESTION_MESSAGE = (
    update(_ADMINISTRATION)
    .where(_ADMINISTRATION.c.id == bindparam("administration_id"))
    .values(question_message_id=bindparam("message_id"))
)


def set_question_message(
    *, session: Session, administration_id: int, message_id: int | None
) -> None:
    """Remembers which chat message shows the current question, so it can be edited in place."""
    params = {"administration_id": administration_id, "message_id": message_id}
    run_prepared(session, _SET_QUESTION_MESSAGE, params)
    sync_cached(session, Administration, administration_id, question_message_id=message_id)
