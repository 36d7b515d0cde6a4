"""Clinic web app accounts: creation, passwords, sign-in with throttling, TOTP, sessions.

Everything here lives in the database, so any number of web processes share sign-ins,
throttling and revocations. Passwords are kept only as Argon2 hashes (argon2-cffi), session
and set-password tokens only as SHA-256 hashes; a stolen database opens no account.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cache
from typing import Final

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session

from bot.context import AppContext
from storage import physicians, staff_accounts
from storage.models import SessionStage as SessionStage  # re-exported: the web knows no storage
from storage.models import StaffAccount, WebSession
from storage.models import StaffRole as StaffRole

THROTTLE_WINDOW: Final = timedelta(minutes=15)
"""Failed sign-ins count against an account and an address for this long."""

MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 256
TOTP_ISSUER: Final = "spondybot"
_FAILURE_KEY_FALLBACK = b"spondybot-login-throttle"


class AccountError(ValueError):
    """A request about accounts that cannot be carried out; `code` names why for the page."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


class Area(StrEnum):
    """The parts of the clinic web app; each role opens only some (`may_open`)."""

    PATIENTS = "patients"
    LABS = "labs"
    ENROLL = "enroll"
    DIGESTS = "digests"
    EXPORTS = "exports"
    STAFF = "staff"
    AUDIT = "audit"


_AREAS_OF_ROLE: Final[dict[StaffRole, frozenset[Area]]] = {
    StaffRole.ADMIN: frozenset(Area),
    StaffRole.PHYSICIAN: frozenset({Area.PATIENTS, Area.LABS, Area.ENROLL, Area.DIGESTS}),
    StaffRole.NURSE: frozenset({Area.LABS, Area.ENROLL}),
    StaffRole.RESEARCHER: frozenset({Area.EXPORTS}),
}
"""Who opens what: the one place the web app's permissions are written down (docs/web.md)."""


@dataclass(frozen=True)
class Principal:
    """The person behind a request, as their session and account say right now."""

    account_id: int
    session_id: int
    email: str
    role: StaffRole
    language: str
    physician_id: int | None
    assigned_physician_ids: tuple[int, ...]
    stage: SessionStage
    csrf_token: str

    @property
    def actor(self) -> str:
        """How this person appears in the audit trail and as `entered_by`."""
        return f"staff:{self.account_id}"

    def may_open(self, area: Area) -> bool:
        """Whether this person's role opens an area of the app (signed in fully)."""
        return self.stage is SessionStage.FULL and area in _AREAS_OF_ROLE[self.role]

    @property
    def physicians_served(self) -> frozenset[int] | None:
        """The physicians whose patients this account enrolls and enters lab values for:
        None means every physician (admin); a physician serves themself, a nurse the
        physicians they are assigned to, a researcher nobody."""
        if self.role is StaffRole.ADMIN:
            return None
        if self.role is StaffRole.PHYSICIAN and self.physician_id is not None:
            return frozenset({self.physician_id})
        if self.role is StaffRole.NURSE:
            return frozenset(self.assigned_physician_ids)
        return frozenset()

    @property
    def areas(self) -> tuple[Area, ...]:
        """The areas to show in this person's menu, in menu order."""
        return tuple(area for area in Area if self.may_open(area))


@dataclass(frozen=True)
class AccountCreated:
    account_id: int
    email: str
    role: StaffRole
    password_link: str


@dataclass(frozen=True)
class AccountRow:
    """One account as the staff page lists it."""

    account_id: int
    email: str
    role: StaffRole
    language: str
    physician_id: int | None
    assigned_physician_ids: tuple[int, ...]
    active: bool
    has_password: bool
    has_totp: bool
    open_sessions: int


class SignIn(StrEnum):
    """What a sign-in attempt led to."""

    SIGNED_IN = "signed_in"
    SECOND_FACTOR = "second_factor"
    SETUP_SECOND_FACTOR = "setup_second_factor"
    REFUSED = "refused"  # wrong e-mail or password, or account inactive: never said which
    THROTTLED = "throttled"


@dataclass(frozen=True)
class SignInResult:
    outcome: SignIn
    session_token: str | None = None


@dataclass(frozen=True)
class TotpSetup:
    """A fresh TOTP secret to show once, as text and as an otpauth:// URI for a QR code."""

    secret: str
    uri: str


