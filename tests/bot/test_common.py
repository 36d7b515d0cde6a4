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
from bot.handlers.common import call_brief
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
    """SQLite with nobody writing: the service runs on the loop's own thread, once. PostgreSQL
    waits on the network, so there the service runs in a worker thread."""
    service = DoctorService()
    ran_on = await call_brief(service, ctx, name="Dr A")
    assert _names(ctx) == ["Dr A"]
    if ctx.engine.dialect.name == "sqlite":
        assert ran_on == threading.get_ident()
        assert service.attempts == [ran_on]
    else:
        assert ran_on != threading.get_ident()
        assert service.attempts[-1] == ran_on


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_held_database_moves_the_service_to_a_thread(ctx: AppContext) -> None:
    """While another connection holds SQLite's write lock, the service gives way before it has
    written anything and waits in a worker thread; the event loop keeps running meanwhile, and
    the service's work is done exactly once. (PostgreSQL always uses a thread: test above.)"""
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
