"""One-time enrollment codes, failed-attempt counting, and the Telegram chat links."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, bindparam, delete, func, insert, literal, text, update
from sqlmodel import Session, col, select

from storage.column_types import UTCDateTime
from storage.db import sync_cached
from storage.models import ChatLink, EnrollmentAttempt, EnrollmentCode, Patient, table_of


def issue_code(
    *,
    session: Session,
    code_hash: str,
    role: str,
    now: datetime,
    expires_at: datetime,
    patient_id: int | None = None,
    physician_id: int | None = None,
) -> EnrollmentCode:
    """Stores a new code's hash and revokes any earlier unused code of the same person."""
    revoke = update(EnrollmentCode).where(
        col(EnrollmentCode.used_at).is_(None), col(EnrollmentCode.revoked_at).is_(None)
    )
    if patient_id is not None:
        revoke = revoke.where(col(EnrollmentCode.patient_id) == patient_id)
    else:
        revoke = revoke.where(col(EnrollmentCode.physician_id) == physician_id)
    session.execute(revoke.values(revoked_at=now))
    code = EnrollmentCode(
        code_hash=code_hash,
        role=role,
        patient_id=patient_id,
        physician_id=physician_id,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(code)
    session.flush()
    return code


def claim_code(*, session: Session, code_hash: str, now: datetime) -> EnrollmentCode | None:
    """Marks a valid code used and returns it; None if unknown, used, revoked or expired.

    The conditional UPDATE makes the claim atomic: two accounts racing for one code,
    or one update delivered twice, cannot both win.
    """
    result = session.execute(
        update(EnrollmentCode)
        .where(
            col(EnrollmentCode.code_hash) == code_hash,
            col(EnrollmentCode.used_at).is_(None),
            col(EnrollmentCode.revoked_at).is_(None),
            col(EnrollmentCode.expires_at) > now,
        )
        .values(used_at=now)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return session.exec(select(EnrollmentCode).where(EnrollmentCode.code_hash == code_hash)).first()


def reserve_attempt(
    *, session: Session, account_hash: str, now: datetime, since: datetime, limit: int
) -> int | None:
    """Counts one code entry of an account against its limit in a single statement: records it
    and returns its id only while the account has fewer than `limit` entries since `since`;
    None when it has reached the limit. On PostgreSQL the account's entries are first locked
    for the transaction, so two processes cannot both take the last one."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:account))"), {"account": account_hash}
        )
    attempts = table_of(EnrollmentAttempt)
    recent = (
        select(func.count())
        .select_from(EnrollmentAttempt)
        .where(
            col(EnrollmentAttempt.account_hash) == account_hash,
            col(EnrollmentAttempt.attempted_at) >= since,
        )
        .scalar_subquery()
    )
    statement = (
        insert(attempts)
        .from_select(
            ["account_hash", "attempted_at"],
            select(literal(account_hash, String()), literal(now, UTCDateTime())).where(
                recent < limit
            ),
        )
        .returning(attempts.c.id)
    )
    reserved = session.execute(statement).scalar()
    return None if reserved is None else int(reserved)


def release_attempt(*, session: Session, attempt_id: int) -> None:
    """Takes back a reserved entry: the code was right, so it was no failure."""
    session.execute(delete(EnrollmentAttempt).where(col(EnrollmentAttempt.id) == attempt_id))


def record_failed_attempt(*, session: Session, account_hash: str, now: datetime) -> None:
    """Remembers one wrong code entry for rate limiting."""
    session.add(EnrollmentAttempt(account_hash=account_hash, attempted_at=now))
    session.flush()


def unlink_physician(*, session: Session, physician_id: int) -> bool:
    """Removes the link between a physician and their Telegram account; False if none."""
    result = session.execute(delete(ChatLink).where(col(ChatLink.physician_id) == physician_id))
    return bool(getattr(result, "rowcount", 0))


def revoke_physician_codes(*, session: Session, physician_id: int, now: datetime) -> None:
    """Revokes a physician's unused enrollment codes, so none can link an account again."""
    session.execute(
        update(EnrollmentCode)
        .where(
            col(EnrollmentCode.physician_id) == physician_id,
            col(EnrollmentCode.used_at).is_(None),
            col(EnrollmentCode.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )


def forget_failed_attempts(*, session: Session, account_hash: str) -> None:
    """Drops an account's wrong code entries (its owner asked for their data to be deleted)."""
    session.execute(
        delete(EnrollmentAttempt).where(col(EnrollmentAttempt.account_hash) == account_hash)
    )


def count_failed_attempts(*, session: Session, account_hash: str, since: datetime) -> int:
    """Wrong code entries of one account since a moment."""
    total = session.exec(
        select(func.count())
        .select_from(EnrollmentAttempt)
        .where(
            EnrollmentAttempt.account_hash == account_hash,
            col(EnrollmentAttempt.attempted_at) >= since,
        )
    ).one()
    return int(total)


def purge_attempts(*, session: Session, before: datetime) -> None:
    """Forgets failed attempts older than the rate-limit window."""
    from sqlalchemy import delete

    session.execute(delete(EnrollmentAttempt).where(col(EnrollmentAttempt.attempted_at) < before))


_LINK_OF_USER = select(ChatLink).where(
    col(ChatLink.telegram_user_id) == bindparam("telegram_user_id")
)


def get_link_by_user(*, session: Session, telegram_user_id: int) -> ChatLink | None:
    """The chat link of a Telegram account, or None if the account is not linked."""
    return session.exec(_LINK_OF_USER, params={"telegram_user_id": telegram_user_id}).first()


def get_link_for_patient(*, session: Session, patient_id: int) -> ChatLink | None:
    """Where to reach a patient, or None when they are not linked."""
    return session.exec(select(ChatLink).where(ChatLink.patient_id == patient_id)).first()


def get_link_for_physician(*, session: Session, physician_id: int) -> ChatLink | None:
    """Where to reach a physician, or None when they are not linked."""
    return session.exec(select(ChatLink).where(ChatLink.physician_id == physician_id)).first()


def create_link(
    *,
    session: Session,
    telegram_user_id: int,
    chat_id: int,
    now: datetime,
    patient_id: int | None = None,
    physician_id: int | None = None,
) -> ChatLink:
    """Links a Telegram account to one patient or one physician; a patient's next check is
    worked out again by the next tick."""
    if patient_id is not None:
        patients = table_of(Patient)
        session.execute(
            update(patients).where(patients.c.id == patient_id).values(next_check_at=None)
        )
        sync_cached(session, Patient, patient_id, next_check_at=None)
    link = ChatLink(
        telegram_user_id=telegram_user_id,
        chat_id=chat_id,
        patient_id=patient_id,
        physician_id=physician_id,
        linked_at=now,
    )
    session.add(link)
    session.flush()
    return link


def delete_link_for_patient(*, session: Session, patient_id: int) -> None:
    """Removes the patient's Telegram link (used when they ask for their data to be deleted)."""
    link = get_link_for_patient(session=session, patient_id=patient_id)
    if link is not None:
        session.delete(link)
        session.flush()


def delete_link_for_physician(*, session: Session, physician_id: int) -> None:
    """Removes the physician's Telegram link (when a fresh code links another account)."""
    link = get_link_for_physician(session=session, physician_id=physician_id)
    if link is not None:
        session.delete(link)
        session.flush()
