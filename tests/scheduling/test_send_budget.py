"""Ticking processes share SEND_RATE_PER_SECOND through the database: together, not each."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlmodel import select

from bot.app import build_application
from bot.clock import FixedClock
from bot.context import AppContext
from bot.services import scheduling
from bot.telegram.tick import run_tick
from storage.models import SendBudget
from tests.conftest import make_settings
from tests.fake_telegram import FakeBotApi
from tests.scheduling.conftest import FAST, Clinic

RATE = 8
SLOT = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # Monday 18:00 in Berlin, the weekly slot


class TestSharedSendBudget:
    def test_a_second_gives_out_the_rate_and_no_more(self, ctx: AppContext) -> None:
        """Within one second the budget hands out SEND_RATE_PER_SECOND sends; the next second
        starts afresh."""
        limited = AppContext(
            settings=ctx.settings.model_copy(update={"send_rate_per_second": 3}),
            engine=ctx.engine,
            clock=ctx.clock,
        )
        taken = [scheduling.take_send_slot(limited, second=1000) for _ in range(5)]
        assert taken == [True, True, True, False, False]
        assert scheduling.take_send_slot(limited, second=1001)

    async def test_two_ticks_at_once_send_within_the_rate_together(
        self, database_url: str, api: FakeBotApi, clinic: Clinic, ctx: AppContext
    ) -> None:
        """Two ticks, each with its own rate limiter as two processes have, send 40 due
        invitations once each, never more than the configured rate in any second together."""
        chats = [clinic.patient().user.chat_id for _ in range(40)]
        settings = make_settings(
            database_url,
            telegram_api_base_url=api.base_url,
            telegram_file_base_url=api.base_file_url,
            send_rate_per_second=RATE,
        )
        contexts = [AppContext.from_settings(settings, clock=FixedClock(SLOT)) for _ in range(2)]
        applications = [build_application(context) for context in contexts]
        try:
            async with applications[0], applications[1]:
                reports = await asyncio.gather(
                    *(
                        run_tick(application, context, SLOT, policy=FAST)
                        for application, context in zip(applications, contexts, strict=True)
                    )
                )
        finally:
            for context in contexts:
                await context.aclose()
                context.close()
        sends = api.calls("sendMessage")
        assert sorted(request.chat_id for request in sends) == sorted(chats)
        assert sum(report.sent for report in reports) == len(chats)
        # Every send took a slot of the shared budget, and no second gave out more than RATE.
        with ctx.session() as session:
            budget = {row.second: row.used for row in session.exec(select(SendBudget))}
        assert sum(budget.values()) == len(chats)
        assert max(budget.values()) <= RATE, sorted(budget.items())
        # The server saw it too: 40 sends taken in five different seconds span more than three
        # (the first may go at the end of a second, the last at the start of one); each tick
        # on its own would have sent at RATE, the two together in under two seconds.
        times = sorted(request.time for request in sends)
        assert times[-1] - times[0] >= len(chats) / RATE - 2
