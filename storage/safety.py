"""Safety check-ins and their answers (clinical spec §8); the check-in row is its state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import SafetyAnswer, SafetyCheckin

OPEN = "open"
CONFIRMED = "confirmed"
SUMMARY = "summary"


def open_checkin(
    *,
    session: Session,
    patient_id: int,
    kind: str,
    version: str,
    language: str,
    first_question: str,
    now: datetime,
    administration_id: int | None = None,
) -> SafetyCheckin:
    """Opens a check-in; the one after a questionnaire is opened once, so a second call (a
    second process, a redelivery) returns the existing row."""
    if administration_id is not None:
        existing = checkin_for_administration(session=session, administration_id=administration_id)
        if existing is not None:
            return existing
    checkin = SafetyCheckin(
        patient_id=patient_id,
        administration_id=administration_id,
        kind=kind,
        status=OPEN,
        current_question=first_question,
        version=version,
        language=language,
        opened_at=now,
    )
    try:
        with session.begin_nested():
            session.add(checkin)
            session.flush()
    except IntegrityError:
        assert administration_id is not None
        existing = checkin_for_administration(session=session, administration_id=administration_id)
        assert existing is not None
        return existing
    return checkin


def checkin_for_administration(*, session: Session, administration_id: int) -> SafetyCheckin | None:
    """The check-in that followed this questionnaire, if any."""
    return session.exec(
        select(SafetyCheckin).where(SafetyCheckin.administration_id == administration_id)
    ).first()


def get_checkin(*, session: Session, checkin_id: int) -> SafetyCheckin | None:
    """The check-in with this id, or None."""
    return session.get(SafetyCheckin, checkin_id)


def open_checkin_of(*, session: Session, patient_id: int) -> SafetyCheckin | None:
    """The patient's newest open check-in, or None."""
    return session.exec(
        select(SafetyCheckin)
        .where(SafetyCheckin.patient_id == patient_id, SafetyCheckin.status == OPEN)
        .order_by(col(SafetyCheckin.id).desc())
    ).first()


def answers_of(*, session: Session, checkin_id: int) -> dict[str, SafetyAnswer]:
    """A check-in's answers by question code."""
    rows = session.exec(select(SafetyAnswer).where(SafetyAnswer.checkin_id == checkin_id))
    return {row.question_code: row for row in rows}


def save_answer(
    *,
    session: Session,
    checkin_id: int,
    question_code: str,
    answer_yes: bool,
    version: str,
    now: datetime,
) -> tuple[SafetyAnswer, bool | None]:
    """Stores an answer (replacing one given before confirming); returns the row and the
    answer it replaced, if any. A changed answer keeps no note of the old one."""
    existing = session.exec(
        select(SafetyAnswer).where(
            SafetyAnswer.checkin_id == checkin_id, SafetyAnswer.question_code == question_code
        )
    ).first()
    if existing is not None:
        previous = existing.answer_yes
        if previous != answer_yes:
            existing.note = None
        existing.answer_yes = answer_yes
        existing.version = version
        existing.answered_at = now
        session.add(existing)
        session.flush()
        return existing, previous
    row = SafetyAnswer(
        checkin_id=checkin_id,
        question_code=question_code,
        answer_yes=answer_yes,
        version=version,
        answered_at=now,
    )
    session.add(row)
    session.flush()
    return row, None


def set_note(*, session: Session, answer: SafetyAnswer, note: str) -> None:
    """Attaches the patient's note to an answer."""
    answer.note = note
    session.add(answer)
    session.flush()


def move_question(
    *, session: Session, checkin_id: int, expected: str | None, new: str | None
) -> bool:
    """Moves an open check-in from `expected` to `new` only if it is still at `expected`, so
    a stale or duplicated press changes nothing."""
    result = session.execute(
        update(SafetyCheckin)
        .where(
            col(SafetyCheckin.id) == checkin_id,
            col(SafetyCheckin.status) == OPEN,
            col(SafetyCheckin.current_question) == expected,
        )
        .values(current_question=new)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def confirm_checkin(*, session: Session, checkin_id: int, now: datetime) -> bool:
    """Closes a check-in at its summary; False if it was not open there (stale press)."""
    result = session.execute(
        update(SafetyCheckin)
        .where(
            col(SafetyCheckin.id) == checkin_id,
            col(SafetyCheckin.status) == OPEN,
            col(SafetyCheckin.current_question) == SUMMARY,
        )
        .values(status=CONFIRMED, confirmed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def yes_answers_between(
    *, session: Session, patient_ids: list[int], since: datetime, until: datetime
) -> list[tuple[SafetyCheckin, SafetyAnswer]]:
    """ "Yes" answers of these patients given in [since, until), oldest first (digest)."""
    if not patient_ids:
        return []
    rows = session.exec(
        select(SafetyCheckin, SafetyAnswer)
        .join(SafetyAnswer, col(SafetyAnswer.checkin_id) == col(SafetyCheckin.id))
        .where(
            col(SafetyCheckin.patient_id).in_(patient_ids),
            col(SafetyAnswer.answer_yes).is_(True),
            col(SafetyAnswer.answered_at) >= since,
            col(SafetyAnswer.answered_at) < until,
        )
        .order_by(col(SafetyAnswer.answered_at), col(SafetyAnswer.id))
    )
    return list(rows)
