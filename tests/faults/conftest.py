"""Fixtures of the fault suite (the tools themselves are in tests/faults/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.context import AppContext
from storage import migrate
from tests.faults.harness import system_context


@pytest.fixture
def live_ctx(database_url: str) -> Iterator[AppContext]:
    """A migrated database on the real clock, shared with a bot process under test."""
    ctx = system_context(database_url)
    migrate.upgrade(ctx.engine)
    yield ctx
    ctx.close()
