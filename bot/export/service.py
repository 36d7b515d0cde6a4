"""The research export as a service: checks a request, streams the chosen format to a file,
a directory or a stream, and records who exported what in the export audit trail.

Nothing is left behind by a failed export: files are written under a temporary name in the
target directory and renamed into place only once complete. The database is read in
keyset-paginated batches, one short transaction each, so memory stays flat and the bot's
writers are never held up for the length of an export.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any, Final, Protocol, TypeAlias

from bot.context import AppContext
from bot.domain.instruments import ITEM_CODES
from bot.export import fhir
from bot.export.pseudonyms import Pseudonymizer
from bot.export.records import Baseline, ExportRecord, RecordBuilder, WideText, baselines
from bot.export.tables import write_long_csv, write_parquet, write_wide_csv
from storage import exports, physicians

FORMATS: Final = ("wide", "long", "parquet", "fhir")
NEEDS_OUT: Final = frozenset({"parquet", "fhir"})
DURATION_ITEM: Final = "q6"
"""The item answered in minutes; its raw answer is exported beside its 0–10 value (spec §1)."""
BATCH_SIZE: Final = 5000
"""Administrations per batch (with about seven answers each): a few MB in memory, and few
enough round trips that a busy database server does not dominate the export's time."""
GC_THRESHOLD: Final = 100_000
"""Allocations between runs of the cyclic garbage collector while an export streams (Python's
default is 700)."""


class ExportError(ValueError):
    """An export that cannot be carried out; the message is one line for the operator."""


class Progress(Protocol):
    """Receives progress of a long export (a progress bar on a terminal)."""

    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...