@cache
def _hasher() -> PasswordHasher:
    """Argon2id with argon2-cffi's recommended parameters (RFC 9106 low-memory profile)."""
    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the account does not exist, so timing tells nothing."""
    return _hasher().hash(secrets.token_urlsafe(16))


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _failure_key(ctx: AppContext, kind: str, value: str) -> str:
    """A keyed hash naming an account or address in the throttling table."""
    secret = ctx.settings.pseudonym_key
    key = secret.get_secret_value().encode() if secret is not None else _FAILURE_KEY_FALLBACK
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def normalise_email(email: str) -> str:
    """E-mail addresses compare without case or surrounding spaces."""
    return email.strip().lower()


def _check_email(email: str) -> str:
    address = normalise_email(email)
    local, at, domain = address.partition("@")
    if not (local and at and "." in domain) or len(address) > 320 or " " in address:
        raise AccountError("bad_email", "--email must be an e-mail address")
    return address


def _check_role(role: str) -> StaffRole:
    try:
        return StaffRole(role)
    except ValueError:
        names = ", ".join(r.value for r in StaffRole)
        raise AccountError("bad_role", f"--role must be one of {names}") from None


def _password_link(ctx: AppContext, session: Session, account_id: int) -> str:
    now = ctx.clock.now()
    token = secrets.token_urlsafe(32)
    staff_accounts.add_password_link(
        session=session,
        account_id=account_id,
        token_hash=_sha256(token),
        now=now,
        expires_at=now + timedelta(hours=ctx.settings.web_password_link_hours),
    )
    return f"{ctx.settings.web_base_url}/password/{token}"


def _check_physicians(session: Session, physician_ids: tuple[int, ...]) -> None:
    for physician_id in physician_ids:
        if physicians.get_physician(session=session, physician_id=physician_id) is None:
            raise AccountError("no_physician", f"no physician with id {physician_id}")


def create_account(
    ctx: AppContext,
    *,
    email: str,
    role: str,
    language: str | None = None,
    physician_id: int | None = None,
    assigned_physician_ids: tuple[int, ...] = (),
) -> AccountCreated:
    """Creates an account and returns its one-time set-password link.

    A physician's account names the physician record whose patients it follows; a nurse's
    names the physicians the nurse works for. Other roles take neither.
    """
    address = _check_email(email)
    staff_role = _check_role(role)
    lang = language or ctx.settings.clinic_language
    if lang not in ctx.settings.languages:
        raise AccountError(
            "bad_language", f"--language must be one of {', '.join(ctx.settings.languages)}"
        )
    if staff_role is StaffRole.PHYSICIAN and physician_id is None:
        raise AccountError("needs_physician", "--physician is required for a physician account")
    if staff_role is not StaffRole.PHYSICIAN and physician_id is not None:
        raise AccountError("physician_only", "--physician is only for physician accounts")
    if staff_role is not StaffRole.NURSE and assigned_physician_ids:
        raise AccountError("nurse_only", "--assign is only for nurse accounts")
    with ctx.session() as session:
        _check_physicians(
            session, (*assigned_physician_ids, *([physician_id] if physician_id else []))
        )
        try:
            account = staff_accounts.create_account(
                session=session,
                email=address,
                role=staff_role.value,
                language=lang,
                now=ctx.clock.now(),
                physician_id=physician_id,
            )
        except staff_accounts.DuplicateEmail:
            raise AccountError(
                "duplicate_email", f"an account for {address} exists already"
            ) from None
        assert account.id is not None
        if assigned_physician_ids:
            staff_accounts.set_assignments(
                session=session, account_id=account.id, physician_ids=assigned_physician_ids
            )
        link = _password_link(ctx, session, account.id)
        return AccountCreated(account.id, address, staff_role, link)


def new_password_link(ctx: AppContext, *, account_id: int) -> str:
    """A fresh set-password link for an active account; earlier links stop working."""
    with ctx.session() as session:
        account = staff_accounts.get_account(session=session, account_id=account_id)
        if account is None or not account.active:
            raise AccountError("no_account", f"no active account with id {account_id}")
        return _password_link(ctx, session, account_id)


def password_link_is_open(ctx: AppContext, *, token: str) -> bool:
    """Whether a set-password link can still be used (shown before the form)."""
    with ctx.session() as session:
        return staff_accounts.password_link_is_open(
            session=session, token_hash=_sha256(token), now=ctx.clock.now()
        )


def check_password_rules(password: str, email: str) -> None:
    """At least 12 characters (NIST SP 800-63B favours length over composition rules), at
    most 256, and not the e-mail address."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError("password_short")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError("password_long")
    if normalise_email(password) == email:
        raise AccountError("password_is_email")


