"""Small helpers every handler module shares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from telegram import Update

from bot.config import SUPPORTED_LANGUAGES
from bot.context import AppContext

P = ParamSpec("P")
R = TypeVar("R")


async def call(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Runs a synchronous service in a worker thread, keeping the event loop responsive."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def call_brief(
    function: Callable[Concatenate[AppContext, P], R],
    ctx: AppContext,
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Runs a short service (one press or message: a few statements, no waiting on anything
    but the database) without a thread when it can (`AppContext.run_brief`), else like `call`.
    Charts, imports and other long work go through `call`."""
    return await ctx.run_brief(function, ctx, *args, **kwargs)


def user_language(update: Update, default: str = "en") -> str:
    """The language Telegram reports for the user, if we support it (before we know better)."""
    user = update.effective_user
    code = (user.language_code or "") if user else ""
    if not code:
        return default
    primary = code.lower().split("-")[0]
    return primary if primary in SUPPORTED_LANGUAGES else "en"
