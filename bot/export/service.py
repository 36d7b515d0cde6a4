"""The research export as a service: checks a request, streams the chosen format to a file,
a directory or a stream, and records who exported what in the export audit trail.

Nothing is left behind by a failed export: files are written under a temporary name in the
target directory and renamed into place only once complete. The database is read in
keyset-paginated batches, one short transaction each, so memory stays flat and the bot's
writers are never held up for the length of an export.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, Final, Protocol, TypeVar

from sqlmodel import Session

from bot.context import AppContext
from bot.domain.instruments import ITEM_CODES
from bot.export import course, fhir
from bot.export.columns import CHECKIN_COLUMNS, THERAPY_COLUMNS, CsvLines, long_csv
from bot.export.pseudonyms import Pseudonymizer
from bot.export.records import Baseline, ExportRecord, RecordBuilder, WideText
from bot.export.tables import (
    write_long_csv,
    write_parquet,
    write_table_csv,
    write_table_parquet,
    write_wide_csv,
)
from bot.rare_collections import rare_collections
from storage import exports, physicians

FORMATS: Final = (
    "wide",
    "long",
    "parquet",
    "fhir",
    "therapy",
    "checkins",
    "therapy-parquet",
    "checkins-parquet",
)
NEEDS_OUT: Final = frozenset({"parquet", "fhir", "therapy-parquet", "checkins-parquet"})
DURATION_ITEM: Final = "q6"
"""The item answered in minutes; its raw answer is exported beside its 0–10 value (spec §1)."""
READ_AHEAD: Final = 2
"""Batches whose reads are under way while one is built and written: with one, the database
sat idle whenever a batch's reads ended before the batch before it was written, and the
export waited on each slowest read in turn (docs/benchmarks.md, "Export")."""
BATCH_SIZE: Final = 5000
"""Administrations per batch (with about seven answers each): a few MB in memory, and few
enough round trips that a busy database server does not dominate the export's time."""


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

    def published_filters(self) -> dict[str, Any]:
        """The filters as the FHIR manifest publishes them: with shifted dates, the real
        --since and --until would anchor the shifted dates, so only whether they were given is
        said (docs/security.md, "Date shifting")."""
        filters = self.filters()
        if self.shift_dates:
            for bound in ("since", "until"):
                if filters[bound] is not None:
                    filters[bound] = "withheld"
        return filters

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


def baselines_of(
    ctx: AppContext, scope: exports.ExportScope, patient_ids: list[int]
) -> dict[str, Baseline]:
    """The baseline BASDAI of each of `patient_ids`, for the BASDAI response columns."""
    with ctx.session() as session:
        return _baselines_in(session, scope, patient_ids)


def _baselines_in(
    session: Session, scope: exports.ExportScope, patient_ids: list[int]
) -> dict[str, Baseline]:
    """`baselines_of` within a unit of work already open (a batch's, on its worker): one row
    per patient, chosen by the database."""
    return {
        row.research_id: Baseline(row.administration_id, row.basdai)
        for row in exports.basdai_baselines(session=session, scope=scope, patient_ids=patient_ids)
    }


class _OfPatient(Protocol):
    @property
    def research_id(self) -> str: ...


_Row = TypeVar("_Row", bound=_OfPatient)
R = TypeVar("R")

MAX_PATIENTS_PER_BATCH: Final = 500
"""At most this many patients' ids are sent with one batch query."""


@dataclass(frozen=True)
class _PatientBatch:
    """A few patients whose rows are read together, and each one's place in pseudonym order."""

    patient_ids: list[int]
    rank: dict[str, int]
    """Pseudonym order, by research id."""

    def ordered(self, rows: list[_Row]) -> list[_Row]:
        """Rows read in patient then time order, put in pseudonym then time order (the sort is
        stable and a patient's dates are all shifted alike, so time order is kept)."""
        rank = self.rank
        rows.sort(key=lambda row: rank[row.research_id])
        return rows


def _patient_batches(
    ctx: AppContext, scope: exports.ExportScope, builder: RecordBuilder, batch_size: int
) -> list[_PatientBatch]:
    """The covered patients in pseudonym order, cut into batches of about `batch_size`
    administrations.

    Rows follow pseudonyms and then each patient's (shifted) time, never database ids, which
    grow with time across all patients (docs/security.md, "Date shifting").
    """
    with ctx.session() as session:
        patients = exports.covered_patients(session=session, scope=scope)
    patients.sort(key=lambda patient: builder.pseudonym(patient.research_id))
    batches: list[_PatientBatch] = []
    ids: list[int] = []
    rank: dict[str, int] = {}
    size = 0
    for position, patient in enumerate(patients):
        ids.append(patient.patient_id)
        rank[patient.research_id] = position
        size += patient.administrations
        if size >= batch_size or len(ids) >= MAX_PATIENTS_PER_BATCH:
            batches.append(_PatientBatch(ids, rank))
            ids, rank, size = [], {}, 0
    if ids:
        batches.append(_PatientBatch(ids, rank))
    return batches


