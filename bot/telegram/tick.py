"""The scheduler's tick: all work due at one instant, done once, derived from the database.

`run_tick(application_or_bot, ctx, now)` runs the tasks named in `TICK_TASKS`, in order:
resume patients whose pause has ended, close expired questionnaires as missed, open this
week's questionnaires and send their invitations, send due reminders. `spondybot run` calls it
every `TICK_INTERVAL_SECONDS` from python-telegram-bot's JobQueue (APScheduler 3.x, which only
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
2. Append ``"your.module:send_due_digests"`` to `TICK_TASKS`. Names are imported when a tick
   runs, so your module may import this one without a cycle.

Each task runs even if an earlier one failed; a failure is logged and listed in
`TickReport.errors` (so `spondybot tick` exits non-zero), and the next tick tries again.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import Application, ContextTypes

from bot.app import DEPS_KEY, deps
from bot.callbacks import SnoozeButton, StartButton, encode
from bot.context import AppContext
from bot.present.render import Renderer, default_renderer
from bot.services import scheduling
from bot.services.scheduling import DeliveryResult, ScheduledMessage
from bot.telegram import delivery
from bot.telegram.delivery import DEFAULT_POLICY, DeliveryStats, Outgoing, RetryPolicy

logger = logging.getLogger(__name__)

TICK_JOB_NAME: Final = "spondybot.tick"

# Tick tasks in the order they run, as "module:function"; see the module docstring.
TICK_TASKS: list[str] = [
    "bot.telegram.tick:resume_paused_patients",
    "bot.telegram.tick:expire_administrations",
    "bot.telegram.tick:send_invitations",
    "bot.telegram.tick:send_reminders",
    "bot.telegram.digest_sending:send_due_digests",
    "bot.telegram.digest_sending:send_lab_alerts",
]


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
        stats = await delivery.deliver(self.bot, pages, record=self._record, policy=self.policy)
        self.report.sent += stats.sent
        self.report.failed += stats.failed
        self.report.unreachable += stats.unreachable
        return stats

    async def _record(self, results: list[DeliveryResult]) -> None:
        await asyncio.to_thread(scheduling.record_results, self.ctx, results)


TickTask = Callable[[Tick], Awaitable[None]]


def _task(name: str) -> TickTask:
    module_name, _, function_name = name.partition(":")
    task = getattr(importlib.import_module(module_name), function_name)
    assert callable(task)
    return task  # type: ignore[no-any-return]


async def run_tick(
    application_or_bot: Application[Any, Any, Any, Any, Any, Any] | Bot,
    ctx: AppContext,
    now: datetime,
    *,
    renderer: Renderer | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> TickReport:
    """Does all work due at `now`, once; the bot must be initialised (`async with`)."""
    if isinstance(application_or_bot, Application):
        bot = application_or_bot.bot
        if renderer is None and DEPS_KEY in application_or_bot.bot_data:
            renderer = deps(application_or_bot).renderer
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
    for name in TICK_TASKS:
        try:
            await _task(name)(tick)
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


def start_keyboard(
    renderer: Renderer, language: str, administration_id: int, *, label: str
) -> InlineKeyboardMarkup:
    """One "Start" button that opens (or resumes) the questionnaire."""
    button = InlineKeyboardButton(
        renderer.text(label, language), callback_data=encode(StartButton(administration_id))
    )
    return InlineKeyboardMarkup([[button]])


def reminder_keyboard(
    renderer: Renderer, language: str, administration_id: int, *, started: bool
) -> InlineKeyboardMarkup:
    """ "Start now" (or "Continue") and the two snooze buttons."""
    start = "schedule.button_continue" if started else "schedule.button_start_now"
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    renderer.text(start, language),
                    callback_data=encode(StartButton(administration_id)),
                )
            ],
            [
                InlineKeyboardButton(
                    renderer.text(f"schedule.button_snooze_{choice}", language),
                    callback_data=encode(SnoozeButton(administration_id, choice)),
                )
                for choice in ("2h", "1d")
            ],
        ]
    )


def word(renderer: Renderer, message: ScheduledMessage) -> Outgoing:
    """The text and buttons of a claimed invitation or reminder, in the patient's language."""
    language = message.language
    if message.kind == scheduling.INVITATION:
        text = renderer.text("schedule.invitation", language, until=message.closes_at)
        markup = start_keyboard(
            renderer, language, message.administration_id, label="schedule.button_start"
        )
    else:
        key = "schedule.reminder_started" if message.started else "schedule.reminder"
        text = renderer.text(key, language, until=message.closes_at)
        markup = reminder_keyboard(
            renderer, language, message.administration_id, started=message.started
        )
    return Outgoing(
        delivery_id=message.delivery_id, chat_id=message.chat_id, text=text, reply_markup=markup
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
    await run_tick(
        context.application,
        dependencies.ctx,
        dependencies.ctx.clock.now(),
        renderer=dependencies.renderer,
    )
