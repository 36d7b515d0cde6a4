"""`spondybot deliveries`: scheduled messages that did not arrive, and unreachable patients."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from bot.cli.common import app_context, echo_json
from bot.services import scheduling


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def deliveries(
    days: Annotated[int, typer.Option(min=1, max=365, help="How far back to look.")] = 7,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List recent delivery failures and the patients Telegram refuses (they blocked the bot).

    Failures show the reason; a claim whose process stopped before sending shows as
    "interrupted" (it is never re-sent). Unreachable patients are listed by clinic reference
    until they write to the bot again.

    Example: spondybot deliveries --days 3
    """
    with app_context() as ctx:
        report = scheduling.delivery_report(ctx, days=days, limit=limit)
    if as_json:
        echo_json(report)
        return
    if report.problems:
        typer.echo(f"Deliveries that did not arrive (last {days} days): {len(report.problems)}")
        for problem in report.problems:
            who = problem.clinic_ref or (
                f"physician {problem.physician_id}" if problem.physician_id else "-"
            )
            status = "interrupted" if problem.status == "claimed" else problem.status
            typer.echo(
                f"  {_when(problem.claimed_at)}  {problem.kind:<10}  {who:<16}  {status:<11}  "
                f"attempts={problem.attempts}  {problem.error or ''}".rstrip()
            )
    else:
        typer.echo(f"No failed deliveries in the last {days} days.")
    if report.unreachable:
        typer.echo(f"Unreachable patients (blocked the bot): {len(report.unreachable)}")
        for patient in report.unreachable:
            typer.echo(
                f"  {patient.clinic_ref:<16}  physician {patient.physician_id}  "
                f"since {_when(patient.since)}"
            )
    else:
        typer.echo("No unreachable patients.")