@dataclass(frozen=True)
class ExportRequest:
    """What to export, where to, and who asks.

    `since` and `until` are calendar days in UTC, both included, compared with the slot each
    questionnaire was scheduled for (real dates, also when `shift_dates` is set).
    `out` is None for standard output (CSV formats only).
    """

    format: str
    by: str
    out: Path | None = None
    since: date | None = None
    until: date | None = None
    physician_id: int | None = None
    shift_dates: bool = False

    def filters(self) -> dict[str, Any]:
        """The filters and options as recorded in the audit trail and the FHIR manifest."""
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "physician": self.physician_id,
            "shift_dates": self.shift_dates,
        }

    def scope(self) -> exports.ExportScope:
        """The storage scope: [since 00:00 UTC, the day after until 00:00 UTC)."""
        since = None if self.since is None else datetime.combine(self.since, time(), UTC)
        until = (
            None
            if self.until is None
            else datetime.combine(self.until + timedelta(days=1), time(), UTC)
        )
        return exports.ExportScope(since=since, until=until, physician_id=self.physician_id)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and the audit entry that records it."""

    audit_id: int
    format: str
    rows: int
    sha256: str
    destination: str
    dates_shifted: bool


@dataclass(frozen=True)
class ExportAuditEntry:
    """One audited export, as `spondybot audit list` shows it."""

    audit_id: int
    at: datetime
    by: str
    format: str
    filters: dict[str, Any]
    rows: int
    sha256: str
    destination: str | None


def check_request(request: ExportRequest) -> None:
    """Refuses a request that cannot work, before anything is opened or written."""
    if request.format not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {request.format!r}")
    if request.since is not None and request.until is not None and request.since > request.until:
        raise ExportError(
            f"--since ({request.since}) is after --until ({request.until}): nothing to export"
        )
    if request.format in NEEDS_OUT and request.out is None:
        raise ExportError(f"--format {request.format} writes files: give --out PATH")
    if not request.by.strip():
        raise ExportError("--by must not be empty")
    if request.out is not None:
        check_destination(request.out, directory=request.format == "fhir")


def check_destination(out: Path, *, directory: bool) -> None:
    """Refuses an output path that cannot be written, before the export starts."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"--out: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"--out: cannot write to directory {parent}")
    if directory:
        if out.exists() and not out.is_dir():
            raise ExportError(f"--out: {out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()):
            raise ExportError(f"--out: directory {out} is not empty")
    elif out.is_dir():
        raise ExportError(f"--out: {out} is a directory; give a file name")


def _pseudonymizer(ctx: AppContext) -> Pseudonymizer:
    key = ctx.settings.pseudonym_key
    if key is None:
        raise ExportError(
            "PSEUDONYM_KEY is not set: exports need it to pseudonymise patients (see .env.example)"
        )
    return Pseudonymizer(key.get_secret_value().encode("utf-8"))


def baselines_of(ctx: AppContext, scope: exports.ExportScope) -> dict[str, Baseline]:
    """Each covered patient's baseline BASDAI, for the BASDAI response columns."""
    with ctx.session() as session:
        return baselines(exports.basdai_history(session=session, scope=scope))


def _fetch(
    ctx: AppContext, scope: exports.ExportScope, after: int, *, details: bool, batch_size: int
) -> list[exports.AdministrationRow]:
    """One batch after `after`, in its own short transaction."""
    with ctx.session() as session:
        return exports.fetch_administration_batch(
            session=session,
            scope=scope,
            after_id=after,
            limit=batch_size,
            item_codes=ITEM_CODES,
            duration_item=DURATION_ITEM,
            answer_details=details,
        )


def _batches(
    ctx: AppContext,
    scope: exports.ExportScope,
    builder: RecordBuilder,
    *,
    details: bool,
    progress: Progress | None,
    batch_size: int,
) -> Iterator[list[ExportRecord]]:
    """Export records in batches (keyset pagination, one short transaction per batch).

    The next batch is read on a worker thread while this one is written, so the database's
    work (SQLite's row stepping, a PostgreSQL round trip) overlaps with formatting; at most two
    batches are in memory.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-fetch") as pool:
        pending = pool.submit(_fetch, ctx, scope, 0, details=details, batch_size=batch_size)
        try:
            while True:
                rows = pending.result()
                if not rows:
                    return
                pending = pool.submit(
                    _fetch,
                    ctx,
                    scope,
                    rows[-1].administration_id,
                    details=details,
                    batch_size=batch_size,
                )
                yield [builder.record(row) for row in rows]
                if progress is not None:
                    progress.advance(len(rows))
        finally:
            pending.cancel()


_Pivoted: TypeAlias = dict[int, tuple[str | None, ...]]
"""A text batch's answers by administration id (see `storage.exports.fetch_answer_text_batch`)."""


def _wide_text(
    ctx: AppContext,
    scope: exports.ExportScope,
    builder: RecordBuilder,
    *,
    progress: Progress | None,
    batch_size: int,
) -> Iterator[list[WideText]]:
    """Wide CSV rows in batches, read as text: what CSV writes is read as the text it writes, so
    no value becomes a Python object only to be formatted back.

    Two workers, each with its own short transaction per query: as soon as a batch's
    administrations are read, its answers are pivoted on one connection while the next batch's
    administrations are read on the other, and this thread builds and writes the batch before.
    At most two batches are in memory.
    """

    def administrations(after: int) -> list[exports.AdministrationText]:
        with ctx.session() as session:
            return exports.fetch_administration_text_batch(
                session=session, scope=scope, after_id=after, limit=batch_size
            )

    def answers(after: int, last: int) -> _Pivoted:
        with ctx.session() as session:
            return exports.fetch_answer_text_batch(
                session=session,
                scope=scope,
                after_id=after,
                last_id=last,
                limit=batch_size,
                item_codes=ITEM_CODES,
                duration_item=DURATION_ITEM,
            )

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="export-fetch") as pool:

        def read(after: int) -> tuple[list[exports.AdministrationText], Future[_Pivoted] | None]:
            rows = administrations(after)
            if not rows:
                return rows, None
            return rows, pool.submit(answers, after, rows[-1].administration_id)

        pending = pool.submit(read, 0)
        try:
            while True:
                rows, pivoted = pending.result()
                if pivoted is None:
                    return
                pending = pool.submit(read, rows[-1].administration_id)
                yield builder.wide_text(rows, pivoted.result())
                if progress is not None:
                    progress.advance(len(rows))
        finally:
            pending.cancel()


