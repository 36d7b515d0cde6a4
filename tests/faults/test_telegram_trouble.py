"""Telegram trouble during a reminder wave: bursts of 429, 5xx, dropped connections, stalled
requests, and Telegram unreachable for a while. No scheduled message is lost, none is sent
twice, and the wave completes once the trouble stops.

Reproduce: `.venv/bin/pytest tests/faults -k telegram`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telegram.ext import Application

from bot.app import build_application
from bot.clock import FixedClock
from bot.config import Settings
from bot.context import AppContext
from bot.telegram.delivery import RetryPolicy
from bot.telegram.tick import TickReport, run_tick
from storage import deliveries
from storage.models import DeliveryStatus
from tests.conftest import make_settings
from tests.factories import make_active_patient, make_physician
from tests.fake_telegram import FakeBotApi, FakeUser

pytestmark = pytest.mark.slow

PATIENTS = 40
# The clock starts at Monday 2026-03-02 09:00 UTC; the patients' slot, Monday 18:00 in Berlin,
# is 17:00 UTC, and the first reminder comes 24 hours later.
SLOT = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
REMINDER = SLOT + timedelta(hours=24)
OFFLINE_SECONDS = 2.0
STALL_SECONDS = 1.0
# The production rules with shorter waits: retries span about 6 s, longer than the trouble.
POLICY = RetryPolicy(attempts=6, first_backoff=0.25, max_backoff=2.0, read_timeout=4.0)


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi() as server:
        yield server


@pytest.fixture
def settings(database_url: str, api: FakeBotApi) -> Settings:
    return make_settings(
        database_url,
        telegram_api_base_url=api.base_url,
        telegram_file_base_url=api.base_file_url,
        send_rate_per_second=1000,
    )


@pytest.fixture
async def app(ctx: AppContext) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """The real application, python-telegram-bot's rate limiter included, not polling."""
    application = build_application(ctx)
    async with application:
        yield application


@pytest.fixture
def patients(ctx: AppContext, api: FakeBotApi) -> list[FakeUser]:
    """40 active patients with their weekly slot on Monday 18:00 in Berlin."""
    physician = make_physician(ctx)
    users = [api.new_user(f"W{index}") for index in range(PATIENTS)]
    for user in users:
        make_active_patient(ctx, physician_id=physician.physician_id, telegram_user_id=user.id)
    return users


async def wave(
    app: Application[Any, Any, Any, Any, Any, Any], ctx: AppContext, clock: FixedClock, at: datetime
) -> TickReport:
    clock.set(at)
    return await run_tick(app, ctx, at, policy=POLICY)


def delivered(api: FakeBotApi, wording: str) -> Counter[int]:
    """How many messages containing `wording` each chat received (a request Telegram carried
    out counts even if its answer was lost on the way back)."""
    return Counter(
        int(call.chat_id)  # type: ignore[arg-type]
        for call in api.calls("sendMessage")
        if call.status == 200 and wording in str(call.params.get("text", ""))
    )


def assert_each_once(
    api: FakeBotApi, ctx: AppContext, users: list[FakeUser], wording: str, report: TickReport
) -> None:
    counts = delivered(api, wording)
    assert counts == Counter({user.chat_id: 1 for user in users}), counts.most_common(3)
    assert (report.sent, report.failed, report.unreachable, report.errors) == (
        len(users),
        0,
        0,
        [],
    )
    with ctx.session() as session:
        log = deliveries.list_deliveries(session=session, limit=10 * len(users))
    assert Counter(entry.status for entry in log) == Counter({DeliveryStatus.SENT.value: len(log)})


class TestReminderWaveUnderTelegramTrouble:
    async def test_bursts_of_429_5xx_drops_and_stalls_deliver_each_invitation_once(
        self,
        app: Application[Any, Any, Any, Any, Any, Any],
        ctx: AppContext,
        clock: FixedClock,
        api: FakeBotApi,
        patients: list[FakeUser],
    ) -> None:
        """429s with retry_after, 500/502/503 answers, dropped connections and requests that
        stall for a second, all during one wave: every patient gets exactly one invitation
        and every delivery ends as sent."""
        api.fail_next("sendMessage", 429, times=4, retry_after=1)
        api.fail_next("sendMessage", 500, times=8)
        api.fail_next("sendMessage", 502, times=6)
        api.fail_next("sendMessage", 503, times=4)
        api.drop_next("sendMessage", times=4)
        api.stall_next("sendMessage", STALL_SECONDS, times=6)
        report = await wave(app, ctx, clock, SLOT)
        troubled = [c for c in api.calls("sendMessage") if c.status != 200]
        assert len(troubled) >= 4 + 8 + 6 + 4 + 4  # every fault was met
        stalled = [
            c
            for c in api.calls("sendMessage")
            if c.answered_at is not None and c.answered_at - c.time >= STALL_SECONDS * 0.9
        ]
        assert len(stalled) >= 6
        assert_each_once(api, ctx, patients, "Your weekly questionnaire is ready.", report)

        again = await wave(app, ctx, clock, SLOT)  # the same instant again sends nothing
        assert again.sent == 0
        assert sum(delivered(api, "Your weekly questionnaire is ready.").values()) == PATIENTS

    async def test_reminders_go_out_once_when_telegram_comes_back(
        self,
        app: Application[Any, Any, Any, Any, Any, Any],
        ctx: AppContext,
        clock: FixedClock,
        api: FakeBotApi,
        patients: list[FakeUser],
    ) -> None:
        """With Telegram unreachable for the first seconds of the reminder wave (and a burst
        of 429 as it comes back), the wave completes: one reminder per patient."""
        first = await wave(app, ctx, clock, SLOT)
        assert first.sent == PATIENTS

        async def back_after_a_while() -> None:
            # Back once every patient's reminder has failed at least once, or at the latest
            # when the first ones still have retries left: a busy machine sends more slowly.
            deadline = asyncio.get_running_loop().time() + OFFLINE_SECONDS * 2
            await asyncio.sleep(OFFLINE_SECONDS)
            while asyncio.get_running_loop().time() < deadline:
                failed = {c.params["chat_id"] for c in api.calls("sendMessage") if c.status == 0}
                if len(failed) >= PATIENTS:
                    break
                await asyncio.sleep(0.1)
            api.fail_next("sendMessage", 429, times=3, retry_after=1)
            api.set_offline(False)

        api.set_offline(True)
        report, _ = await asyncio.gather(wave(app, ctx, clock, REMINDER), back_after_a_while())
        unanswered = [c for c in api.calls("sendMessage") if c.status == 0]
        met_the_outage = {call.params["chat_id"] for call in unanswered}
        assert len(met_the_outage) >= PATIENTS // 4  # a good part of the wave met the outage
        assert_each_once(api, ctx, patients, "A reminder:", report)
        again = await wave(app, ctx, clock, REMINDER)
        assert again.sent == 0