def _fetch(
    ctx: AppContext, scope: exports.ExportScope, batch: _PatientBatch, *, details: bool
) -> tuple[list[exports.AdministrationRow], dict[str, Baseline]]:
    """One batch of patients' administrations and baselines, in its own short transaction."""
    with ctx.session() as session:
        found = _baselines_in(session, scope, batch.patient_ids)
        rows = exports.fetch_administration_batch(
            session=session,
            scope=scope,
            patient_ids=batch.patient_ids,
            item_codes=ITEM_CODES,
            duration_item=DURATION_ITEM,
            answer_details=details,
        )
    return batch.ordered(rows), found


def _batches(
    ctx: AppContext,
    scope: exports.ExportScope,
    builder: RecordBuilder,
    *,
    details: bool,
    progress: Progress | None,
    batch_size: int,
) -> Iterator[list[ExportRecord]]:
    """Export records in batches of patients (one short transaction per batch), in pseudonym
    then time order.

    The next batch is read on a worker thread while this one is written, so the database's
    work (SQLite's row stepping, a PostgreSQL round trip) overlaps with formatting; at most two
    batches are in memory.
    """
    patient_batches = _patient_batches(ctx, scope, builder, batch_size)
    if not patient_batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-fetch") as pool:
        pending = pool.submit(_fetch, ctx, scope, patient_batches[0], details=details)
        try:
            for following in [*patient_batches[1:], None]:
                rows, found = pending.result()
                if following is not None:
                    pending = pool.submit(_fetch, ctx, scope, following, details=details)
                record = builder.for_batch(found).record
                yield [record(row) for row in rows]
                if progress is not None:
                    progress.advance(len(rows))
        finally:
            pending.cancel()


_Answers = TypeVar("_Answers")
"""A text batch's answers by administration id, as one of storage's text answer reads gives
them (pivoted for the wide table, one by item for the long one)."""


def _text_batches(
    ctx: AppContext,
    scope: exports.ExportScope,
    builder: RecordBuilder,
    *,
    administrations: Callable[..., list[_Row]],
    answers: Callable[..., _Answers],
    build: Callable[[RecordBuilder, list[_Row], _Answers], R],
    progress: Progress | None,
    batch_size: int,
) -> Iterator[R]:
    """Rows in batches of patients, read as text: what CSV writes is read as the text it
    writes, so no value becomes a Python object only to be formatted back. `administrations`
    reads a batch (keyword-only: session, scope, patient_ids), `answers` its answers
    (keyword-only: session, patient_ids), `build`
    makes the rows.

    Three workers, each with its own short transaction per query: a batch's administrations,
    its answers and its patients' baselines are read at once on three connections, while this
    thread builds and writes the batch before, `READ_AHEAD` batches ahead. At most
    `READ_AHEAD` + 1 batches are in memory.
    """

    def administrations_of(batch: _PatientBatch) -> list[_Row]:
        with ctx.session() as session:
            rows = administrations(session=session, scope=scope, patient_ids=batch.patient_ids)
        return batch.ordered(rows)

    def answers_of(batch: _PatientBatch) -> _Answers:
        with ctx.session() as session:
            return answers(session=session, patient_ids=batch.patient_ids)

    def baselines_of(batch: _PatientBatch) -> dict[str, Baseline]:
        with ctx.session() as session:
            return _baselines_in(session, scope, batch.patient_ids)

    patient_batches = _patient_batches(ctx, scope, builder, batch_size)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="export-fetch") as pool:

        def read(
            batch: _PatientBatch,
        ) -> tuple[Future[list[_Row]], Future[_Answers], Future[dict[str, Baseline]]]:
            return (
                pool.submit(administrations_of, batch),
                pool.submit(answers_of, batch),
                pool.submit(baselines_of, batch),
            )

        waiting = deque(read(batch) for batch in patient_batches[:READ_AHEAD])
        upcoming = iter(patient_batches[READ_AHEAD:])
        try:
            while waiting:
                rows_future, answers_future, baselines_future = waiting.popleft()
                rows, given = rows_future.result(), answers_future.result()
                found = baselines_future.result()
                following = next(upcoming, None)
                if following is not None:
                    waiting.append(read(following))
                yield build(builder.for_batch(found), rows, given)
                if progress is not None:
                    progress.advance(len(rows))
        finally:
            for futures in waiting:
                for future in futures:
                    future.cancel()


def _wide_text(
    ctx: AppContext,
    scope: exports.ExportScope,
    builder: RecordBuilder,
    *,
    progress: Progress | None,
    batch_size: int,
) -> Iterator[list[WideText]]:
    """The wide table's rows in batches of patients, read as text; each batch's answers are
    pivoted by the database into one row per administration."""
    return _text_batches(
        ctx,
        scope,
        builder,
        administrations=exports.fetch_administration_text_batch,
        answers=_pivoted_answers(scope),
        build=RecordBuilder.wide_text,
        progress=progress,
        batch_size=batch_size,
    )


