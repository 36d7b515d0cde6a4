"""`spondybot export`: pseudonymised research exports and their data dictionary."""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import FrameType, TracebackType
from typing import Annotated, Any

import typer

from bot.cli.common import app_context, echo_json, fail
from bot.export.service import (
    FORMATS,
    ExportError,
    ExportRequest,
    check_request,
    run_export,
    write_dictionary,
)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} must be a date like 2026-03-31, not {value!r}")


def _operator() -> str:
    """Who runs the export, as the operating system knows them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


TERMINATED = 128 + signal.SIGTERM


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Turns SIGTERM into SystemExit while the export runs, so its temporary output is removed
    like after Ctrl-C instead of being left behind by an abrupt stop."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(TERMINATED)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _RichProgress:
    """A progress bar on standard error (only used on a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task: Any = None

    def __enter__(self) -> _RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.__exit__(kind, error, trace)

    def start(self, total: int) -> None:
        self._task = self._progress.add_task("exporting", total=total)

    def advance(self, count: int) -> None:
        self._progress.advance(self._task, count)


def export(
    format: Annotated[
        str | None,
        typer.Option("--format", help=f"One of {', '.join(FORMATS)}.", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="File to write (a new, empty directory for fhir). Without it, CSV goes to "
            "standard output. With --dictionary: the directory for the dictionary files.",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="First day (UTC, YYYY-MM-DD) of scheduled questionnaires.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last day (UTC, YYYY-MM-DD) of scheduled questionnaires.")
    ] = None,
    physician: Annotated[
        int | None, typer.Option("--physician", help="Only this physician's patients.")
    ] = None,
    shift_dates: Annotated[
        bool,
        typer.Option(
            "--shift-dates",
            help="Move each patient's dates by one secret per-patient offset (intervals kept).",
        ),
    ] = False,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who exports, for the audit trail (default: your OS user)."),
    ] = None,
    dictionary: Annotated[
        bool,
        typer.Option(
            "--dictionary",
            help="Write the data dictionary (Markdown and CSV) instead of data.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print what was written as one JSON object on standard output (needs --out).",
        ),
    ] = False,
) -> None:
    """Export pseudonymised research data: wide or long CSV, Parquet, or FHIR R4 NDJSON.

    Every export is recorded in the audit trail (see `spondybot audit list`). Needs
    PSEUDONYM_KEY. Example: spondybot export --format wide --since 2026-01-01 --out data.csv
    """
    if as_json and out is None:
        fail("--json needs --out: without it the data itself goes to standard output")
    if dictionary:
        if out is None:
            from bot.export.columns import dictionary_markdown

            typer.echo(dictionary_markdown(), nl=False)
            return
        try:
            written = write_dictionary(out)
        except ExportError as error:
            fail(str(error))
        if as_json:
            echo_json({"dictionary": [str(path) for path in written]})
            return
        for path in written:
            typer.echo(f"wrote {path}", err=True)
        return
    if format is None:
        fail(f"--format is required: one of {', '.join(FORMATS)}")
    request = ExportRequest(
        format=format,
        by=by if by is not None else _operator(),
        out=out,
        since=_day(since, "--since"),
        until=_day(until, "--until"),
        physician_id=physician,
        shift_dates=shift_dates,
    )
    try:
        check_request(request)
    except ExportError as error:
        fail(str(error))
    with app_context() as ctx, terminate_cleanly():
        try:
            if out is not None and sys.stderr.isatty():
                with _RichProgress() as progress:
                    result = run_export(ctx, request, progress=progress)
            else:
                result = run_export(ctx, request, stdout=sys.stdout.buffer)
        except ExportError as error:
            fail(str(error))
        except OSError as error:
            fail(f"could not write the export: {error.strerror or error}")
    if as_json:
        echo_json(result)
        return
    shifted = ", dates shifted" if result.dates_shifted else ""
    typer.echo(
        f"exported {result.rows} {'resources' if format == 'fhir' else 'rows'} "
        f"({result.format}{shifted}) to {result.destination}; sha256 {result.sha256}; "
        f"audit entry {result.audit_id}",
        err=True,
    )
