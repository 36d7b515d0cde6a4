"""What every service needs, built once by the composition root and handed down."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import Clock, SystemClock
from bot.config import Settings
from storage.db import (
    WouldWait,
    first_unit_at_once,
    make_engine,
    session_scope,
    starting_at_once,
)

__all__ = [
    "CURRENT_CLAIM",
    "AppContext",
    "RedeliveredUpdate",
    "UpdateClaim",
    "WouldWait",
    "first_unit_at_once",
]


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


CURRENT_CLAIM: ContextVar[UpdateClaim | None] = ContextVar("spondybot_update_claim", default=None)
"""The claim of the update this task is handling (set by the update guard, copied into the
worker threads its services run in); None outside update handling."""


@dataclass
class AppContext:
    """Settings, the database engine and the clock; services receive it as their first argument."""

    settings: Settings
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)

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

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work against the database (see `storage.db.session_scope`); while an
        update is handled, its first unit of work also carries the update's claim."""
        claim = CURRENT_CLAIM.get()
        if claim is None or claim.settled:
            with session_scope(self.engine) as session:
                yield session
            return
        with claim.joined(lambda: session_scope(self.engine)) as session:
            yield session

    def close(self) -> None:
        """Releases every pooled connection."""
        self.engine.dispose()
