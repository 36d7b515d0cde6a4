"""Sends claimed messages to Telegram: paced by the rate limiter, retried by the rules below.

**Pacing** is python-telegram-bot's `AIORateLimiter` (the `rate-limiter` extra, built on
`aiolimiter`), installed on the bot by `bot.app.build_application` with
`overall_max_rate=SEND_RATE_PER_SECOND`: every request waits in its leaky bucket until the
global rate allows it; requests to groups are also held to Telegram's per-group limit. There is
no sleep here that paces anything. Each process has its own limiter, so the tick also takes
every send from a per-second budget shared through the database (`budget` of `deliver`):
two processes ticking at once stay within the rate together. Private chats need no pacing of
their own: a tick sends a patient at most an invitation and a reminder, far below Telegram's
one message a second per chat.

**Errors**, by what Telegram answered:

* **429 Too Many Requests** carries `retry_after`. The rate limiter pauses *all* requests for
  that long (plus its 0.1 s safety margin) and retries; should a 429 still reach us (its retries
  used up, or a bot built without the limiter), we wait exactly `retry_after` and retry, at most
  `RetryPolicy.flood_retries` times.
* **5xx, network errors and timeouts** are retried after `first_backoff`, doubling each time up
  to `max_backoff`, for at most `RetryPolicy.attempts` attempts in all; then the delivery is
  recorded as failed with the reason. A read timeout is ambiguous (Telegram may have delivered
  the message and only its answer was lost), so its retry can, rarely, show the patient the same
  message twice; the attempts are few and the read timeout generous to keep that rare.
* **403 Forbidden** (the patient blocked the bot): unreachable, not retried.
* **400 Bad Request** and anything else: failed with the reason, not retried.

`deliver` runs the sends concurrently behind a bounded queue: claims are taken a page at a
time only as fast as the limiter lets messages out, so a crash loses at most what is queued
(see `bot.services.scheduling` on at-most-once), and outcomes are written back in batches while
sending goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.services.scheduling import DeliveryResult, Outcome

logger = logging.getLogger(__name__)

# Enough to keep the limiter busy at Telegram rates while some sends wait out a retry; many more
# only make httpx juggle a bigger connection pool.
DEFAULT_CONCURRENCY = 16
_ERROR_LENGTH = 300


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one message; the defaults suit Telegram, tests shorten the waits."""

    attempts: int = 4
    first_backoff: float = 1.0
    max_backoff: float = 30.0
    flood_retries: int = 5
    read_timeout: float | None = 15.0

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th transient failure (1, 2, 4, … capped)."""
        return float(min(self.max_backoff, self.first_backoff * 2 ** (failures - 1)))


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Outgoing:
    """A claimed message, worded and addressed, ready to send."""

    delivery_id: int
    chat_id: int
    text: str
    reply_markup: InlineKeyboardMarkup | None = None


@dataclass
class DeliveryStats:
    """What one `deliver` run did."""

    sent: int = 0
    failed: int = 0
    unreachable: int = 0
    results: list[DeliveryResult] = field(default_factory=list)

    def add(self, result: DeliveryResult) -> None:
        self.results.append(result)
        if result.outcome is Outcome.SENT:
            self.sent += 1
        elif result.outcome is Outcome.UNREACHABLE:
            self.unreachable += 1
        else:
            self.failed += 1


def error_reason(error: BaseException) -> str:
    """A short, log-safe reason: the error class and Telegram's description (no content)."""
    text = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {text}"[:_ERROR_LENGTH]


def _seconds(retry_after: int | float | timedelta) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else float(retry_after)


async def call_with_retries(
    call: Callable[[], Awaitable[object]], policy: RetryPolicy = DEFAULT_POLICY
) -> tuple[Outcome, int, str | None]:
    """Runs one Bot API call by the rules in the module docstring: (outcome, attempts, reason).

    Every scheduled send (invitations, reminders, digests with their photos and documents)
    goes through this one loop, so they all treat Telegram's answers alike.
    """
    attempts = 0
    transient_failures = 0
    floods = 0
    while True:
        attempts += 1
        try:
            await call()
        except RetryAfter as error:
            floods += 1
            if floods > policy.flood_retries:
                return Outcome.FAILED, attempts, error_reason(error)
            await asyncio.sleep(_seconds(error.retry_after))
        except Forbidden as error:
            return Outcome.UNREACHABLE, attempts, error_reason(error)
        except BadRequest as error:  # a subclass of NetworkError, but final
            return Outcome.FAILED, attempts, error_reason(error)
        except NetworkError as error:  # 5xx, connection trouble, timeouts
            transient_failures += 1
            if transient_failures >= policy.attempts:
                return Outcome.FAILED, attempts, error_reason(error)
            await asyncio.sleep(policy.backoff(transient_failures))
        except TelegramError as error:  # invalid token, chat migrated, …: not ours to retry
            return Outcome.FAILED, attempts, error_reason(error)
        except Exception as error:
            logger.exception("unexpected error while sending")
            return Outcome.FAILED, attempts, error_reason(error)
        else:
            return Outcome.SENT, attempts, None


async def send_one(
    bot: Bot, message: Outgoing, policy: RetryPolicy = DEFAULT_POLICY
) -> DeliveryResult:
    """Sends one message by the rules in the module docstring; never raises for Telegram."""
    outcome, attempts, reason = await call_with_retries(
        lambda: bot.send_message(
            chat_id=message.chat_id,
            text=message.text,
            reply_markup=message.reply_markup,
            read_timeout=policy.read_timeout,
        ),
        policy,
    )
    return DeliveryResult(message.delivery_id, outcome, attempts, reason)


RecordFn = Callable[[list[DeliveryResult]], Awaitable[object]]


async def deliver(
    bot: Bot,
    pages: AsyncIterable[Sequence[Outgoing]],
    *,
    record: RecordFn,
    policy: RetryPolicy = DEFAULT_POLICY,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget: Callable[[], Awaitable[None]] | None = None,
) -> DeliveryStats:
    """Sends every message of every page, `concurrency` at a time, and records each outcome.

    Pages are pulled only as fast as messages leave (the queue holds `concurrency` of them), so
    claiming stays just ahead of sending. Outcomes are handed to `record` in batches by a
    separate task, so sending never waits for the database. Messages already taken from a page
    are sent and recorded even if fetching a later page fails; that error is then raised.
    `budget`, when given, is awaited before each message: it returns once the message may go.
    """
    stats = DeliveryStats()
    outgoing: asyncio.Queue[Outgoing | None] = asyncio.Queue(maxsize=concurrency)
    finished: asyncio.Queue[DeliveryResult | None] = asyncio.Queue()

    async def sender() -> None:
        while (message := await outgoing.get()) is not None:
            if budget is not None:
                await budget()
            result = await send_one(bot, message, policy)
            stats.add(result)
            finished.put_nowait(result)

    async def recorder() -> None:
        done = False
        while not done:
            batch: list[DeliveryResult] = []
            item = await finished.get()
            while item is not None:
                batch.append(item)
                if finished.empty():
                    break
                item = finished.get_nowait()
            done = item is None
            if batch:
                await record(batch)

    senders = [asyncio.create_task(sender()) for _ in range(concurrency)]
    recording = asyncio.create_task(recorder())
    try:
        async for page in pages:
            for message in page:
                await outgoing.put(message)
    finally:
        for _ in senders:
            await outgoing.put(None)
        await asyncio.gather(*senders)
        finished.put_nowait(None)
        await recording
    return stats
