"""Clinic web app accounts, their password links, sessions, sign-in failures and role policies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import (
    LoginFailure,
    NurseAssignment,
    PasswordLink,
    RolePolicy,
    StaffAccount,
    WebSession,
)


class DuplicateEmail(Exception):
    """An account with this e-mail address exists already."""


def create_account(
    *,
    session: Session,
    email: str,
    role: str,
    language: str,
    now: datetime,
    physician_id: int | None = None,
) -> StaffAccount:
    """Adds an account without a password (it is set through a one-time link)."""
    account = StaffAccount(
        email=email, role=role, language=language, physician_id=physician_id, created_at=now
    )
    try:
        with session.begin_nested():
            session.add(account)
            session.flush()
    except IntegrityError:
        raise DuplicateEmail(email) from None
    return account


def get_account(*, session: Session, account_id: int) -> StaffAccount | None:
    """The account with this id, or None."""
    return session.get(StaffAccount, account_id)


def get_account_by_email(*, session: Session, email: str) -> StaffAccount | None:
    """The account with this (already lower-cased) e-mail address, or None."""
    return session.exec(select(StaffAccount).where(StaffAccount.email == email)).first()


def list_accounts(*, session: Session) -> list[StaffAccount]:
    """Every account, active or not, oldest first."""
    return list(session.exec(select(StaffAccount).order_by(col(StaffAccount.id))))


def save_account(*, session: Session, account: StaffAccount) -> None:
    """Writes changes made to an account loaded in this session."""
    session.add(account)
    session.flush()


def set_assignments(*, session: Session, account_id: int, physician_ids: Sequence[int]) -> None:
    """Replaces the physicians a nurse works for."""
    session.execute(delete(NurseAssignment).where(col(NurseAssignment.account_id) == account_id))
    for physician_id in sorted(set(physician_ids)):
        session.add(NurseAssignment(account_id=account_id, physician_id=physician_id))
    session.flush()


def assigned_physicians(*, session: Session, account_id: int) -> list[int]:
    """The physicians a nurse works for, by id."""
    query = (
        select(NurseAssignment.physician_id)
        .where(NurseAssignment.account_id == account_id)
        .order_by(col(NurseAssignment.physician_id))
    )
    return list(session.exec(query))


def add_password_link(
    *, session: Session, account_id: int, token_hash: str, now: datetime, expires_at: datetime
) -> None:
    """Stores a new one-time link; earlier unused links of the account stop working."""
    session.execute(
        update(PasswordLink)
        .where(col(PasswordLink.account_id) == account_id, col(PasswordLink.used_at).is_(None))
        .values(used_at=now)
    )
    session.add(
        PasswordLink(
            account_id=account_id, token_hash=token_hash, created_at=now, expires_at=expires_at
        )
    )
    session.flush()


def use_password_link(*, session: Session, token_hash: str, now: datetime) -> int | None:
    """Marks an unused, unexpired link as used and returns its account id; None otherwise.

    A conditional UPDATE, so a link clicked twice at once is honoured only once."""
    link = session.exec(select(PasswordLink).where(PasswordLink.token_hash == token_hash)).first()
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    claimed = session.execute(
        update(PasswordLink)
        .where(col(PasswordLink.id) == link.id, col(PasswordLink.used_at).is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return link.account_id


def password_link_is_open(*, session: Session, token_hash: str, now: datetime) -> bool:
    """Whether this link can still set a password."""
    link = session.exec(select(PasswordLink).where(PasswordLink.token_hash == token_hash)).first()
    return link is not None and link.used_at is None and link.expires_at > now


def account_of_password_link(*, session: Session, token_hash: str) -> StaffAccount | None:
    """The account a set-password link belongs to, used or not; None for an unknown link."""
    link = session.exec(select(PasswordLink).where(PasswordLink.token_hash == token_hash)).first()
    return None if link is None else session.get(StaffAccount, link.account_id)


def create_web_session(
    *,
    session: Session,
    token_hash: str,
    account_id: int,
    stage: str,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
) -> WebSession:
    """Records a signed-in browser."""
    row = WebSession(
        token_hash=token_hash,
        account_id=account_id,
        stage=stage,
        csrf_token=csrf_token,
        created_at=now,
        last_seen_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row


def get_web_session(*, session: Session, token_hash: str) -> WebSession | None:
    """The session whose cookie token has this hash, or None."""
    return session.exec(select(WebSession).where(WebSession.token_hash == token_hash)).first()


def save_web_session(*, session: Session, row: WebSession) -> None:
    """Writes changes made to a session loaded in this session."""
    session.add(row)
    session.flush()


def revoke_web_sessions(*, session: Session, account_id: int, now: datetime) -> int:
    """Ends every open session of an account; returns how many were open."""
    result = session.execute(
        update(WebSession)
        .where(col(WebSession.account_id) == account_id, col(WebSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def count_open_sessions(*, session: Session, account_id: int, now: datetime) -> int:
    """Sessions of an account that are neither revoked nor past their absolute timeout."""
    query = select(func.count()).where(
        WebSession.account_id == account_id,
        col(WebSession.revoked_at).is_(None),
        WebSession.expires_at > now,
    )
    return int(session.exec(query).one())


def record_login_failure(*, session: Session, key_hashes: Sequence[str], now: datetime) -> None:
    """Counts one failed sign-in against each key (the account and the address)."""
    for key_hash in key_hashes:
        session.add(LoginFailure(key_hash=key_hash, at=now))
    session.flush()


def count_login_failures(*, session: Session, key_hash: str, since: datetime) -> int:
    """Failed sign-ins under this key since an instant."""
    query = select(func.count()).where(LoginFailure.key_hash == key_hash, LoginFailure.at >= since)
    return int(session.exec(query).one())


def clear_login_failures(*, session: Session, key_hash: str) -> None:
    """Forgets an account's failures once it signs in."""
    session.execute(delete(LoginFailure).where(col(LoginFailure.key_hash) == key_hash))


def totp_required(*, session: Session, role: str) -> bool:
    """Whether an admin requires a TOTP second factor of this role."""
    policy = session.get(RolePolicy, role)
    return policy is not None and policy.totp_required


def set_totp_required(*, session: Session, role: str, required: bool) -> None:
    """Sets whether every account of a role must use a TOTP second factor."""
    policy = session.get(RolePolicy, role) or RolePolicy(role=role)
    policy.totp_required = required
    session.add(policy)
    session.flush()


def roles_requiring_totp(*, session: Session) -> list[str]:
    """Roles for which an admin requires a second factor."""
    query = select(RolePolicy.role).where(col(RolePolicy.totp_required).is_(True))
    return list(session.exec(query))
