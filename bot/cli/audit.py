"""`spondybot audit …`: who exported what, and when."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from bot.cli.common import app_context, echo_json
from bot.export.service import list_export_audit
from bot.export.tables import iso_utc

app = typer.Typer(
    help="Show the audit trail of research exports.\n\nExample: spondybot audit list",
    no_args_is_help=True,
)


@app.command("list")
def audit_list(
    limit: Annotated[int | None, typer.Option(min=1, help="Only the most recent N.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List every research export: when, who, format, filters, rows and SHA-256 of the output.

    Example: spondybot audit list --limit 20
    """
    with app_context() as ctx:
        entries = list_export_audit(ctx, limit=limit)
    if as_json:
        echo_json({"exports": [dataclasses.asdict(entry) for entry in entries]})
        return
    if not entries:
        typer.echo("no exports yet")
        return
    for entry in entries:
        typer.echo(
            f"#{entry.audit_id}  {iso_utc(entry.at)}  by {entry.by}  {entry.format}  "
            f"{entry.rows} rows  sha256 {entry.sha256}\n"
            f"      filters {json.dumps(entry.filters, sort_keys=True, ensure_ascii=False)}  "
            f"to {entry.destination or '-'}"
        )
