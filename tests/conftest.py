"""Shared fixtures: a real, throwaway database per test, on SQLite and (when set) PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.context import AppContext
from storage import migrate
from storage.db import make_engine

if TYPE_CHECKING:
    from tests.bot.e2e import RunningBot

# python-telegram-bot 22 warns on every RetryAfter unless durations are opted into timedeltas;
# the product opts in at start-up (bot.cli.main), so the tests run the same way.
os.environ.setdefault("PTB_TIMEDELTA", "true")

POSTGRES_URL_ENV = "SPONDYBOT_TEST_POSTGRES_URL"
TEST_PSEUDONYM_KEY = "test-pseudonym-key-0123456789abcdef"
TEST_TOKEN = "123456:TEST-TOKEN"
# A Monday morning, so weekly schedules in tests are easy to read.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _postgres_url() -> str | None:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        return None
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty, private database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spondybot.db'}"
        return
    base = _postgres_url()
    if base is None:
        pytest.skip(f"PostgreSQL tests run when {POSTGRES_URL_ENV} is set")
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for tests: no `.env` file, a real-looking token and pseudonym key."""
    values: dict[str, object] = {
        "_env_file": None,
        "database_url": database_url,
        "telegram_bot_token": TEST_TOKEN,
        "pseudonym_key": TEST_PSEUDONYM_KEY,
        "clinic_timezone": "Europe/Berlin",
        "telegram_bot_username": "spondy_test_bot",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to the newest schema."""
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FixedClock:
    """A clock standing at T0 until a test moves it."""
    return FixedClock(T0)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def ctx(
    settings: Settings, migrated_engine: Engine, clock: FixedClock
) -> AsyncIterator[AppContext]:
    """Everything a service needs, on a fresh migrated database."""
    context = AppContext(settings=settings, engine=migrated_engine, clock=clock)
    yield context
    await context.aclose()  # PostgreSQL connections awaited on this test's event loop


@pytest.fixture
async def running_bot(
    database_url: str, migrated_engine: Engine, clock: FixedClock
) -> AsyncIterator[RunningBot]:
    """The real bot polling a local fake Bot API, on a fresh database (see tests/bot/e2e.py).

    Unpacks as `api, application, ctx = running_bot`; `running_bot.settle()` waits until every
    queued update is handled, `running_bot.restart()` builds a new Application on the same data.
    """
    from tests.bot.e2e import RunningBot
    from tests.fake_telegram import FakeBotApi

    with FakeBotApi(TEST_TOKEN) as api:
        settings = make_settings(
            database_url,
            telegram_api_base_url=api.base_url,
            telegram_file_base_url=api.base_file_url,
        )
        bot = RunningBot(
            api=api,
            ctx=AppContext(settings=settings, engine=migrated_engine, clock=clock),
            clock=clock,
        )
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()
        assert api.server_errors == []
