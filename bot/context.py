"""What every service needs, built once by the composition root and handed down."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Session

from bot.clock import Clock, SystemClock
from bot.config import Settings
from storage.db import (
    QueueTaken,
    WouldWait,
    first_unit_at_once,
    make_awaiting_engine,
    make_engine,
    run_awaiting,
    session_scope,
    starting_at_once,
    writer_queue_released,
)


class RedeliveredUpdate(Exception):
    """The update being handled was handled before: nothing it asks for is done again."""


class UpdateClaim:
    """The claim that the update being handled is handled once, made in the same transaction
    as the first unit of work its handler opens.

    Claim and effect then commit or roll back together: an answer is recorded exactly once even
    when the process dies between the two, and a press costs one transaction, not two. `take`
    records the claim in a session and says whether this is the first time.
    """

    def __init__(self, take: Callable[[Session], bool]) -> None:
        self._take = take
        self._lock = threading.Lock()
        self.settled = False

    @contextmanager
    def joined(
        self, open_session: Callable[[], AbstractContextManager[Session]]
    ) -> Iterator[Session]:
        """A unit of work that carries the claim, unless an earlier one already committed it.

        Raises `RedeliveredUpdate` (rolling back) when the update was handled before. Units of
        work of one update that run at the same time wait here until the claim is settled (a
        unit of work that must start at once raises `WouldWait` instead).
        """
        if not self._lock.acquire(blocking=not starting_at_once()):
            raise WouldWait("another unit of work of this update holds its claim")
        try:
            if self.settled:
                with open_session() as session:
                    yield session
                return
            with open_session() as session:
                if not self._take(session):
                    raise RedeliveredUpdate("this update was handled before")
                yield session
            self.settled = True
        finally:
            self._lock.release()


P = ParamSpec("P")
R = TypeVar("R")

_UNIT_ENGINE: ContextVar[Engine | None] = ContextVar("spondybot_unit_engine", default=None)
"""The engine units of work use instead of `AppContext.engine` (set by `AppContext.run_brief`
for a service it runs on the event loop)."""


@dataclass
class AppContext:
    """Settings, the database engine and the clock; services receive it as their first argument.

    While an update is handled, its handlers pass on `claiming(claim)` of the root's context,
    which also carries the update's claim (`UpdateClaim`) to the first unit of work they open.
    """

    settings: Settings
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)
    claim: UpdateClaim | None = field(default=None, repr=False)
    _awaiting: dict[asyncio.AbstractEventLoop, AsyncEngine] = field(
        default_factory=dict, init=False, repr=False
    )

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> AppContext:
        """Opens the engine for `settings.database_url`; call `close()` at shutdown."""
        return cls(
            settings=settings,
            engine=make_engine(
                settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
            ),
            clock=clock or SystemClock(),
        )

    def claiming(self, claim: UpdateClaim) -> AppContext:
        """This context for the services one update's handlers run: the first unit of work
        they open also takes the update's claim. Engines and settings are shared."""
        scoped = replace(self, claim=claim)
        scoped._awaiting = self._awaiting
        return scoped

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work against the database (see `storage.db.session_scope`); for a
        context of one update (`claiming`), its first unit of work also carries the claim."""
        engine = _UNIT_ENGINE.get() or self.engine
        claim = self.claim
        if claim is None or claim.settled:
            with session_scope(engine) as session:
                yield session
            return
        with claim.joined(lambda: session_scope(engine)) as session:
            yield session

    async def run_brief(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs a short synchronous service (one press or message) for the event loop, without
        a thread when its database work cannot hold up the loop.

        Handing work to a thread costs more than the work itself: under load the loop and the
        worker trade the interpreter lock on every statement. So on SQLite the service runs on
        the loop when its first unit of work can take the database at once, and on PostgreSQL
        it runs on the loop with every statement awaited (`storage.db.run_awaiting`). When the
        database is taken, the service raises `WouldWait` before it has read or written
        anything. If another unit of work of this process has it, the service waits for that
        one on the loop and tries again; if another process (or connection) has it, the
        service runs again in a worker thread, where waiting is harmless. (A SQLite
        commit that fills the write-ahead log also checkpoints it, on the loop then: measured,
        about one press in fifty, for about a millisecond.)
        """
        awaiting = self._awaiting_engine()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.sqlite_busy_timeout_ms / 1000
        while True:
            try:
                if awaiting is None:
                    with first_unit_at_once():
                        return function(*args, **kwargs)
                return await run_awaiting(_on_engine, awaiting.sync_engine, function, args, kwargs)
            except QueueTaken:
                # Another unit of work of this process (the scheduler's, say, in a thread) is
                # finishing: wait for it here rather than queue behind it in a thread too.
                if loop.time() >= deadline:
                    break
                await writer_queue_released(self.engine, deadline - loop.time())
            except WouldWait:
                break
        return await asyncio.to_thread(function, *args, **kwargs)

    def _awaiting_engine(self) -> AsyncEngine | None:
        """This event loop's awaiting twin of the engine (PostgreSQL), made on first use."""
        if self.engine.dialect.name == "sqlite":
            return None
        loop = asyncio.get_running_loop()
        twin = self._awaiting.get(loop)
        if twin is None:
            twin = self._awaiting[loop] = make_awaiting_engine(self.engine)
        return twin

    async def aclose(self) -> None:
        """Releases the connections of the awaiting engines (call on the loop, at shutdown)."""
        twins, self._awaiting = self._awaiting, {}
        for twin in twins.values():
            await twin.dispose()

    def close(self) -> None:
        """Releases every pooled connection (after `aclose` when the bot ran on a loop)."""
        self._awaiting.clear()
        self.engine.dispose()


def _on_engine(
    engine: Engine, function: Callable[..., R], args: tuple[object, ...], kwargs: dict[str, object]
) -> R:
    """Calls `function` with its units of work on `engine`, the first one asked to start at
    once (see `AppContext.run_brief`)."""
    token = _UNIT_ENGINE.set(engine)
    try:
        with first_unit_at_once():
            return function(*args, **kwargs)
    finally:
        _UNIT_ENGINE.reset(token)
