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
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

logger = logging.getLogger(__name__)

UNLIMITED: int = 2**31 - 1
"""The base class's own limit, which it applies outside the per-user lock: not used as one."""


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Runs updates of the same user (or chat) sequentially, others concurrently, with at most
    `max_concurrent_updates` running and `max_queued_per_user` waiting per person."""

    def __init__(
        self,
        max_concurrent_updates: int,
        *,
        max_queued_per_user: int,
        on_dropped: Callable[[Update], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(UNLIMITED)
        self._slots = asyncio.BoundedSemaphore(max_concurrent_updates)
        self._max_queued = max_queued_per_user
        self._on_dropped = on_dropped
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}
        self._told: set[int] = set()

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
                self._told.discard(key)

    async def _drop(self, key: int, update: object, coroutine: Awaitable[Any]) -> None:
        """Leaves an update of a person with too many waiting unhandled; tells them once per
        burst (until their queue has drained)."""
        if inspect.iscoroutine(coroutine):
            coroutine.close()
        if key in self._told:
            return
        self._told.add(key)
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
