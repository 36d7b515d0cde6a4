"""Sends physician digests and alerts: the weekly tick task, "send now", completion alerts and
the safety check-in's red-flag alerts.

The weekly digest is claimed in the delivery log per physician, channel and ISO week
(`digest:<physician>:<week>`, `digest-email:<physician>:<week>`) before anything is built or
sent, so several processes, a second tick or a restart never send it twice. Like every
scheduled message it is at-most-once: a process that dies between claim and send leaves the
claim unfinished, and `spondybot deliveries` lists it for staff.

Telegram errors are handled as `bot.telegram.delivery` does for patients' messages (waits on 429,
a few retries with back-off on network errors and 5xx, no retry on 400, unreachable on 403), for
every part of the digest: text messages, the HTML document and the chart photos.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from telegram import Bot, InputFile
from telegram.constants import ParseMode

from bot.context import AppContext
from bot.outbound import mail as email
from bot.present.digest.alerts import alert_text, safety_alert_text
from bot.present.digest.text import RenderedDigest, render_digest
from bot.present.render import Renderer
from bot.rare_collections import rare_collections
from bot.services import digest
from bot.services.digest import Channel, DeliveryStatus, DueDigest, IsoWeek, Recipients
from bot.services.questionnaire import Outcome as QuestionnaireOutcome
from bot.services.questionnaire import QuestionnaireReply
from bot.services.safety import SafetyReply
from bot.telegram.delivery import DEFAULT_POLICY, RetryPolicy, call_with_retries, error_reason

if TYPE_CHECKING:
    from bot.telegram.tick import Tick

logger = logging.getLogger(__name__)
_ERROR_LENGTH = 300
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

DIGESTS_AT_ONCE = 2
"""Physicians' weekly digests in progress at once. While one digest is drawn (this process's
CPU), the next one is claimed and read (mostly the database's time), so a round of digests
takes about the longer of the two rather than their sum (docs/benchmarks.md, "Digest").
Drawing itself is never done twice at once (`render`'s `drawing` lock)."""


@dataclass(frozen=True)
class SendResult:
    """How sending on one channel ended."""

    status: DeliveryStatus
    attempts: int = 1
    error: str | None = None


@dataclass
class DigestRun:
    """What one round of digest delivery did."""

    sent: int = 0
    failed: int = 0
    unreachable: int = 0
    physicians: list[int] = field(default_factory=list)

    def add(self, result: SendResult) -> None:
        if result.status is DeliveryStatus.SENT:
            self.sent += 1
        elif result.status is DeliveryStatus.UNREACHABLE:
            self.unreachable += 1
        else:
            self.failed += 1


async def _with_retries(
    call: Callable[[], Awaitable[Any]], policy: RetryPolicy
) -> tuple[SendResult, int]:
    """Runs one Bot API call by `bot.telegram.delivery`'s rules; (result, attempts used)."""
    outcome, attempts, reason = await call_with_retries(call, policy)
    return SendResult(DeliveryStatus(outcome.value), attempts, reason), attempts


async def send_to_chat(
    bot: Bot, chat_id: int, rendered: RenderedDigest, policy: RetryPolicy = DEFAULT_POLICY
) -> SendResult:
    """Sends the digest's messages, then its document (if any), then its charts as photos.

    Stops at the first part that cannot be delivered; the result names it.
    """
    timeout = policy.read_timeout
    calls: list[Callable[[], Awaitable[Any]]] = [
        partial(
            bot.send_message,
            chat_id,
            text,
            parse_mode=ParseMode.HTML,
            read_timeout=timeout,
            write_timeout=timeout,
        )
        for text in rendered.messages
    ]
    if rendered.document is not None:
        calls.append(
            partial(
                bot.send_document,
                chat_id,
                InputFile(rendered.document, filename=rendered.document_name),
                caption=rendered.document_caption,
                parse_mode=ParseMode.HTML,
                read_timeout=timeout,
                write_timeout=timeout,
            )
        )
    calls.extend(
        partial(
            bot.send_photo,
            chat_id,
            InputFile(chart.png, filename=f"chart-{chart.first}.png"),
            caption=chart.caption,
            parse_mode=ParseMode.HTML,
            read_timeout=timeout,
            write_timeout=timeout,
        )
        for chart in rendered.charts
    )
    total = 0
    for call in calls:
        result, used = await _with_retries(call, policy)
        total += used
        if result.status is not DeliveryStatus.SENT:
            return SendResult(result.status, total, result.error)
    return SendResult(DeliveryStatus.SENT, max(total, 1))


async def send_by_email(
    ctx: AppContext,
    recipient: str,
    rendered: RenderedDigest,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> SendResult:
    """E-mails the digest (text, HTML and inline charts), retrying a refused or broken
    connection a few times."""
    sender = email.sender_of(ctx.settings)
    if sender is None:
        return SendResult(DeliveryStatus.FAILED, 0, "e-mail is not configured (SMTP_HOST)")
    message = email.build_message(
        sender=sender,
        recipient=recipient,
        subject=rendered.subject,
        text=rendered.email_text,
        html=rendered.email_html,
        images=[
            email.InlineImage(chart.content_id, chart.png, f"chart-{chart.first}.png")
            for chart in rendered.charts
        ],
        now=ctx.clock.now(),
    )
    for attempt in range(1, policy.attempts + 1):
        try:
            await email.send(ctx.settings, message)
        except email.EmailError as error:
            if attempt == policy.attempts:
                return SendResult(DeliveryStatus.FAILED, attempt, str(error)[:_ERROR_LENGTH])
            await asyncio.sleep(policy.backoff(attempt))
        else:
            return SendResult(DeliveryStatus.SENT, attempt)
    raise AssertionError("unreachable: the loop returns")


async def render(
    ctx: AppContext,
    renderer: Renderer,
    *,
    physician_id: int,
    week: IsoWeek | None = None,
    drawing: asyncio.Lock | None = None,
) -> RenderedDigest | None:
    """Builds and renders a digest in worker threads; None when there is nothing to send.

    With `drawing`, the rendering waits for the lock, so digests built side by side are drawn
    one after the other (charts are CPU work; two at once would only take turns)."""
    built = await asyncio.to_thread(digest.build_digest, ctx, physician_id=physician_id, week=week)
    if built is None:
        return None
    async with drawing or nullcontext():
        return await asyncio.to_thread(render_digest, built, renderer)


async def at_most(
    at_once: int, items: Sequence[_Item], handle: Callable[[_Item], Awaitable[_Result]]
) -> list[_Result]:
    """`handle` of every item, at most `at_once` running at a time; results in the items'
    order. A failure cancels the rest and is raised."""
    limit = asyncio.Semaphore(at_once)

    async def one(item: _Item) -> _Result:
        async with limit:
            return await handle(item)

    tasks = [asyncio.create_task(one(item)) for item in items]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _finish(ctx: AppContext, delivery_id: int, result: SendResult) -> None:
    await asyncio.to_thread(
        digest.finish_delivery,
        ctx,
        delivery_id=delivery_id,
        status=result.status,
        attempts=result.attempts,
        error=result.error,
    )


async def deliver_due(
    bot: Bot,
    ctx: AppContext,
    renderer: Renderer,
    item: DueDigest,
    now: datetime,
    policy: RetryPolicy = DEFAULT_POLICY,
    drawing: asyncio.Lock | None = None,
) -> list[SendResult]:
    """Claims one physician's weekly digest on each channel still open, then sends it there
    (`drawing`: as for `render`)."""
    claims: dict[Channel, int] = {}
    for channel, wanted in ((Channel.TELEGRAM, item.chat_id), (Channel.EMAIL, item.email)):
        if wanted is None:
            continue
        delivery_id = await asyncio.to_thread(
            digest.claim_digest,
            ctx,
            physician_id=item.physician_id,
            week=item.week,
            channel=channel,
            now=now,
        )
        if delivery_id is not None:
            claims[channel] = delivery_id
    if not claims:
        return []
    try:
        rendered = await render(
            ctx, renderer, physician_id=item.physician_id, week=item.week, drawing=drawing
        )
    except Exception as error:
        logger.exception(
            "digest could not be built", extra={"fields": {"physician_id": item.physician_id}}
        )
        rendered, failure = None, error_reason(error)
    else:
        failure = "no enrolled patients"
    results = []
    for channel, delivery_id in claims.items():
        if rendered is None:
            result = SendResult(DeliveryStatus.FAILED, 0, failure)
        elif channel is Channel.TELEGRAM:
            assert item.chat_id is not None
            result = await send_to_chat(bot, item.chat_id, rendered, policy)
        else:
            assert item.email is not None
            result = await send_by_email(ctx, item.email, rendered, policy)
        await _finish(ctx, delivery_id, result)
        logger.info(
            "digest delivered" if result.status is DeliveryStatus.SENT else "digest not delivered",
            extra={
                "fields": {
                    "physician_id": item.physician_id,
                    "week": str(item.week),
                    "channel": channel.value,
                    "status": result.status.value,
                }
            },
        )
        results.append(result)
    return results


async def deliver_due_digests(
    bot: Bot,
    ctx: AppContext,
    renderer: Renderer,
    now: datetime,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> DigestRun:
    """Sends every physician's weekly digest that is due at `now` and not yet claimed,
    `DIGESTS_AT_ONCE` physicians at a time."""
    due = await asyncio.to_thread(digest.due_digests, ctx, now)
    if not due:
        return DigestRun()
    drawing = asyncio.Lock()
    # Each digest reads, judges and draws a year of a panel: tens of thousands of short-lived
    # objects that the collector need not walk again and again.
    with rare_collections():
        delivered = await at_most(
            DIGESTS_AT_ONCE,
            due,
            lambda item: deliver_due(bot, ctx, renderer, item, now, policy, drawing),
        )
    run = DigestRun()
    for item, results in zip(due, delivered, strict=True):
        if results:
            run.physicians.append(item.physician_id)
        for result in results:
            run.add(result)
    return run


async def send_due_digests(tick: Tick) -> None:
    """Tick task: the weekly digests that have fallen due (see `bot.app.TICK_TASKS`)."""
    run = await deliver_due_digests(tick.bot, tick.ctx, tick.renderer, tick.now, tick.policy)
    tick.report.sent += run.sent
    tick.report.failed += run.failed
    tick.report.unreachable += run.unreachable


async def send_now(
    bot: Bot,
    ctx: AppContext,
    renderer: Renderer,
    to: Recipients,
    *,
    week: IsoWeek | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> dict[Channel, SendResult] | None:
    """Sends a physician's digest right away to the chat and e-mail address in `to`, outside
    the weekly schedule (and without counting as it); None when the physician has no enrolled
    patients."""
    rendered = await render(ctx, renderer, physician_id=to.physician_id, week=week)
    if rendered is None:
        return None
    results: dict[Channel, SendResult] = {}
    if to.chat_id is not None:
        results[Channel.TELEGRAM] = await send_to_chat(bot, to.chat_id, rendered, policy)
    if to.email is not None:
        results[Channel.EMAIL] = await send_by_email(ctx, to.email, rendered, policy)
    return results


async def send_now_outside_the_bot(
    ctx: AppContext, renderer: Renderer, to: Recipients, week: IsoWeek | None = None
) -> dict[Channel, SendResult] | None:
    """`send_now` for a command run beside the bot: a Bot of its own, from the settings, for
    the chat; without a token only the e-mail goes (and the Bot is never called)."""
    token = ctx.settings.telegram_bot_token
    if token is None:
        return await send_now(Bot("0:unused"), ctx, renderer, replace(to, chat_id=None), week=week)
    async with Bot(
        token.get_secret_value(),
        base_url=ctx.settings.telegram_api_base_url,
        base_file_url=ctx.settings.telegram_file_base_url,
    ) as bot:
        return await send_now(bot, ctx, renderer, to, week=week)


# -- immediate alerts ------------------------------------------------------------------------


async def send_completion_alerts(
    bot: Bot,
    ctx: AppContext,
    renderer: Renderer,
    administration_id: int,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> int:
    """After a questionnaire is completed: alerts the physician (if they turned alerts on)
    about very high activity or a clinically important worsening, once. Returns how many
    alerts were sent. Never raises: an alert must not break the patient's conversation."""
    sent = 0
    try:
        # A press's follow-up: short reads and one claim, run like the press itself, so they
        # do not hold SQLite's writer queue from a thread while the next presses arrive.
        for alert in await ctx.run_brief(digest.alerts_for_completion, ctx, administration_id):
            delivery_id = await ctx.run_brief(digest.claim_alert, ctx, alert)
            if delivery_id is None:
                continue
            text = alert_text(renderer, alert)
            result, _ = await _with_retries(
                partial(bot.send_message, alert.chat_id, text, parse_mode=ParseMode.HTML), policy
            )
            await _finish(ctx, delivery_id, result)
            sent += result.status is DeliveryStatus.SENT
    except Exception:
        logger.exception(
            "completion alert failed", extra={"fields": {"administration_id": administration_id}}
        )
    return sent


async def send_lab_alerts(tick: Tick) -> None:
    """Tick task: alerts queued when a late lab value completed a very high ASDAS or a
    clinically important worsening (clinical spec §6), each sent once."""
    for queued in await asyncio.to_thread(digest.lab_alerts_due, tick.ctx):
        alert = queued.alert
        if alert is None:
            await _finish(
                tick.ctx,
                queued.delivery_id,
                SendResult(DeliveryStatus.FAILED, 0, "no longer applies"),
            )
            continue
        text = alert_text(tick.renderer, alert)
        result, _ = await _with_retries(
            partial(tick.bot.send_message, alert.chat_id, text, parse_mode=ParseMode.HTML),
            tick.policy,
        )
        await _finish(tick.ctx, queued.delivery_id, result)
        tick.report.sent += result.status is DeliveryStatus.SENT
        tick.report.failed += result.status is not DeliveryStatus.SENT


async def alert_if_completed(bot: Bot, ctx: AppContext, renderer: Renderer, reply: object) -> None:
    """For the patient conversation: after a reply that completed a questionnaire, alerts
    the physician if they asked for it (see `send_completion_alerts`). A completion whose
    physician takes no alerts (as its own transaction found) is not looked at again."""
    if (
        isinstance(reply, QuestionnaireReply)
        and reply.outcome is QuestionnaireOutcome.COMPLETED
        and reply.physician_takes_alerts
        and reply.view is not None
    ):
        await send_completion_alerts(bot, ctx, renderer, reply.view.administration_id)


async def send_safety_alerts(
    bot: Bot,
    ctx: AppContext,
    renderer: Renderer,
    reply: object,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> int:
    """After a red-flag answer: sends the physician the alerts the answer claimed (clinical
    spec §8: "physician alerted now", whatever their alert setting). Each was claimed in the
    answer's own transaction, so another process, a redelivery or a restart sends none again.
    Never raises: an alert must not break the patient's conversation."""
    if not isinstance(reply, SafetyReply) or not reply.alerts:
        return 0
    sent = 0
    for alert in reply.alerts:
        try:
            advice = next((item.value for item in reply.advice if item.value != "none"), None)
            text = safety_alert_text(renderer, alert, advice)
            result, _ = await _with_retries(
                partial(bot.send_message, alert.chat_id, text, parse_mode=ParseMode.HTML), policy
            )
            await _finish(ctx, alert.delivery_id, result)
            sent += result.status is DeliveryStatus.SENT
        except Exception:
            logger.exception(
                "safety alert failed", extra={"fields": {"delivery_id": alert.delivery_id}}
            )
    return sent


def results_summary(results: Sequence[SendResult]) -> str:
    """A short status line for logs and the CLI, e.g. "sent" or "failed: BadRequest: …"."""
    return ", ".join(
        result.status.value if result.error is None else f"{result.status.value}: {result.error}"
        for result in results
    )