def _wide_values(
    ctx: AppContext,
    scope: exports.ExportScope,
    builder: RecordBuilder,
    *,
    progress: Progress | None,
    batch_size: int,
) -> Iterator[list[tuple[object, ...]]]:
    """The typed wide table's rows (Parquet) in batches of patients: read as `_wide_text`
    reads them, times in microseconds."""
    return _text_batches(
        ctx,
        scope,
        builder,
        administrations=exports.fetch_administration_values_batch,
        answers=_pivoted_answers(scope),
        build=RecordBuilder.wide_values,
        progress=progress,
        batch_size=batch_size,
    )


def _pivoted_answers(
    scope: exports.ExportScope,
) -> Callable[..., dict[int, tuple[str | None, ...]]]:
    """A batch's answers pivoted by the database into one row of text per administration."""
    return partial(
        exports.fetch_answer_text_batch,
        scope=scope,
        item_codes=ITEM_CODES,
        duration_item=DURATION_ITEM,
    )


def _long_text(
    ctx: AppContext,
    scope: exports.ExportScope,
    builder: RecordBuilder,
    *,
    progress: Progress | None,
    batch_size: int,
) -> Iterator[CsvLines]:
    """The long table's rows (CSV text) in batches of patients, read as text; each batch's
    answers come one by item with their versions and times."""

    return _text_batches(
        ctx,
        scope,
        builder,
        administrations=exports.fetch_administration_text_batch,
        answers=partial(exports.fetch_answer_detail_text_batch, scope=scope),
        build=long_csv,
        progress=progress,
        batch_size=batch_size,
    )


@contextlib.contextmanager
def _temporary_file(out: Path) -> Iterator[Path]:
    """A temporary file beside `out` (0600, as mkstemp makes it), renamed to `out` on success
    and removed on failure."""
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
    """A temporary directory beside `out` (0700, its files 0600), renamed to `out` on success,
    removed on failure."""
    temporary = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    try:
        yield temporary
        for written in temporary.iterdir():
            written.chmod(0o600)  # like the files mkstemp makes: health data, owner only
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
        patient_batches = _patient_batches(ctx, scope, builder, batch_size)
        for patient_batch in patient_batches:
            for research_id in patient_batch.rank:
                files.write(fhir.patient(builder.pseudonym(research_id)))
        for patient_batch in patient_batches:
            with ctx.session() as session:
                labs = exports.fetch_referenced_lab_batch(
                    session=session, scope=scope, patient_ids=patient_batch.patient_ids
                )
            for lab in patient_batch.ordered(labs):
                files.write(fhir.lab_observation(*builder.lab(lab)))
        for therapy_row in course.therapy_rows(ctx, builder, physician_id=request.physician_id):
            files.write(fhir.medication_statement(therapy_row))
        for records in _batches(
            ctx, scope, builder, details=True, progress=progress, batch_size=batch_size
        ):
            for record in records:
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
        filters=request.published_filters(),
    )
    text = fhir.dumps(summary).encode("utf-8")
    (directory / "manifest.json").write_bytes(text)
    digest = hashlib.sha256(text).hexdigest()
    return sum(files.counts.values()), digest


@rare_collections()
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
    # Baselines are read with each batch (`RecordBuilder.for_batch`).
    builder = RecordBuilder(pseudonymizer, shift_dates=request.shift_dates)
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

    if request.format in ("therapy", "checkins", "therapy-parquet", "checkins-parquet"):
        name = request.format.removesuffix("-parquet")
        table: tuple[list[Any], Any] = (
            (course.therapy_rows(ctx, builder, physician_id=request.physician_id), THERAPY_COLUMNS)
            if name == "therapy"
            else (course.checkin_rows(ctx, builder, scope=scope), CHECKIN_COLUMNS)
        )
        items, columns = table
        if request.format.endswith("-parquet"):
            assert out is not None
            with _temporary_file(out) as temporary:
                rows, digest = write_table_parquet(
                    temporary, columns, items, shifted=shifted, table=name
                )
                audit_id = audit(rows, digest)
        elif out is None:
            assert stdout is not None
            rows, digest = write_table_csv(stdout, columns, items, shifted=shifted)
            stdout.flush()
            audit_id = audit(rows, digest)
        else:
            with _temporary_file(out) as temporary:
                with temporary.open("wb") as handle:
                    rows, digest = write_table_csv(handle, columns, items, shifted=shifted)
                audit_id = audit(rows, digest)
    elif request.format in csv_writers:
        write = csv_writers[request.format]
        batches: Iterator[list[WideText]] | Iterator[CsvLines] = (
            _wide_text(ctx, scope, builder, progress=progress, batch_size=batch_size)
            if request.format == "wide"
            else _long_text(ctx, scope, builder, progress=progress, batch_size=batch_size)
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
            rows, digest = write_parquet(
                temporary,
                _wide_values(ctx, scope, builder, progress=progress, batch_size=batch_size),
                shifted=shifted,
            )
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
