"""`call_brief`: a short service runs on the event loop when the database is free, else in a
worker thread, and its work is done once either way."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from bot.context import AppContext
from bot.telegram.handlers.common import call_brief
from storage.models import Physician


class DoctorService:
    """A short service that adds one physician and notes the thread of each attempt."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    def __call__(self, ctx: AppContext, *, name: str) -> int:
        self.attempts.append(threading.get_ident())
        with ctx.session() as session:
            session.add(Physician(display_name=name, created_at=datetime.now(UTC)))
        return threading.get_ident()


def _names(ctx: AppContext) -> list[str]:
    with ctx.session() as session:
        return [doctor.display_name for doctor in session.exec(select(Physician)).all()]


async def test_a_free_database_is_used_from_the_event_loop(ctx: AppContext) -> None:
    """With nobody else writing, the service runs on the loop's own thread, once: on SQLite
    directly, on PostgreSQL with each statement awaited."""
    service = DoctorService()
    ran_on = await call_brief(service, ctx, name="Dr A")
    await ctx.aclose()
    assert _names(ctx) == ["Dr A"]
    assert ran_on == threading.get_ident()
    assert service.attempts == [ran_on]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_other_tasks_go_on_while_postgresql_answers(ctx: AppContext) -> None:
    """On PostgreSQL the loop is free while a statement waits: a ticker task keeps running
    during a service that waits for the database for a while. (SQLite has nothing to wait
    for once it has the write lock: see the next test.)"""
    from sqlalchemy import text

    def slow_service(ctx: AppContext) -> int:
        with ctx.session() as session:
            session.exec(text("SELECT pg_sleep(0.3)"))  # type: ignore[call-overload]
        return threading.get_ident()

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    ran_on = await call_brief(slow_service, ctx)
    ticking.cancel()
    await ctx.aclose()
    assert ran_on == threading.get_ident()
    assert ticks >= 5


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_held_database_moves_the_service_to_a_thread(ctx: AppContext) -> None:
    """While another connection holds SQLite's write lock, the service gives way before it has
    written anything and waits in a worker thread; the event loop keeps running meanwhile, and
    the service's work is done exactly once."""
    other = sqlite3.connect(str(ctx.engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    service = DoctorService()
    task = asyncio.create_task(call_brief(service, ctx, name="Dr B"))
    ticks = 0
    for _ in range(10):
        await asyncio.sleep(0.02)
        ticks += 1
    assert ticks == 10
    assert not task.done()
    other.execute("COMMIT")
    other.close()
    ran_on = await asyncio.wait_for(task, timeout=10)
    assert ran_on != threading.get_ident()
    assert service.attempts == [threading.get_ident(), ran_on]
    assert _names(ctx) == ["Dr B"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_unit_of_this_process_is_waited_for_on_the_loop(ctx: AppContext) -> None:
    """While a worker thread of this process holds the database (the scheduler's tick, say),
    the service waits on the loop, without a thread of its own, and runs there once the
    other unit of work has finished; its work is done exactly once."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with ctx.session():
            holding.set()
            release.wait(timeout=10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(timeout=10)
    service = DoctorService()
    task = asyncio.create_task(call_brief(service, ctx, name="Dr C"))
    for _ in range(5):
        await asyncio.sleep(0.02)
    assert not task.done()
    assert service.attempts == [threading.get_ident()]
    release.set()
    ran_on = await asyncio.wait_for(task, timeout=10)
    holder.join(timeout=10)
    assert ran_on == threading.get_ident()
    assert service.attempts == [ran_on, ran_on]
    assert _names(ctx) == ["Dr C"]
