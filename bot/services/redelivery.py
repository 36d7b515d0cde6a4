"""Telegram updates already handled: a redelivered update (same update_id) is acted on once."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from sqlmodel import Session

from bot.context import AppContext, UpdateClaim
from bot.services import scheduling
from storage import processed_updates as updates

KEEP_FOR: Final = timedelta(days=2)
"""Telegram keeps an unconfirmed update for at most 24 hours; ids older than this are dropped."""
PURGE_EVERY: Final = 500


def update_claim(
    ctx: AppContext,
    *,
    update_id: int,
    message_key: str | None = None,
    contact_from: int | None = None,
) -> UpdateClaim:
    """The claim that an update is handled once, to be made in the first unit of work its
    handler opens (see `bot.context.UpdateClaim`).

    Taking it records the update id (and `message_key`, the message or button press the update
    carries) and is refused for a redelivery: the same update id, or the same message or press
    under a new one. `contact_from` is the Telegram account that wrote or pressed: a patient it
    belongs to who was marked unreachable gets scheduled messages again, in the same unit of
    work.
    """

    def take(session: Session) -> bool:
        now = ctx.clock.now()
        claimed = updates.claim_update(
            session=session,
            update_id=update_id,
            now=now,
            message_key=message_key,
            contact_from=contact_from,
        )
        if claimed.first and update_id % PURGE_EVERY == 0:
            updates.forget_updates(session=session, before=now - KEEP_FOR)
        if claimed.contact_unreachable and contact_from is not None:
            scheduling.restore_contact_in(session, telegram_user_id=contact_from, now=now)
        return claimed.first

    return UpdateClaim(take)


def settle_claim(ctx: AppContext) -> None:
    """Commits the pending claim `ctx` carries (`AppContext.claiming`) on its own, for an update
    whose handlers opened no unit of work; raises `RedeliveredUpdate` for a redelivery."""
    with ctx.session():
        pass
