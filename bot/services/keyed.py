"""Keyed hashes (HMAC-SHA256 under the server secret) of Telegram accounts.

A copy of the database alone cannot be searched for a known account: without `PSEUDONYM_KEY`
the hashes cannot be recomputed (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from bot.context import AppContext

_ATTEMPT_KEY_FALLBACK: Final = b"spondybot enrollment attempts"


def account_hash(ctx: AppContext, telegram_user_id: int) -> str:
    """A keyed hash of a Telegram user id, for rate limiting without keeping the id."""
    secret = ctx.settings.pseudonym_key
    key = secret.get_secret_value().encode() if secret is not None else _ATTEMPT_KEY_FALLBACK
    return hmac.new(key, str(telegram_user_id).encode(), hashlib.sha256).hexdigest()
