"""Small helpers every handler module shares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from telegram import Update

from bot.context import WouldWait, first_unit_at_once

P = ParamSpec("P")
R = TypeVar("R")


async def call(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Runs a synchronous service in a worker thread, keeping the event loop responsive."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def call_brief(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Runs a short service (one press or message: a few statements, no waiting on anything
    but the database) on the event loop when its database work can start at once, otherwise
    in a worker thread like `call`.

    On SQLite, with this process's writer queue free and no other process writing, a unit of
    work never waits, so running it here costs the loop less than handing it to a thread: under
    load every hand-over made the two threads trade the interpreter lock on each SQLite call,
    which cost about a third of the bot's processor time per button press (docs/benchmarks.md).
    When the database is taken, the service raises `WouldWait` before it has read or written
    anything and runs again in a thread, where waiting is harmless; on PostgreSQL it always
    does. Charts, imports and other long work go through `call`.
    """
    try:
        with first_unit_at_once():
            return function(*args, **kwargs)
    except WouldWait:
        return await asyncio.to_thread(function, *args, **kwargs)


def user_language(update: Update, default: str = "en") -> str:
    """The language Telegram reports for the user, if we support it (before we know better)."""
    user = update.effective_user
    code = (user.language_code or "") if user else ""
    return "zh" if code.lower().startswith("zh") else ("en" if code else default)
