"""Keyed hashes (HMAC-SHA256 under the server secret, PSEUDONYM_KEY) of Telegram accounts and
enrollment codes.

A copy of the database alone cannot be searched for a known account, nor a code found by trying
all of them offline: without the secret the hashes cannot be recomputed (docs/security.md).
Each use has its own message prefix, so one hash says nothing about another.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from bot.context import AppContext

_CODE_PREFIX: Final = b"spondybot-enrollment-code\x00"


class MissingSecretError(ValueError):
    """PSEUDONYM_KEY is needed and not set."""


def server_key(ctx: AppContext, *, purpose: str) -> bytes:
    """The server secret; raises `MissingSecretError` naming the setting when it is not set."""
    secret = ctx.settings.pseudonym_key
    if secret is None:
        raise MissingSecretError(
            f"setting PSEUDONYM_KEY: required to {purpose} (a secret of at least 16 characters; "
            "see .env.example)"
        )
    return secret.get_secret_value().encode("utf-8")


def account_hash(ctx: AppContext, telegram_user_id: int) -> str:
    """A keyed hash of a Telegram user id, for rate limiting without keeping the id."""
    key = server_key(ctx, purpose="count wrong enrollment codes")
    return hmac.new(key, str(telegram_user_id).encode(), hashlib.sha256).hexdigest()


def code_hash(key: bytes, normalised_code: str) -> str:
    """How an enrollment code is stored: HMAC-SHA256 under the server secret, so the roughly
    50 bits of a code cannot be searched offline in a copy of the database."""
    return hmac.new(key, _CODE_PREFIX + normalised_code.encode(), hashlib.sha256).hexdigest()
