"""Update processing: concurrent across people, in order for each person, fair under a flood.

python-telegram-bot's `concurrent_updates` runs every update at once. A patient whose phone was
offline and who typed "5", "6", "7" gets them delivered in one batch; handled concurrently, the
answers could land on the wrong questions. This processor keeps one lock per user, so each
person's updates run one after another in arrival order while different people proceed in
parallel.

The lock is taken before one of the `max_concurrent_updates` slots: a person's queued updates
wait for their own previous one without holding a slot, so one account sending as fast as it
can holds at most one slot, and other people's updates are not kept waiting behind it. At most
`max_queued_per_user` updates of one person wait; the excess is dropped and the person is told
once to slow down (docs/security.md, "Flooding").

"Once" means once per flood episode: an episode ends only when the person has sent nothing for
`quiet_s` seconds, not when their queue happens to drain. A fast database drains a flooder's
queue between two of Telegram's batches many times a second, and forgetting the notice then
asked the same person again with every batch (up to fifteen times a run on SQLite).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

logger = logging.getLogger(__name__)

UNLIMITED: int = 2**31 - 1
"""The base class's own limit, which it applies outside the per-user lock: not used as one."""
QUIET_S: float = 60.0
"""A person who was asked to slow down is asked again only after this long without an update."""


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Runs updates of the same user (or chat) sequentially, others concurrently, with at most
    `max_concurrent_updates` running and `max_queued_per_user` waiting per person."""

    def __init__(
        self,
        max_concurrent_updates: int,
        *,
        max_queued_per_user: int,
        on_dropped: Callable[[Update], Awaitable[None]] | None = None,
        quiet_s: float = QUIET_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(UNLIMITED)
        self._slots = asyncio.BoundedSemaphore(max_concurrent_updates)
        self._max_queued = max_queued_per_user
        self._on_dropped = on_dropped
        self._quiet_s = quiet_s
        self._clock = clock
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}
        self._told: dict[int, float] = {}
        """People asked to slow down, with when their latest update arrived (this process)."""

    @staticmethod
    def _key(update: object) -> int | None:
        if not isinstance(update, Update):
            return None
        if update.effective_user is not None:
            return update.effective_user.id
        if update.effective_chat is not None:
            return update.effective_chat.id
        return None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = self._key(update)
        if key is None:
            async with self._slots:
                await coroutine
            return
        self._note_arrival(key)
        if self._waiting.get(key, 0) > self._max_queued:
            await self._drop(key, update, coroutine)
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock, self._slots:
                await coroutine
        finally:
            self._waiting[key] -= 1
            if self._waiting[key] == 0:
                del self._waiting[key]
                del self._locks[key]

    def _note_arrival(self, key: int) -> None:
        """Keeps a flood episode open while the person goes on sending; ends it after
        `quiet_s` of silence, so their next flood is told again."""
        told_at = self._told.get(key)
        if told_at is None:
            return
        now = self._clock()
        if now - told_at >= self._quiet_s:
            del self._told[key]
        else:
            self._told[key] = now

    async def _drop(self, key: int, update: object, coroutine: Awaitable[Any]) -> None:
        """Leaves an update of a person with too many waiting unhandled; tells them once per
        flood episode."""
        if inspect.iscoroutine(coroutine):
            coroutine.close()
        if key in self._told:
            return
        now = self._clock()
        # Forget people whose episode ended and who never wrote again, so the map stays small.
        for other, last in list(self._told.items()):
            if now - last >= self._quiet_s:
                del self._told[other]
        self._told[key] = now
        logger.warning("updates of one account dropped: too many waiting")
        if self._on_dropped is not None and isinstance(update, Update):
            try:
                await self._on_dropped(update)
            except Exception:
                logger.warning("could not ask an account to slow down")

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release: locks disappear with their last waiting update."""