def set_password(ctx: AppContext, *, token: str, password: str) -> None:
    """Sets the password through a one-time link; every open session of the account ends."""
    now = ctx.clock.now()
    with ctx.session() as session:
        if not staff_accounts.password_link_is_open(
            session=session, token_hash=_sha256(token), now=now
        ):
            raise AccountError("link_used")
        link_account = _account_of_link(session, token)
        if link_account is None or not link_account.active:
            raise AccountError("link_used")
        check_password_rules(password, link_account.email)
        account_id = staff_accounts.use_password_link(
            session=session, token_hash=_sha256(token), now=now
        )
        if account_id is None:
            raise AccountError("link_used")
        link_account.password_hash = _hasher().hash(password)
        staff_accounts.save_account(session=session, account=link_account)
        staff_accounts.revoke_web_sessions(session=session, account_id=account_id, now=now)


def _account_of_link(session: Session, token: str) -> StaffAccount | None:
    return staff_accounts.account_of_password_link(session=session, token_hash=_sha256(token))


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(password_hash or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def sign_in(ctx: AppContext, *, email: str, password: str, address: str) -> SignInResult:
    """Checks e-mail and password, throttled per account and per address.

    Past `WEB_LOGIN_MAX_FAILURES` failures of the account, or
    `WEB_LOGIN_MAX_FAILURES_PER_ADDRESS` from the address, within 15 minutes, the password is
    not even checked. A wrong e-mail, a wrong password and an inactive account get the same
    answer. A right password opens a session, which still needs the second factor when the
    account has one or its role requires one.
    """
    now = ctx.clock.now()
    address_key = _failure_key(ctx, "address", address)
    account_key = _failure_key(ctx, "account", normalise_email(email))
    settings = ctx.settings
    with ctx.session() as session:
        since = now - THROTTLE_WINDOW
        if (
            staff_accounts.count_login_failures(session=session, key_hash=account_key, since=since)
            >= settings.web_login_max_failures
            or staff_accounts.count_login_failures(
                session=session, key_hash=address_key, since=since
            )
            >= settings.web_login_max_failures_per_address
        ):
            return SignInResult(SignIn.THROTTLED)
        account = staff_accounts.get_account_by_email(session=session, email=normalise_email(email))
        usable = account is not None and account.active and account.password_hash is not None
        right = _verify(account.password_hash if usable and account else None, password)
        if not (usable and right) or account is None or account.id is None:
            staff_accounts.record_login_failure(
                session=session, key_hashes=(account_key, address_key), now=now
            )
            return SignInResult(SignIn.REFUSED)
        assert account.password_hash is not None
        if _hasher().check_needs_rehash(account.password_hash):
            account.password_hash = _hasher().hash(password)
            staff_accounts.save_account(session=session, account=account)
        staff_accounts.clear_login_failures(session=session, key_hash=account_key)
        if account.totp_secret is not None:
            stage = SessionStage.SECOND_FACTOR
        elif staff_accounts.totp_required(session=session, role=account.role):
            stage = SessionStage.SETUP_SECOND_FACTOR
        else:
            stage = SessionStage.FULL
        token = secrets.token_urlsafe(32)
        staff_accounts.create_web_session(
            session=session,
            token_hash=_sha256(token),
            account_id=account.id,
            stage=stage.value,
            csrf_token=secrets.token_urlsafe(32),
            now=now,
            expires_at=now + timedelta(hours=settings.web_session_max_hours),
        )
        outcome = {
            SessionStage.FULL: SignIn.SIGNED_IN,
            SessionStage.SECOND_FACTOR: SignIn.SECOND_FACTOR,
            SessionStage.SETUP_SECOND_FACTOR: SignIn.SETUP_SECOND_FACTOR,
        }[stage]
        return SignInResult(outcome, token)


def _live_session(ctx: AppContext, session: Session, token: str) -> WebSession | None:
    """The session of a cookie token if it is neither revoked, idle too long nor too old."""
    now = ctx.clock.now()
    row = staff_accounts.get_web_session(session=session, token_hash=_sha256(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at >= timedelta(minutes=ctx.settings.web_session_idle_minutes):
        row.revoked_at = now
        staff_accounts.save_web_session(session=session, row=row)
        return None
    return row


def authenticate(ctx: AppContext, *, token: str) -> Principal | None:
    """The person a session cookie belongs to, or None when the session is over (revoked,
    idle for `WEB_SESSION_IDLE_MINUTES`, older than `WEB_SESSION_MAX_HOURS`) or the account
    was deactivated. Each request counts as activity."""
    if not token:
        return None
    with ctx.session() as session:
        row = _live_session(ctx, session, token)
        if row is None or row.id is None:
            return None
        account = staff_accounts.get_account(session=session, account_id=row.account_id)
        if account is None or not account.active or account.id is None:
            return None
        row.last_seen_at = ctx.clock.now()
        staff_accounts.save_web_session(session=session, row=row)
        assigned = (
            staff_accounts.assigned_physicians(session=session, account_id=account.id)
            if account.role == StaffRole.NURSE.value
            else []
        )
        return Principal(
            account_id=account.id,
            session_id=row.id,
            email=account.email,
            role=StaffRole(account.role),
            language=account.language,
            physician_id=account.physician_id,
            assigned_physician_ids=tuple(assigned),
            stage=SessionStage(row.stage),
            csrf_token=row.csrf_token,
        )


def sign_out(ctx: AppContext, *, token: str) -> None:
    """Ends the session of this cookie token (a second sign-out changes nothing)."""
    with ctx.session() as session:
        row = staff_accounts.get_web_session(session=session, token_hash=_sha256(token))
        if row is not None and row.revoked_at is None:
            row.revoked_at = ctx.clock.now()
            staff_accounts.save_web_session(session=session, row=row)


def _throttled(ctx: AppContext, session: Session, key: str) -> bool:
    since = ctx.clock.now() - THROTTLE_WINDOW
    count = staff_accounts.count_login_failures(session=session, key_hash=key, since=since)
    return count >= ctx.settings.web_login_max_failures


def verify_second_factor(ctx: AppContext, *, token: str, code: str) -> SignIn:
    """Checks the TOTP code of a session waiting for it; throttled like the password."""
    now = ctx.clock.now()
    with ctx.session() as session:
        row = _live_session(ctx, session, token)
        if row is None or row.stage != SessionStage.SECOND_FACTOR.value:
            return SignIn.REFUSED
        account = staff_accounts.get_account(session=session, account_id=row.account_id)
        if account is None or not account.active or account.totp_secret is None:
            return SignIn.REFUSED
        key = _failure_key(ctx, "account", account.email)
        if _throttled(ctx, session, key):
            return SignIn.THROTTLED
        if not pyotp.TOTP(account.totp_secret).verify(code.strip(), for_time=now, valid_window=1):
            staff_accounts.record_login_failure(session=session, key_hashes=(key,), now=now)
            return SignIn.REFUSED
        row.stage = SessionStage.FULL.value
        staff_accounts.save_web_session(session=session, row=row)
        return SignIn.SIGNED_IN


def begin_totp_setup(ctx: AppContext, *, token: str) -> TotpSetup | None:
    """A new secret for the signed-in account to scan; kept on the session until confirmed."""
    with ctx.session() as session:
        row = _live_session(ctx, session, token)
        if row is None or row.stage == SessionStage.SECOND_FACTOR.value:
            return None
        account = staff_accounts.get_account(session=session, account_id=row.account_id)
        if account is None:
            return None
        secret = row.pending_totp_secret or pyotp.random_base32()
        row.pending_totp_secret = secret
        staff_accounts.save_web_session(session=session, row=row)
        uri = pyotp.TOTP(secret).provisioning_uri(name=account.email, issuer_name=TOTP_ISSUER)
        return TotpSetup(secret=secret, uri=uri)


def confirm_totp_setup(ctx: AppContext, *, token: str, code: str) -> bool:
    """Turns the second factor on once the person proves their app shows the right code."""
    now = ctx.clock.now()
    with ctx.session() as session:
        row = _live_session(ctx, session, token)
        if row is None or row.pending_totp_secret is None:
            return False
        if row.stage == SessionStage.SECOND_FACTOR.value:
            return False
        if not pyotp.TOTP(row.pending_totp_secret).verify(
            code.strip(), for_time=now, valid_window=1
        ):
            return False
        account = staff_accounts.get_account(session=session, account_id=row.account_id)
        if account is None:
            return False
        account.totp_secret = row.pending_totp_secret
        staff_accounts.save_account(session=session, account=account)
        row.pending_totp_secret = None
        row.stage = SessionStage.FULL.value
        staff_accounts.save_web_session(session=session, row=row)
        return True


def list_accounts(ctx: AppContext) -> list[AccountRow]:
    """Every account for the staff page and `spondybot staff list`."""
    now = ctx.clock.now()
    with ctx.session() as session:
        rows = []
        for account in staff_accounts.list_accounts(session=session):
            assert account.id is not None
            rows.append(
                AccountRow(
                    account_id=account.id,
                    email=account.email,
                    role=StaffRole(account.role),
                    language=account.language,
                    physician_id=account.physician_id,
                    assigned_physician_ids=tuple(
                        staff_accounts.assigned_physicians(session=session, account_id=account.id)
                    ),
                    active=account.active,
                    has_password=account.password_hash is not None,
                    has_totp=account.totp_secret is not None,
                    open_sessions=staff_accounts.count_open_sessions(
                        session=session, account_id=account.id, now=now
                    ),
                )
            )
        return rows


def deactivate(ctx: AppContext, *, account_id: int) -> None:
    """Deactivates an account (it is never deleted: the audit trail names it) and ends its
    sessions at once."""
    now = ctx.clock.now()
    with ctx.session() as session:
        account = staff_accounts.get_account(session=session, account_id=account_id)
        if account is None:
            raise AccountError("no_account", f"no account with id {account_id}")
        account.active = False
        account.deactivated_at = account.deactivated_at or now
        staff_accounts.save_account(session=session, account=account)
        staff_accounts.revoke_web_sessions(session=session, account_id=account_id, now=now)


def revoke_sessions(ctx: AppContext, *, account_id: int) -> int:
    """Signs an account out everywhere; returns how many sessions were open."""
    with ctx.session() as session:
        if staff_accounts.get_account(session=session, account_id=account_id) is None:
            raise AccountError("no_account", f"no account with id {account_id}")
        return staff_accounts.revoke_web_sessions(
            session=session, account_id=account_id, now=ctx.clock.now()
        )


def require_totp(ctx: AppContext, *, role: str, required: bool) -> None:
    """Requires (or stops requiring) a TOTP second factor of every account of a role; accounts
    without one set it up at their next sign-in."""
    staff_role = _check_role(role)
    with ctx.session() as session:
        staff_accounts.set_totp_required(session=session, role=staff_role.value, required=required)


def roles_requiring_totp(ctx: AppContext) -> tuple[StaffRole, ...]:
    """Roles whose accounts must use a second factor."""
    with ctx.session() as session:
        return tuple(
            StaffRole(role) for role in staff_accounts.roles_requiring_totp(session=session)
        )


@dataclass(frozen=True)
class PhysicianChoice:
    physician_id: int
    display_name: str


def physician_choices(ctx: AppContext) -> tuple[PhysicianChoice, ...]:
    """The physicians an account can be tied or assigned to, for the staff page's forms."""
    with ctx.session() as session:
        return tuple(
            PhysicianChoice(physician.id, physician.display_name)
            for physician in physicians.list_physicians(session=session)
            if physician.id is not None
        )


def assign_physicians(ctx: AppContext, *, account_id: int, physician_ids: tuple[int, ...]) -> None:
    """Sets the physicians a nurse works for (their patients' enrollment and lab entry); the
    nurse's open sessions see the change on their next request."""
    with ctx.session() as session:
        account = staff_accounts.get_account(session=session, account_id=account_id)
        if account is None:
            raise AccountError("no_account", f"no account with id {account_id}")
        if account.role != StaffRole.NURSE.value:
            raise AccountError("nurse_only", "only nurse accounts work for physicians")
        _check_physicians(session, physician_ids)
        staff_accounts.set_assignments(
            session=session, account_id=account_id, physician_ids=physician_ids
        )