@contextlib.contextmanager
def _temporary_file(out: Path) -> Iterator[Path]:
    """A temporary file beside `out`, renamed to `out` on success and removed on failure."""
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _temporary_directory(out: Path) -> Iterator[Path]:
    """A temporary directory beside `out`, renamed to `out` on success, removed on failure."""
    temporary = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    try:
        yield temporary
        if out.is_dir():
            out.rmdir()  # checked empty beforehand; rename needs it gone or empty
        os.replace(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _write_fhir(
    ctx: AppContext,
    directory: Path,
    request: ExportRequest,
    builder: RecordBuilder,
    progress: Progress | None,
    batch_size: int,
) -> tuple[int, str]:
    """Writes the NDJSON files and the manifest; returns (resources, SHA-256 of the manifest)."""
    scope = request.scope()
    files = fhir.NdjsonDirectory(directory)
    try:
        with ctx.session() as session:
            versions = exports.instrument_versions(session=session, scope=scope)
        for version in versions:
            files.write(fhir.questionnaire(version))
        after = 0
        while True:
            with ctx.session() as session:
                patients = exports.fetch_patient_batch(
                    session=session, scope=scope, after_id=after, limit=batch_size
                )
            if not patients:
                break
            after = patients[-1].patient_id
            for row in patients:
                files.write(fhir.patient(builder.patient(row)))
        after = 0
        while True:
            with ctx.session() as session:
                labs = exports.fetch_referenced_lab_batch(
                    session=session, scope=scope, after_id=after, limit=batch_size
                )
            if not labs:
                break
            after = labs[-1].lab_id
            for lab in labs:
                files.write(fhir.lab_observation(*builder.lab(lab)))
        for batch in _batches(
            ctx, scope, builder, details=True, progress=progress, batch_size=batch_size
        ):
            for record in batch:
                files.write(fhir.questionnaire_response(record))
                for observation in fhir.score_observations(record):
                    files.write(observation)
    except BaseException:
        files.abort()
        raise
    hashes = files.close()
    summary = fhir.manifest(
        transaction_time=ctx.clock.now(),
        counts=files.counts,
        hashes=hashes,
        shifted=request.shift_dates,
        filters=request.filters(),
    )
    text = fhir.dumps(summary).encode("utf-8")
    (directory / "manifest.json").write_bytes(text)
    digest = hashlib.sha256(text).hexdigest()
    return sum(files.counts.values()), digest


@contextlib.contextmanager
def _rare_collections() -> Iterator[None]:
    """Runs the cyclic garbage collector rarely while an export streams.

    An export allocates millions of short-lived objects without cycles (rows, cells), which
    reference counting frees at once; at the default threshold the collector would still run
    every 700 allocations and, as each batch outlives several runs, walk the batch and every
    long-lived object of the process again and again. Cycles are still collected, only later.
    The threshold is process-wide; exports run in their own command.
    """
    first, *older = gc.get_threshold()
    gc.set_threshold(max(first, GC_THRESHOLD), *older)
    try:
        yield
    finally:
        gc.set_threshold(first, *older)


@_rare_collections()
def run_export(
    ctx: AppContext,
    request: ExportRequest,
    *,
    stdout: IO[bytes] | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> ExportResult:
    """Runs one export and records it in the audit trail.

    CSV goes to `request.out` or, without it, to `stdout`; Parquet to a file; FHIR to a
    directory of NDJSON files with a `manifest.json`. Raises `ExportError` for a request that
    cannot work, before anything is written.
    """
    check_request(request)
    pseudonymizer = _pseudonymizer(ctx)
    scope = request.scope()
    with ctx.session() as session:
        if (
            request.physician_id is not None
            and physicians.get_physician(session=session, physician_id=request.physician_id) is None
        ):
            raise ExportError(f"--physician: no physician with id {request.physician_id}")
        total = exports.count_administrations(session=session, scope=scope)
    if request.out is None and stdout is None:
        raise ExportError("no output: give --out PATH")
    builder = RecordBuilder(
        pseudonymizer, shift_dates=request.shift_dates, baselines=baselines_of(ctx, scope)
    )
    if progress is not None:
        progress.start(total)
    shifted = request.shift_dates
    csv_writers: dict[str, Callable[..., tuple[int, str]]] = {
        "wide": write_wide_csv,
        "long": write_long_csv,
    }
    out = request.out
    destination = "stdout" if out is None else str(out.resolve())

    def audit(rows: int, digest: str) -> int:
        # Recorded before the output is renamed into place: no export leaves unaudited.
        with ctx.session() as session:
            entry = exports.record_export(
                session=session,
                at=ctx.clock.now(),
                by=request.by.strip(),
                format=request.format,
                filters=request.filters(),
                rows=rows,
                sha256=digest,
                destination=destination,
            )
            assert entry.id is not None
            return entry.id

    if request.format in csv_writers:
        write = csv_writers[request.format]
        batches: Iterator[list[Any]] = (
            _wide_text(ctx, scope, builder, progress=progress, batch_size=batch_size)
            if request.format == "wide"
            else _batches(
                ctx, scope, builder, details=True, progress=progress, batch_size=batch_size
            )
        )
        if out is None:
            assert stdout is not None
            rows, digest = write(stdout, batches, shifted=shifted)
            stdout.flush()
            audit_id = audit(rows, digest)
        else:
            with _temporary_file(out) as temporary:
                with temporary.open("wb") as handle:
                    rows, digest = write(handle, batches, shifted=shifted)
                audit_id = audit(rows, digest)
    elif request.format == "parquet":
        assert out is not None
        with _temporary_file(out) as temporary:
            batches = _batches(
                ctx, scope, builder, details=False, progress=progress, batch_size=batch_size
            )
            rows, digest = write_parquet(temporary, batches, shifted=shifted)
            audit_id = audit(rows, digest)
    else:
        assert out is not None
        with _temporary_directory(out) as temporary:
            rows, digest = _write_fhir(ctx, temporary, request, builder, progress, batch_size)
            audit_id = audit(rows, digest)
    return ExportResult(
        audit_id=audit_id,
        format=request.format,
        rows=rows,
        sha256=digest,
        destination=destination,
        dates_shifted=shifted,
    )


def list_export_audit(ctx: AppContext, *, limit: int | None = None) -> list[ExportAuditEntry]:
    """Audited exports, most recent first."""
    with ctx.session() as session:
        return [
            ExportAuditEntry(
                audit_id=entry.id or 0,
                at=entry.at,
                by=entry.by,
                format=entry.format,
                filters=json.loads(entry.filters),
                rows=entry.rows,
                sha256=entry.sha256,
                destination=entry.destination,
            )
            for entry in exports.list_exports(session=session, limit=limit)
        ]


DICTIONARY_FILES: Final = ("data-dictionary.md", "data-dictionary.csv")


def write_dictionary(directory: Path) -> list[Path]:
    """Writes the data dictionary as Markdown and CSV into `directory` (created if missing, as
    `--out dictionary/` suggests); returns the paths."""
    from bot.export.columns import dictionary_csv, dictionary_markdown

    if directory.exists() and not directory.is_dir():
        raise ExportError(f"--out: {directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"--out: cannot create directory {directory}: {error.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ExportError(f"--out: cannot write to directory {directory}")
    written = []
    for name, text in zip(DICTIONARY_FILES, (dictionary_markdown(), dictionary_csv()), strict=True):
        target = directory / name
        with _temporary_file(target) as temporary:
            temporary.write_text(text, encoding="utf-8")
        written.append(target)
    return written
