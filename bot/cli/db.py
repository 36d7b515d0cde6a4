"""`spondybot db …`: database schema management."""

from __future__ import annotations

import typer

from bot.cli.common import app_context
from bot.config import database_name
from storage import migrate

app = typer.Typer(
    help="Manage the database schema.\n\nExample: spondybot db upgrade",
    no_args_is_help=True,
)


@app.command("upgrade")
def upgrade() -> None:
    """Apply all migrations up to the newest schema (safe to run repeatedly).

    Example: DATABASE_URL=postgresql://postgres@127.0.0.1/spondybot spondybot db upgrade
    """
    with app_context(check_schema=False) as ctx:
        migrate.upgrade(ctx.engine)
        name = database_name(ctx.settings.database_url)
        typer.echo(f"database {name} at revision {migrate.current_revision(ctx.engine)}")


@app.command("current")
def current() -> None:
    """Show the schema revision of the database and the newest one this version ships.

    Example: spondybot db current
    """
    with app_context(check_schema=False) as ctx:
        name = database_name(ctx.settings.database_url)
        typer.echo(f"database: {migrate.current_revision(ctx.engine) or 'empty'} ({name})")
        typer.echo(f"newest:   {migrate.head_revision()}")
