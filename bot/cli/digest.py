"""`spondybot digest …`: preview a physician's weekly digest, or send it now."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import app_context, fail
from bot.services.digest import DigestError, IsoWeek

app = typer.Typer(
    help=(
        "Physicians' weekly digests.\n\n"
        "Example: spondybot digest preview --physician 1 --week 2026-W14"
    ),
    no_args_is_help=True,
)

PhysicianOption = Annotated[int, typer.Option("--physician", help="The physician's id.")]
WeekOption = Annotated[
    str | None,
    typer.Option("--week", help="ISO week, e.g. 2026-W14; default: the last complete week."),
]


def _week(text: str | None) -> IsoWeek | None:
    if text is None:
        return None
    try:
        return IsoWeek.parse(text)
    except ValueError as error:
        fail(f"--week: {error}")


@app.command("preview")
def preview(
    physician: PhysicianOption,
    week: WeekOption = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the HTML and chart files.")] = Path(
        "."
    ),
) -> None:
    """Print a physician's digest and write it as HTML, with its charts as PNG.

    Writes digest-<physician>-<week>.html (the full digest, charts embedded) and
    digest-<physician>-<week>-chart-<n>.png into --out (default: the current folder).
    Nothing is sent.

    Example: spondybot digest preview --physician 1 --week 2026-W14 --out /tmp
    """
    from bot.present.digest.text import render_digest
    from bot.present.render import default_renderer
    from bot.services.digest import build_digest

    chosen = _week(week)
    with app_context() as ctx:
        try:
            built = build_digest(ctx, physician_id=physician, week=chosen)
        except DigestError as error:
            fail(str(error))
        if built is None:
            typer.echo(f"physician {physician} has no enrolled patients yet: no digest")
            return
        rendered = render_digest(built, default_renderer())
    typer.echo(rendered.email_text)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"digest-{physician}-{built.week}"
    document = out / f"{stem}.html"
    document.write_text(rendered.document_html, encoding="utf-8")
    typer.echo(f"\nwrote {document}")
    for number, chart in enumerate(rendered.charts, start=1):
        path = out / f"{stem}-chart-{number}.png"
        path.write_bytes(chart.png)
        typer.echo(f"wrote {path}")
    parts = f"{len(rendered.messages)} message(s)"
    if rendered.document is not None:
        parts += " and the HTML document"
    typer.echo(f"in Telegram: {parts}, {len(rendered.charts)} chart(s)")


@app.command("send")
def send(physician: PhysicianOption, week: WeekOption = None) -> None:
    """Send a physician's digest now, to Telegram and (when configured) by e-mail.

    Telegram: the physician's linked chat. E-mail: when SMTP is configured and the physician
    has an e-mail address. The weekly digest still goes out as scheduled.

    Example: spondybot digest send --physician 1
    """
    from bot.present.render import default_renderer
    from bot.services.digest import recipients
    from bot.telegram.digest_sending import send_now_outside_the_bot

    chosen = _week(week)
    with app_context() as ctx:
        try:
            where = recipients(ctx, physician_id=physician)
        except DigestError as error:
            fail(str(error))
        token = ctx.settings.telegram_bot_token
        if where.chat_id is not None and token is None:
            typer.echo("TELEGRAM_BOT_TOKEN is not set: not sending to Telegram", err=True)
        chat_id = where.chat_id if token is not None else None
        if chat_id is None and where.email is None:
            fail(
                f"physician {physician} cannot be reached: no linked Telegram account, "
                "and no e-mail address or no SMTP settings"
            )

        results = asyncio.run(
            send_now_outside_the_bot(
                ctx, default_renderer(), replace(where, chat_id=chat_id), week=chosen
            )
        )
    if results is None:
        typer.echo(f"physician {physician} has no enrolled patients yet: no digest")
        return
    failed = False
    for channel, result in results.items():
        line = f"{channel.value}: {result.status.value}"
        if result.error:
            line += f" ({result.error})"
        typer.echo(line)
        failed = failed or result.status.value != "sent"
    if failed:
        raise typer.Exit(1)
