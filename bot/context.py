"""What every service needs, built once by the composition root and handed down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import Clock, SystemClock
from bot.config import Settings
from storage.db import make_engine, session_scope


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
        """One unit of work against the database (see `storage.db.session_scope`)."""
        with session_scope(self.engine) as session:
            yield session

    def close(self) -> None:
        """Releases every pooled connection."""
        self.engine.dispose()
