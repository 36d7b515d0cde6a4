"""Telegram updates already handled: a redelivered update (same update_id) is acted on once."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from bot.context import AppContext
from bot.services import scheduling
from storage import updates

KEEP_FOR: Final = timedelta(days=2)
"""Telegram keeps an unconfirmed update for at most 24 hours; ids older than this are dropped."""
PURGE_EVERY: Final = 500


def claim_update(
    ctx: AppContext,
    *,
    update_id: int,
    message_key: str | None = None,
    contact_from: int | None = None,
) -> bool:
    """True the first time an update id (and the message or press it carries, `message_key`)
    is seen (handle it), False for a redelivery (skip).

    `contact_from` is the Telegram account that wrote or pressed: a patient it belongs to who
    was marked unreachable gets scheduled messages again, in the same unit of work.
    """
    now = ctx.clock.now()
    with ctx.session() as session:
        claimed = updates.claim_update(
            session=session, update_id=update_id, now=now, message_key=message_key
        )
        if claimed and update_id % PURGE_EVERY == 0:
            updates.forget_updates(session=session, before=now - KEEP_FOR)
        if claimed and contact_from is not None:
            scheduling.restore_contact_in(session, telegram_user_id=contact_from, now=now)
        return claimed
