"""`spondybot tick`: the work due at one instant, done once, for cron, operators and tests."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from bot.cli.common import (
    app_context,
    echo_json,
    fail,
    require_server_secret,
    settings_or_exit,
)
from bot.clock import Clock, FixedClock, SystemClock

TASK_FAILED = 1
NOT_CONFIGURED = "setting TELEGRAM_BOT_TOKEN: not set: put the token from @BotFather in .env"
CLOCK_SLACK = timedelta(minutes=1)
"""How far ahead of the real clock `--at` may be without --force (clocks of two hosts differ)."""


def _parse_instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at: not an ISO 8601 instant: {text!r} (e.g. 2026-03-29T07:00:00Z)")
    if moment.tzinfo is None:
        fail("--at needs a time zone, e.g. 2026-03-29T07:00:00Z or 2026-03-29T09:00:00+02:00")
    return moment


def tick(
    at: Annotated[
        str | None,
        typer.Option("--at", help="The instant (ISO 8601 with zone) to act as now; default: now."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Act at an --at in the future: marks real questionnaires missed and sends "
            "messages. Without it a future --at only prints what it would do.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Do exactly the work due at one instant, once, and exit: open the weekly questionnaires
    whose slot has come, send invitations and reminders, close expired questionnaires.

    Running the same tick again sends nothing twice; several ticks may run at once. Use it
    from cron instead of the scheduler inside `spondybot run`, or to replay an instant.

    An --at in the future would close real patients' open questionnaires as missed and send
    them messages ahead of time, so it needs --force; without it the command prints what it
    would do and changes nothing.

    Example: spondybot tick --at 2026-03-29T07:00:00Z
    """
    from bot.app import MissingTokenError, build_application
    from bot.log import configure_logging
    from bot.telegram.tick import run_tick

    clock: Clock = SystemClock() if at is None else FixedClock(_parse_instant(at))
    if at is not None and not force and clock.now() > SystemClock().now() + CLOCK_SLACK:
        _preview(clock.now(), as_json=as_json)
        return
    if settings_or_exit().telegram_bot_token is None:
        fail(NOT_CONFIGURED)
    with app_context(clock) as ctx:
        configure_logging(ctx.settings.log_level)
        try:
            application = build_application(ctx)
        except MissingTokenError:
            fail(NOT_CONFIGURED)
        require_server_secret(ctx, purpose="run the scheduler")

        async def once() -> Any:
            async with application:
                return await run_tick(application, ctx, clock.now())

        try:
            report = asyncio.run(once())
        except Exception as error:  # cannot reach Telegram or the database at all
            fail(f"tick failed: {type(error).__name__}: {error}", TASK_FAILED)
    if as_json:
        echo_json(report)
    else:
        typer.echo(
            f"tick at {report.at.isoformat()}: {report.opened} opened, {report.missed} missed, "
            f"{report.invitations} invitations and {report.reminders} reminders claimed, "
            f"{report.sent} sent, {report.failed} failed, {report.unreachable} unreachable, "
            f"{report.expired} expired, {report.resumed} resumed, "
            f"{report.deferred} reminders moved out of quiet hours"
        )
    if report.errors:
        typer.echo(f"error: tick tasks failed: {', '.join(report.errors)}", err=True)
        raise typer.Exit(TASK_FAILED)


def _preview(at: datetime, *, as_json: bool) -> None:
    """What a tick at the future instant `at` would do; nothing is changed."""
    from bot.services.scheduling import preview_tick

    with app_context(SystemClock()) as ctx:
        preview = preview_tick(ctx, at)
    if as_json:
        echo_json({"dry_run": True, **dataclasses.asdict(preview)})
        return
    hours = preview.ahead.total_seconds() / 3600
    typer.echo(
        f"dry run, nothing changed: --at {at.isoformat()} is {hours:.1f} h ahead of now. "
        f"A tick then would mark {preview.missed} open questionnaire(s) missed and open, "
        f"message or record as missed the weekly questionnaires due by then of "
        f"{preview.active_patients} active patient(s) (and {preview.paused_patients} paused "
        f"ones whose pause has ended). Add --force to do it."
    )
