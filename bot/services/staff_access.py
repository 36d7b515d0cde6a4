"""Taking staff access away: unlink a physician's Telegram account, deactivate a physician,
remove admin rights. Each change is written to the audit trail in the same transaction.

Access is checked from the database on every update (`bot.services.physician_panel.viewer_of`), so a
revoked account's next command or button is refused at once, in every process. These services
are what every front door calls: the command line (`spondybot physician …`) and the clinic web
app's staff page.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from bot.context import AppContext
from bot.services.staff import StaffError
from storage import audit, enrollment, physicians, staff_accounts
from storage.models import Physician, Role


@dataclass(frozen=True)
class AccessChange:
    """What a change did: `changed` is False when there was nothing to take away."""

    physician_id: int
    action: str
    changed: bool


def _physician(session: Session, physician_id: int) -> Physician:
    physician = physicians.get_physician(session=session, physician_id=physician_id)
    if physician is None:
        raise StaffError(f"no physician with id {physician_id}")
    return physician


def _audit(
    ctx: AppContext, session: Session, physician_id: int, action: str, actor: str, **after: object
) -> None:
    audit.record_event(
        session=session,
        at=ctx.clock.now(),
        actor=actor,
        entity="physician",
        entity_id=physician_id,
        action=action,
        after=dict(after) or None,
    )


def unlink_account(ctx: AppContext, *, physician_id: int, actor: str) -> AccessChange:
    """Removes the link to the physician's Telegram account (a lost phone, a shared account):
    that account is from now on treated as unknown. A new code links another account."""
    with ctx.session() as session:
        _physician(session, physician_id)
        changed = enrollment.unlink_physician(session=session, physician_id=physician_id)
        if changed:
            _audit(ctx, session, physician_id, "unlink_account", actor)
    return AccessChange(physician_id, "unlink_account", changed)


def deactivate(ctx: AppContext, *, physician_id: int, actor: str) -> AccessChange:
    """A physician who left: their Telegram account is unlinked, their unused codes revoked,
    their clinic web app account deactivated and signed out, no digest or alert goes to them,
    and no new code can be issued. Their patients keep being followed
    (questionnaires, reminders, lab values) and are shown to admins as needing a new
    physician."""
    now = ctx.clock.now()
    with ctx.session() as session:
        _physician(session, physician_id)
        changed = physicians.deactivate_physician(
            session=session, physician_id=physician_id, now=now
        )
        enrollment.unlink_physician(session=session, physician_id=physician_id)
        enrollment.revoke_physician_codes(session=session, physician_id=physician_id, now=now)
        # Their clinic web app account reads the same patients: it goes with them.
        closed = 0
        for account in staff_accounts.list_accounts(session=session):
            if account.physician_id == physician_id and account.active and account.id is not None:
                account.active = False
                account.deactivated_at = now
                staff_accounts.save_account(session=session, account=account)
                staff_accounts.revoke_web_sessions(session=session, account_id=account.id, now=now)
                closed += 1
        if changed or closed:
            followed = physicians.count_followed_patients(
                session=session, physician_id=physician_id
            )
            extra = {"web_accounts": closed} if closed else {}
            _audit(ctx, session, physician_id, "deactivate", actor, patients=followed, **extra)
    return AccessChange(physician_id, "deactivate", changed)


def remove_admin(ctx: AppContext, *, physician_id: int, actor: str) -> AccessChange:
    """Takes clinic-admin rights away: the physician sees only their own patients again."""
    with ctx.session() as session:
        _physician(session, physician_id)
        before = physicians.set_role(
            session=session, physician_id=physician_id, role=Role.PHYSICIAN.value
        )
        changed = before == Role.ADMIN.value
        if changed:
            _audit(ctx, session, physician_id, "remove_admin", actor, role=Role.PHYSICIAN.value)
    return AccessChange(physician_id, "remove_admin", changed)


@dataclass(frozen=True)
class PhysicianAccess:
    """What access a physician record has now, for the admin's staff page."""

    physician_id: int
    display_name: str
    admin: bool
    telegram_linked: bool
    deactivated: bool
    patients: int
    """Patients they follow (not deleted); when deactivated, all of them need a new physician."""

    @property
    def patients_needing_physician(self) -> int:
        return self.patients if self.deactivated else 0


def list_access(ctx: AppContext) -> tuple[PhysicianAccess, ...]:
    """Every physician record with its Telegram link, admin right and state, oldest first."""
    with ctx.session() as session:
        rows = []
        for physician in physicians.list_physicians(session=session):
            assert physician.id is not None
            link = enrollment.get_link_for_physician(session=session, physician_id=physician.id)
            rows.append(
                PhysicianAccess(
                    physician_id=physician.id,
                    display_name=physician.display_name,
                    admin=physician.role == Role.ADMIN.value,
                    telegram_linked=link is not None,
                    deactivated=physician.deactivated_at is not None,
                    patients=physicians.count_followed_patients(
                        session=session, physician_id=physician.id
                    ),
                )
            )
        return tuple(rows)
