"""The scheduler's tick: all work due at one instant, done once, derived from the database.

`run_tick(application_or_bot, ctx, now)` runs the tick tasks the composition root chose
(`bot.app.TICK_TASKS`), in order: resume patients whose pause has ended, close expired
questionnaires as missed, open this week's questionnaires and send their invitations, send due
reminders, send the digests and alerts that are due. `spondybot run` calls it every
`TICK_INTERVAL_SECONDS` from python-telegram-bot's JobQueue (APScheduler 3.x, which only
wakes the process; nothing about the schedule is kept in memory), and `spondybot tick --at …`
calls it once. Ticking twice at the same instant, or from two processes at once, sends nothing
twice: every message is claimed in the delivery log by its dedupe key before it is sent
(at-most-once; why, in `bot.services.scheduling`).

Adding work to the tick (for example the weekly physician digests):

1. In your own module, write a task ``async def send_due_digests(tick: Tick) -> None``. Claim
   what is due with your service (sync: run it with ``await asyncio.to_thread(...)``), word each
   claimed message with ``tick.renderer`` and hand pages of `bot.telegram.delivery.Outgoing` to
   ``await tick.deliver(pages)``, which paces, retries and records the outcomes (a 403 for a
   patient marks them unreachable). Use ``tick.now`` as "now" and ``tick.bot`` for anything
   that is not a text message.
2. Append the function to `TICK_TASKS` in `bot.app`, the composition root. A test passes its
   own list: ``build_application(ctx, tick_tasks=[...])``.

Each task runs even if an earlier one failed; a failure is logged and listed in
`TickReport.errors` (so `spondybot tick` exits non-zero), and the next tick tries again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from telegram import Bot
from telegram.ext import Application, ContextTypes

from bot.context import AppContext
from bot.present.render import Renderer, default_renderer
from bot.present.scheduled import scheduled_screen
from bot.services import scheduling
from bot.services.scheduling import DeliveryResult, ScheduledMessage
from bot.telegram import delivery, keyboards
from bot.telegram.delivery import DEFAULT_POLICY, DeliveryStats, Outgoing, RetryPolicy
from bot.telegram.deps import DEPS_KEY, deps

logger = logging.getLogger(__name__)

TICK_JOB_NAME: Final = "spondybot.tick"


@dataclass
class TickReport:
    """What one tick did, for logs, the `tick` command and tests."""

    at: datetime
    resumed: int = 0
    expired: int = 0
    opened: int = 0
    missed: int = 0
    deferred: int = 0
    invitations: int = 0
    reminders: int = 0
    sent: int = 0
    failed: int = 0
    unreachable: int = 0
    errors: list[str] = field(default_factory=list)

    def busy(self) -> bool:
        """Whether anything happened worth a log line."""
        counts = (self.resumed, self.expired, self.opened, self.missed, self.deferred, self.sent)
        return any(counts) or self.failed > 0 or self.unreachable > 0 or bool(self.errors)


@dataclass
class Tick:
    """Everything a tick task needs: where to send, the database, the words and the instant."""

    bot: Bot
    ctx: AppContext
    renderer: Renderer
    now: datetime
    report: TickReport
    policy: RetryPolicy = DEFAULT_POLICY

    async def deliver(self, pages: AsyncIterator[Sequence[Outgoing]]) -> DeliveryStats:
        """Sends claimed messages page by page and records how each ended."""
        # A bot built with a rate limiter also shares the send rate with other processes.
        shared = getattr(self.bot, "rate_limiter", None) is not None
        stats = await delivery.deliver(
            self.bot,
            pages,
            record=self._record,
            policy=self.policy,
            budget=self._send_slot if shared else None,
        )
        self.report.sent += stats.sent
        self.report.failed += stats.failed
        self.report.unreachable += stats.unreachable
        return stats

    async def _send_slot(self) -> None:
        """Waits for a send of the shared per-second budget (see `scheduling.take_send_slot`)."""
        while True:
            now = time.time()
            if await asyncio.to_thread(scheduling.take_send_slot, self.ctx, second=int(now)):
                return
            await asyncio.sleep(math.floor(now) + 1 - now)

    async def _record(self, results: list[DeliveryResult]) -> None:
        await asyncio.to_thread(scheduling.record_results, self.ctx, results)


TickTask = Callable[[Tick], Awaitable[None]]


async def run_tick(
    application_or_bot: Application[Any, Any, Any, Any, Any, Any] | Bot,
    ctx: AppContext,
    now: datetime,
    *,
    renderer: Renderer | None = None,
    tasks: Sequence[TickTask] | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> TickReport:
    """Does all work due at `now`, once; the bot must be initialised (`async with`).

    The tasks and the renderer are the application's own (`bot.app.build_application`) unless
    given; a bare `Bot` runs only the tasks it is given.
    """
    if isinstance(application_or_bot, Application):
        bot = application_or_bot.bot
        if DEPS_KEY in application_or_bot.bot_data:
            dependencies = deps(application_or_bot)
            renderer = renderer or dependencies.renderer
            tasks = dependencies.tick_tasks if tasks is None else tasks
    else:
        bot = application_or_bot
    tick = Tick(
        bot=bot,
        ctx=ctx,
        renderer=renderer or default_renderer(),
        now=now,
        report=TickReport(at=now),
        policy=policy,
    )
    for task in tasks or ():
        name = task.__name__
        try:
            await task(tick)
        except Exception as error:
            logger.exception(
                "tick task failed", extra={"fields": {"task": name, "error": type(error).__name__}}
            )
            tick.report.errors.append(name)
    if tick.report.busy():
        report = tick.report
        logger.info(
            "tick done",
            extra={
                "fields": {
                    "at": now.isoformat(),
                    "opened": report.opened,
                    "missed": report.missed,
                    "sent": report.sent,
                    "failed": report.failed,
                    "unreachable": report.unreachable,
                    "expired": report.expired,
                    "resumed": report.resumed,
                    "deferred": report.deferred,
                }
            },
        )
    return tick.report


# -- the tasks --------------------------------------------------------------------------------


async def resume_paused_patients(tick: Tick) -> None:
    """Patients whose pause has ended get their weekly questionnaire again."""
    tick.report.resumed += await asyncio.to_thread(
        scheduling.resume_paused_patients, tick.ctx, tick.now
    )


async def expire_administrations(tick: Tick) -> None:
    """Questionnaires not completed in time close as missed, keeping their answers."""
    tick.report.expired += await asyncio.to_thread(
        scheduling.expire_administrations, tick.ctx, tick.now
    )


async def send_invitations(tick: Tick) -> None:
    """Opens the weekly questionnaires that are due and invites each patient to start."""
    window_start = await asyncio.to_thread(scheduling.slot_window_start, tick.ctx, tick.now)

    async def pages() -> AsyncIterator[list[Outgoing]]:
        after: int | None = 0
        while after is not None:
            page = await asyncio.to_thread(
                scheduling.claim_invitations,
                tick.ctx,
                tick.now,
                window_start=window_start,
                after_patient_id=after,
            )
            tick.report.opened += page.opened
            tick.report.missed += page.missed
            tick.report.invitations += len(page.messages)
            yield [word(tick.renderer, message) for message in page.messages]
            after = page.next_after

    await tick.deliver(pages())
    await asyncio.to_thread(scheduling.mark_slots_handled, tick.ctx, tick.now)


async def send_reminders(tick: Tick) -> None:
    """Reminds patients of questionnaires still open, outside their quiet hours."""

    async def pages() -> AsyncIterator[list[Outgoing]]:
        after: int | None = 0
        while after is not None:
            page = await asyncio.to_thread(
                scheduling.claim_reminders, tick.ctx, tick.now, after_administration_id=after
            )
            tick.report.deferred += page.deferred
            tick.report.reminders += len(page.messages)
            yield [word(tick.renderer, message) for message in page.messages]
            after = page.next_after

    await tick.deliver(pages())


# -- wording ----------------------------------------------------------------------------------


def word(renderer: Renderer, message: ScheduledMessage) -> Outgoing:
    """A claimed invitation or reminder, worded by `bot.present.scheduled`, ready to send."""
    screen = scheduled_screen(renderer, message)
    return Outgoing(
        delivery_id=message.delivery_id,
        chat_id=message.chat_id,
        text=screen.text,
        reply_markup=keyboards.markup(screen.buttons),
    )


# -- wiring into `spondybot run` --------------------------------------------------------------


def install(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Adds the repeating tick to the application's JobQueue (one at a time, never stacked)."""
    job_queue = application.job_queue
    if job_queue is None:
        raise RuntimeError("the job queue is missing: install python-telegram-bot[job-queue]")
    interval = deps(application).ctx.settings.tick_interval_seconds
    job_queue.run_repeating(
        _tick_job,
        interval=interval,
        first=1,
        name=TICK_JOB_NAME,
        job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )


async def _tick_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Does the work due now; a failure is logged and the next tick tries again."""
    dependencies = deps(context)
    await run_tick(context.application, dependencies.ctx, dependencies.ctx.clock.now())
