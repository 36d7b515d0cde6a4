"""Sending with Telegram's answers: 429 waits, 5xx and timeouts retry, 400 and 403 do not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from itertools import pairwise
from typing import Any

import pytest
from telegram import Bot
from telegram.ext import Application

from bot.services.scheduling import DeliveryResult, Outcome
from bot.telegram.delivery import Outgoing, RetryPolicy, deliver, send_one
from tests.conftest import TEST_TOKEN
from tests.fake_telegram import FakeBotApi
from tests.scheduling.conftest import FAST


@pytest.fixture
async def plain_bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    """A bot without python-telegram-bot's rate limiter, so a 429 reaches our own code."""
    bot = Bot(TEST_TOKEN, base_url=api.base_url, base_file_url=api.base_file_url)
    async with bot:
        yield bot


def gaps(api: FakeBotApi) -> list[float]:
    """Seconds between consecutive sendMessage requests as the server received them."""
    times = [request.monotonic for request in api.calls("sendMessage")]
    return [later - earlier for earlier, later in pairwise(times)]


class TestTooManyRequests:
    async def test_rate_limiter_waits_retry_after_then_retries(
        self, api: FakeBotApi, app: Application[Any, Any, Any, Any, Any, Any]
    ) -> None:
        """Through the application's AIORateLimiter, a 429 is retried after its retry_after."""
        user = api.new_user()
        api.fail_next("sendMessage", 429, retry_after=1)
        result = await send_one(app.bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert result.outcome is Outcome.SENT
        (gap,) = gaps(api)
        assert 1.0 <= gap < 1.6
        assert len(api.sent_messages(user.chat_id)) == 1

    async def test_without_the_limiter_we_wait_exactly_retry_after(
        self, api: FakeBotApi, plain_bot: Bot
    ) -> None:
        """A 429 that reaches the sender waits exactly retry_after and then succeeds."""
        user = api.new_user()
        api.fail_next("sendMessage", 429, retry_after=1)
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert (result.outcome, result.attempts) == (Outcome.SENT, 2)
        (gap,) = gaps(api)
        assert 1.0 <= gap < 1.3

    async def test_endless_429_is_recorded_failed(self, api: FakeBotApi, plain_bot: Bot) -> None:
        """A 429 that keeps coming is given up after the bounded number of waits."""
        user = api.new_user()
        api.fail_next("sendMessage", 429, times=10, retry_after=1)
        policy = RetryPolicy(flood_retries=1, first_backoff=0.01)
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), policy)
        assert result.outcome is Outcome.FAILED
        assert result.error is not None
        assert result.error.startswith("RetryAfter")
        assert len(api.calls("sendMessage")) == 2


class TestTransientErrors:
    async def test_500_is_retried_with_growing_backoff(
        self, api: FakeBotApi, plain_bot: Bot
    ) -> None:
        """Two 500s are retried after 0.05 s and 0.1 s, and the third attempt is delivered."""
        user = api.new_user()
        api.fail_next("sendMessage", 500, times=2)
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert (result.outcome, result.attempts) == (Outcome.SENT, 3)
        first, second = gaps(api)
        assert first >= 0.05
        assert second >= 0.1
        assert len(api.sent_messages(user.chat_id)) == 1

    async def test_500_that_persists_is_recorded_failed_with_the_reason(
        self, api: FakeBotApi, plain_bot: Bot
    ) -> None:
        """After the bounded attempts a persistent 500 is a failure naming the server's answer."""
        user = api.new_user()
        api.fail_next("sendMessage", 500, times=10)
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert (result.outcome, result.attempts) == (Outcome.FAILED, FAST.attempts)
        assert result.error == "NetworkError: Internal Server Error"
        assert len(api.calls("sendMessage")) == FAST.attempts

    async def test_dropped_connection_is_retried(self, api: FakeBotApi, plain_bot: Bot) -> None:
        """A connection closed without an answer is a network error and is retried."""
        user = api.new_user()
        api.drop_next("sendMessage")
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert (result.outcome, result.attempts) == (Outcome.SENT, 2)

    async def test_timeout_is_retried(self, api: FakeBotApi, plain_bot: Bot) -> None:
        """A request that outlives the read timeout is retried and the retry is delivered."""
        user = api.new_user()
        api.stall_next("sendMessage", seconds=1.0)
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert (result.outcome, result.attempts) == (Outcome.SENT, 2)
        assert len(api.calls("sendMessage")) == 2

    async def test_timeouts_that_persist_are_recorded_failed(
        self, api: FakeBotApi, plain_bot: Bot
    ) -> None:
        """A server that never answers in time ends as a failure saying it timed out."""
        user = api.new_user()
        api.stall_next("sendMessage", seconds=0.8, times=FAST.attempts)
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert result.outcome is Outcome.FAILED
        assert result.error is not None
        assert result.error.startswith("TimedOut")


