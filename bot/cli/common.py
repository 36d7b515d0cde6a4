"""Helpers every CLI command shares: settings loading, one-line errors, JSON output."""

from __future__ import annotations

import dataclasses
import getpass
import html
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from sqlalchemy.exc import OperationalError

from bot.clock import Clock
from bot.config import Settings, SettingsError, database_name, load_settings
from bot.context import AppContext
from bot.services import keyed
from storage import migrate

USAGE_ERROR = 2

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
_TAG = re.compile(r"<[^>]+>")


def plain(rendered: str) -> str:
    """A message rendered for chat (HTML) as plain terminal text."""
    return html.unescape(_TAG.sub("", rendered))


def cli_actor() -> str:
    """Who ran the command, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"[:120]
    except (KeyError, OSError):
        return "cli"


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """Prints one line to stderr and exits; used for every expected, explainable failure."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    """The deployment's settings, or a one-line error naming the bad setting (exit code 2)."""
    try:
        return load_settings()
    except SettingsError as error:
        fail(str(error))


@contextmanager
def app_context(clock: Clock | None = None, *, check_schema: bool = True) -> Iterator[AppContext]:
    """An `AppContext` for one CLI command, closed when the command ends.

    Commands refuse to work on a database whose schema is missing or behind this version,
    rather than failing halfway with a database error; the message names the database opened,
    so a command run against the wrong one says so.
    """
    ctx = AppContext.from_settings(settings_or_exit(), clock=clock)
    try:
        if check_schema:
            name = database_name(ctx.settings.database_url)
            try:
                current = migrate.current_revision(ctx.engine)
            except OperationalError as error:
                fail(f"cannot open the database {name} (DATABASE_URL): {error.orig}")
            if current is None:
                fail(
                    f"the database {name} has no spondybot schema (DATABASE_URL): "
                    "run `spondybot db upgrade` first"
                )
            if current != migrate.head_revision():
                fail(
                    f"the database {name} has an older schema (DATABASE_URL): "
                    "run `spondybot db upgrade` first"
                )
        yield ctx
    finally:
        ctx.close()


def require_server_secret(ctx: AppContext, *, purpose: str) -> None:
    """Stops a production command in one line when PSEUDONYM_KEY is not set: it keys the
    enrollment codes and the counting of wrong ones (docs/security.md)."""
    try:
        keyed.server_key(ctx, purpose=purpose)
    except keyed.MissingSecretError as error:
        fail(str(error))


def echo_json(value: Any) -> None:
    """Prints one JSON object for scripts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    typer.echo(json.dumps(value, default=str, ensure_ascii=False, sort_keys=True))
