"""Fixtures for the scheduler: a fake Bot API, settings pointing at it, active patients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import time
from typing import Any

import pytest
from telegram.ext import Application

from bot.app import build_application
from bot.clock import FixedClock
from bot.config import Settings
from bot.context import AppContext
from bot.telegram.delivery import RetryPolicy
from bot.telegram.tick import TickReport, run_tick
from tests.conftest import make_settings
from tests.factories import make_active_patient, make_physician
from tests.fake_telegram import FakeBotApi, FakeUser

# Short waits so retry tests take fractions of a second; the rules are the production ones.
FAST = RetryPolicy(attempts=3, first_backoff=0.05, max_backoff=0.2, read_timeout=0.5)


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    """A local fake Telegram Bot API server, stopped after the test."""
    with FakeBotApi() as server:
        yield server


@pytest.fixture
def settings(database_url: str, api: FakeBotApi) -> Settings:
    """Test settings with the Bot API pointed at the fake server."""
    return make_settings(
        database_url,
        telegram_api_base_url=api.base_url,
        telegram_file_base_url=api.base_file_url,
        send_rate_per_second=1000,
    )


@dataclass
class Enrolled:
    """An active patient and the fake Telegram user who is their phone."""

    patient_id: int
    user: FakeUser


@dataclass
class Clinic:
    """Makes active patients for one physician, through the real enrollment services."""

    ctx: AppContext
    api: FakeBotApi
    physician_id: int

    def patient(
        self,
        *,
        timezone: str = "Europe/Berlin",
        weekday: int = 0,
        at: time = time(18, 0),
        language: str = "en",
        ref: str | None = None,
    ) -> Enrolled:
        user = self.api.new_user(language_code=language)
        patient_id = make_active_patient(
            self.ctx,
            physician_id=self.physician_id,
            telegram_user_id=user.id,
            ref=ref,
            language=language,
            timezone=timezone,
            weekday=weekday,
            at=at,
        )
        return Enrolled(patient_id, user)


@pytest.fixture
def clinic(ctx: AppContext, api: FakeBotApi) -> Clinic:
    """One physician with nobody enrolled yet; onboarding happens at the clock's T0."""
    return Clinic(ctx=ctx, api=api, physician_id=make_physician(ctx).physician_id)


@pytest.fixture
async def app(ctx: AppContext) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """The real application (rate limiter included), running against the fake server; updates
    are handed to it with `process_update` instead of polling."""
    application = build_application(ctx)
    async with application:
        await application.start()
        yield application
        await application.stop()


@dataclass
class Ticker:
    """Moves the clock and runs a tick at that instant, as `spondybot tick --at` would."""

    application: Application[Any, Any, Any, Any, Any, Any]
    ctx: AppContext
    clock: FixedClock

    async def at(self, moment: Any) -> TickReport:
        self.clock.set(moment)
        return await run_tick(self.application, self.ctx, moment, policy=FAST)


@pytest.fixture
def ticker(
    app: Application[Any, Any, Any, Any, Any, Any], ctx: AppContext, clock: FixedClock
) -> Ticker:
    return Ticker(app, ctx, clock)
