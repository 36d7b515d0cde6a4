"""The `spondybot` command: staff tools, the bot itself, and operator commands."""

from __future__ import annotations

import os

import typer

from bot.cli import (
    accounts,
    audit,
    db,
    deliveries,
    demo,
    digest,
    export,
    lab,
    run,
    serve,
    staff,
    therapy,
    tick,
)

app = typer.Typer(
    name="spondybot",
    help=(
        "spondybot: weekly BASDAI and ASDAS follow-up for axial spondyloarthritis over Telegram."
        "\n\nExample: spondybot patient add --physician 1 --ref MRN-0042"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(staff.physician_app, name="physician")
app.add_typer(staff.patient_app, name="patient")
app.add_typer(lab.app, name="lab")
app.add_typer(accounts.staff_app, name="staff")
app.add_typer(therapy.app, name="therapy")
app.command("run")(run.run)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.command("tick")(tick.tick)
app.command("deliveries")(deliveries.deliveries)
app.command("export")(export.export)
app.add_typer(audit.app, name="audit")
app.add_typer(digest.app, name="digest")


def main() -> None:
    """Console entry point."""
    # Opt in to python-telegram-bot's timedelta durations (RetryAfter.retry_after and friends),
    # which silences its deprecation warning on every 429.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    app()