class TestFinalErrors:
    async def test_403_marks_unreachable_without_retrying(
        self, api: FakeBotApi, plain_bot: Bot
    ) -> None:
        """A patient who blocked the bot is not asked again: one request, outcome unreachable."""
        user = api.new_user()
        user.block_bot()
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert (result.outcome, result.attempts) == (Outcome.UNREACHABLE, 1)
        assert len(api.calls("sendMessage")) == 1

    async def test_400_fails_without_retrying(self, api: FakeBotApi, plain_bot: Bot) -> None:
        """A request Telegram calls malformed is not repeated; the reason is kept."""
        user = api.new_user()
        api.fail_next("sendMessage", 400, description="Bad Request: chat not found")
        result = await send_one(plain_bot, Outgoing(1, user.chat_id, "hello"), FAST)
        assert (result.outcome, result.attempts) == (Outcome.FAILED, 1)
        assert result.error == "BadRequest: Chat not found"
        assert len(api.calls("sendMessage")) == 1


class TestDeliver:
    async def test_every_message_is_sent_once_and_every_outcome_recorded(
        self, api: FakeBotApi, plain_bot: Bot
    ) -> None:
        """Pages of messages are all sent, and each outcome reaches the recorder exactly once."""
        users = [api.new_user() for _ in range(30)]
        users[3].block_bot()
        recorded: list[DeliveryResult] = []

        async def pages() -> AsyncIterator[Sequence[Outgoing]]:
            for start in range(0, 30, 7):
                batch = range(start, min(start + 7, 30))
                yield [Outgoing(i, users[i].chat_id, f"m{i}") for i in batch]

        async def record(batch: list[DeliveryResult]) -> None:
            recorded.extend(batch)

        stats = await deliver(plain_bot, pages(), record=record, policy=FAST, concurrency=4)
        assert (stats.sent, stats.unreachable, stats.failed) == (29, 1, 0)
        assert sorted(r.delivery_id for r in recorded) == list(range(30))
        for user in users:
            expected = 0 if user is users[3] else 1
            assert len(api.sent_messages(user.chat_id)) == expected

    async def test_messages_taken_before_a_failing_page_are_still_sent(
        self, api: FakeBotApi, plain_bot: Bot
    ) -> None:
        """When claiming a later page fails, what was claimed is sent, and then the error rises."""
        user = api.new_user()
        recorded: list[DeliveryResult] = []

        async def pages() -> AsyncIterator[Sequence[Outgoing]]:
            yield [Outgoing(1, user.chat_id, "claimed")]
            raise RuntimeError("database went away")

        async def record(batch: list[DeliveryResult]) -> None:
            recorded.extend(batch)

        with pytest.raises(RuntimeError, match="database went away"):
            await deliver(plain_bot, pages(), record=record, policy=FAST)
        assert [r.outcome for r in recorded] == [Outcome.SENT]
        assert len(api.sent_messages(user.chat_id)) == 1
