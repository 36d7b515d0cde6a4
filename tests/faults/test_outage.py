"""Database outage during a load: PostgreSQL cut off for 10 s by a TCP proxy, and a SQLite file
whose write lock another process holds for longer than the busy timeout.

Patients who answer then are told to try again in a moment (once per press) or are kept
waiting until their answer is stored; nothing is lost and the bot recovers by itself.

Reproduce: `.venv/bin/pytest tests/faults -k outage` (PostgreSQL needs
SPONDYBOT_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.clock import FixedClock
from bot.context import AppContext
from storage import migrate
from storage.db import make_engine
from tests.bot.e2e import RunningBot
from tests.conftest import TEST_TOKEN, make_settings
from tests.fake_telegram import FakeBotApi
from tests.faults.harness import (
    SEED,
    TRY_AGAIN,
    SimulatedPatient,
    answer_through_trouble,
    assert_completed_as_planned,
    open_questionnaire,
    seed_patients,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

PATIENTS = 8
OUTAGE_SECONDS = 10.0
LOCK_SECONDS = 5.0
BUSY_TIMEOUT_MS = 1000
LOAD_TIMEOUT = 120.0


@asynccontextmanager
async def bot_on(
    database_url: str, clock: FixedClock, **settings: object
) -> AsyncIterator[RunningBot]:
    """The real bot polling a fake Bot API, on the database at `database_url` (migrated by
    the caller) with its settings."""
    with FakeBotApi(TEST_TOKEN) as api:
        ctx = AppContext.from_settings(
            make_settings(
                database_url,
                telegram_api_base_url=api.base_url,
                telegram_file_base_url=api.base_file_url,
                **settings,
            ),
            clock,
        )
        bot = RunningBot(api=api, ctx=ctx, clock=clock)
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()
            ctx.close()
        assert api.server_errors == []


async def load_with_trouble(
    api: FakeBotApi,
    people: list[SimulatedPatient],
    trouble: Callable[[], Awaitable[float]],
) -> float:
    """Every patient answers through to the end while `trouble` runs once a quarter of the
    answers are in; returns when the trouble ended (time.monotonic())."""
    for patient in people:
        await open_questionnaire(api, patient)

    async def when_busy() -> float:
        await api.wait_until(
            lambda: sum(len(p.observed) for p in people) >= len(people) * 7 // 4, LOAD_TIMEOUT
        )
        return await trouble()

    async with asyncio.timeout(LOAD_TIMEOUT):
        ended, *_ = await asyncio.gather(
            when_busy(), *(answer_through_trouble(api, p) for p in people)
        )
    return ended


def assert_nothing_lost(
    ctx: AppContext, people: list[SimulatedPatient], api: FakeBotApi, trouble_ended: float
) -> None:
    for patient in people:
        assert_completed_as_planned(ctx, patient)
        told = [m for m in patient.user.messages() if m.get("text") == TRY_AGAIN]
        assert len(told) == patient.try_again, patient.user.transcript()  # once per press
    assert any(t > trouble_ended for p in people for t in p.progress_at)
    pressed = {
        u.update["callback_query"]["id"] for u in api.pushed_updates if "callback_query" in u.update
    }
    answered = {c.params["callback_query_id"] for c in api.calls("answerCallbackQuery")}
    assert pressed <= answered  # no button was left spinning


class TestPostgresOutage:
    @pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
    async def test_ten_seconds_without_the_database_lose_nothing(
        self, database_url: str, clock: FixedClock
    ) -> None:
        """While every connection to PostgreSQL is dropped for 10 s, each press is answered
        with "try again in a moment"; afterwards the same bot stores the answers again and all
        8 patients complete with exactly their answers."""
        direct = make_engine(database_url)
        migrate.upgrade(direct)
        direct.dispose()
        target = urlsplit(database_url)
        with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
            via_proxy = urlunsplit(
                target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}")
            )
            async with bot_on(via_proxy, clock) as bot:
                people = seed_patients(bot.ctx, bot.api, PATIENTS, random.Random(SEED))

                async def outage() -> float:
                    proxy.cut()
                    await asyncio.sleep(OUTAGE_SECONDS)
                    proxy.restore()
                    return time.monotonic()

                ended = await load_with_trouble(bot.api, people, outage)
                assert proxy.refused > 0
                assert sum(p.try_again for p in people) >= PATIENTS
                reader = AppContext(settings=bot.ctx.settings, engine=make_engine(database_url))
                try:
                    assert_nothing_lost(reader, people, bot.api, ended)
                finally:
                    reader.close()


class TestSqliteWriteLock:
    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    async def test_a_lock_held_past_the_busy_timeout_loses_nothing(
        self, database_url: str, clock: FixedClock
    ) -> None:
        """Another process holds the write lock for 5 s with SQLITE_BUSY_TIMEOUT_MS=1000:
        presses then are answered with "try again in a moment" (or wait and are stored), and
        once the lock is gone every patient completes with exactly their answers."""
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        engine.dispose()
        path = database_url.split("///", 1)[1]
        async with bot_on(database_url, clock, sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS) as bot:
            people = seed_patients(bot.ctx, bot.api, PATIENTS, random.Random(SEED))

            async def locked() -> float:
                holder = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    HOLD_LOCK,
                    path,
                    str(LOCK_SECONDS),
                    stdout=asyncio.subprocess.PIPE,
                )
                assert holder.stdout is not None
                assert (await holder.stdout.readline()).strip() == b"locked"
                assert await holder.wait() == 0
                return time.monotonic()

            ended = await load_with_trouble(bot.api, people, locked)
            assert sum(p.try_again for p in people) > 0
            assert_nothing_lost(bot.ctx, people, bot.api, ended)


HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("ROLLBACK")
connection.close()
"""
"""A process that takes SQLite's write lock and keeps it (path, seconds)."""
