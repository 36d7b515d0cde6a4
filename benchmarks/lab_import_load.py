"""A large lab import while patients answer: the bot's writes, and the importer's memory.

`spondybot lab import` runs as its own process on a file of `lines` CRP values (one line in
997 malformed), while patients' answers are written, one unit of work each, by this process
on the same database, as the bot writes them. Measured: how long each answer's unit of work
took (on SQLite it waits for the import's write lock), whether every answer was stored, the
import's peak resident memory, and whether its report named every bad line.

The full run (100,000 lines) is `python -m benchmarks lab_import_load`: on SQLite, and on
PostgreSQL too when `SPONDYBOT_TEST_POSTGRES_URL` names a server (each run in a schema of its
own); `SPONDYBOT_BENCH_DATABASES=postgresql` (or `sqlite`) runs only one of them. The fault
suite runs a smaller file on both (`tests/faults/test_large_import.py`).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func
from sqlmodel import col, select

from benchmarks import PSEUDONYM_KEY
from benchmarks.report import Report
from bot.clock import SystemClock
from bot.config import load_settings
from bot.context import AppContext
from bot.domain import instruments
from bot.services import staff
from storage import administrations, migrate
from storage.models import Administration, Answer

POSTGRES_URL_ENV = "SPONDYBOT_TEST_POSTGRES_URL"
DATABASES_ENV = "SPONDYBOT_BENCH_DATABASES"
PATIENTS = 200
ANSWERING = 5
BAD_EVERY = 997
WRITER_BUSY_TIMEOUT_MS = 2_000
"""How long an answer may wait for SQLite's write lock here before it fails (the bot waits
15 s); a one-transaction import of a large file holds it far longer."""


@dataclass(frozen=True)
class ImportUnderLoad:
    """What one run measured."""

    lines: int
    import_seconds: float
    import_exit_code: int
    peak_rss_mb: float
    bad_lines: list[int]
    reported_bad_lines: list[int]
    stored: int
    answers_written: int
    answers_failed: int
    answers_stored: int
    answer_waits: list[float]

    @property
    def max_wait(self) -> float:
        return max(self.answer_waits, default=0.0)

    @property
    def p99_wait(self) -> float:
        waits = sorted(self.answer_waits)
        return waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else 0.0


def _context(database_url: str) -> AppContext:
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        clinic_timezone="UTC",
        sqlite_busy_timeout_ms=WRITER_BUSY_TIMEOUT_MS,
        pseudonym_key=PSEUDONYM_KEY,
    )
    return AppContext.from_settings(settings, clock=SystemClock())


def write_lab_file(path: Path, lines: int, refs: list[str]) -> list[int]:
    """A lab export of `lines` CRP values for `refs` in turn; returns the malformed lines."""
    start = datetime.now(UTC) - timedelta(days=200)
    bad = []
    with path.open("w", encoding="utf-8") as handle:
        handle.write("patient;test;value;unit;drawn\n")
        for index in range(lines):
            line = index + 2
            value = f"{index % 90 + 1},{index % 10}"
            if index % BAD_EVERY == BAD_EVERY - 1:
                value = "n/a"
                bad.append(line)
            drawn = (start + timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%MZ")
            handle.write(f"{refs[index % len(refs)]};CRP;{value};mg/L;{drawn}\n")
    return bad


def _answer_while(
    importing: Callable[[], bool], ctx: AppContext, patient_ids: list[int]
) -> tuple[int, int, list[float]]:
    """Patients answer questionnaires, one answer per unit of work, until the import ends;
    returns (answers written, answers whose unit of work failed, each unit's duration)."""
    written = failed = 0
    waits: list[float] = []
    codes = list(instruments.ITEM_CODES)
    round_ = 0
    while importing():
        round_ += 1
        for patient_id in patient_ids:
            slot = datetime.now(UTC) + timedelta(days=round_)
            with ctx.session() as session:
                created = administrations.create_administration(
                    session=session, patient_id=patient_id, kind="checkin", slot_at=slot,
                    now=datetime.now(UTC), expires_at=slot + timedelta(days=1),
                    instrument_version=instruments.INSTRUMENT_VERSION, language="en",
                    current_item=codes[0],
                )  # fmt: skip
                assert created is not None
                assert created.id is not None
                administration_id = created.id
            for code in codes:
                answer = instruments.button_answer(code, 30 if code == "q6" else 5)
                assert answer is not None
                began = time.monotonic()
                try:
                    with ctx.session() as session:
                        administrations.save_answer(
                            session=session, administration_id=administration_id,
                            item_code=code, raw_value=answer.raw_value, score=answer.score,
                            now=datetime.now(UTC),
                        )  # fmt: skip
                    written += 1
                except Exception:
                    failed += 1
                waits.append(time.monotonic() - began)
                time.sleep(0.02)  # a press every few dozen milliseconds, from five patients
    return written, failed, waits


_REPORTING_PEAK_MEMORY = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    with open('/proc/self/status') as status:\n"
    "        print(next(l for l in status if l.startswith('VmHWM')), file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "sys.argv[0] = 'spondybot'\n"
    "runpy.run_module('bot', run_name='__main__')\n"
)
"""`python -m bot`, printing its peak resident memory (Linux's VmHWM) when it exits: unlike the
child's rusage, it does not count the memory of the process it was forked from."""


def import_under_load(database_url: str, lines: int, workdir: Path) -> ImportUnderLoad:
    """Runs the scenario on a migrated, empty database; returns what it measured."""
    ctx = _context(database_url)
    try:
        migrate.upgrade(ctx.engine)
        doctor = staff.add_physician(ctx, display_name="Dr. Load")
        refs = [f"MRN-L{index:05d}" for index in range(PATIENTS)]
        patient_ids = [
            staff.add_patient(ctx, physician_id=doctor.physician_id, clinic_ref=ref).patient_id
            for ref in refs
        ]
        path = workdir / "lab-export.csv"
        bad = write_lab_file(path, lines, refs)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SQLITE_"))},
            "DATABASE_URL": database_url,
            "CLINIC_TIMEZONE": "UTC",
        }
        out, errors = workdir / "report.txt", workdir / "import.log"
        began = time.monotonic()
        with out.open("w") as sink, errors.open("w") as log:
            importer = subprocess.Popen(
                [sys.executable, "-c", _REPORTING_PEAK_MEMORY, "lab", "import", str(path)],
                env=env, stdout=sink, stderr=log,
            )  # fmt: skip
            written, failed, waits = _answer_while(
                lambda: importer.poll() is None, ctx, patient_ids[:ANSWERING]
            )
            exit_code = importer.returncode
        seconds = time.monotonic() - began
        logged = errors.read_text()
        if exit_code not in (0, 1):
            raise RuntimeError(f"lab import failed ({exit_code}): {logged[-2000:]}")
        peak = re.search(r"^VmHWM:\s+(\d+) kB", logged, re.M)
        assert peak is not None, logged[-2000:]
        printed = out.read_text()
        reported_bad = [int(line) for line in re.findall(r"^line (\d+): refused", printed, re.M)]
        stored = re.search(r"^stored (\d+),", printed, re.M)
        assert stored is not None, printed[-2000:]
        with ctx.session() as session:
            stored_answers = session.exec(
                select(func.count())
                .select_from(Answer)
                .join(Administration, col(Administration.id) == col(Answer.administration_id))
                .where(col(Administration.patient_id).in_(patient_ids[:ANSWERING]))
            ).one()
        return ImportUnderLoad(
            lines=lines,
            import_seconds=seconds,
            import_exit_code=exit_code,
            peak_rss_mb=int(peak.group(1)) / 1024,
            bad_lines=bad,
            reported_bad_lines=reported_bad,
            stored=int(stored.group(1)),
            answers_written=written,
            answers_failed=failed,
            answers_stored=int(stored_answers),
            answer_waits=waits,
        )
    finally:
        ctx.close()


def run(quick: bool) -> Report:
    lines = 5_000 if quick else 100_000
    report = Report(
        title="Lab import under load",
        columns=[
            "database", "lines", "import", "answers stored / written", "answer wait median",
            "p99", "max", "import peak RSS", "bad lines reported",
        ],
    )  # fmt: skip
    for name, base in targets():
        with tempfile.TemporaryDirectory() as directory:
            workdir = Path(directory)
            url = f"sqlite:///{workdir / 'load.db'}" if base is None else _fresh_schema(base)
            result = import_under_load(url, lines, workdir)
        report.add(
            name,
            f"{lines:,}",
            f"{result.import_seconds:.0f} s",
            f"{result.answers_stored} / {result.answers_written} ({result.answers_failed} failed)",
            f"{statistics.median(result.answer_waits) * 1000:.0f} ms",
            f"{result.p99_wait * 1000:.0f} ms",
            f"{result.max_wait * 1000:.0f} ms",
            f"{result.peak_rss_mb:.0f} MB",
            f"{len(result.reported_bad_lines)} of {len(result.bad_lines)}"
            + (" (same lines)" if result.reported_bad_lines == result.bad_lines else ""),
        )
    report.notes.append(
        "`spondybot lab import` as its own process; five patients write an answer every "
        "~20 ms in this one; an answer's unit of work waits at most "
        f"{WRITER_BUSY_TIMEOUT_MS} ms for SQLite's lock here. Targets: every answer stored, "
        "answer wait about a second at most, import peak RSS under 150 MB, every bad line named."
    )
    return report


def targets() -> list[tuple[str, str | None]]:
    """The databases to measure: (name, PostgreSQL server URL or None for a SQLite file)."""
    server = os.environ.get(POSTGRES_URL_ENV)
    default = "sqlite,postgresql" if server else "sqlite"
    chosen = {part.strip().lower() for part in os.environ.get(DATABASES_ENV, default).split(",")}
    found: list[tuple[str, str | None]] = []
    if "sqlite" in chosen:
        found.append(("SQLite", None))
    if "postgresql" in chosen:
        if not server:
            raise SystemExit(f"{POSTGRES_URL_ENV} is not set: no PostgreSQL server to measure")
        found.append(("PostgreSQL", server))
    return found


def _fresh_schema(base: str) -> str:
    import secrets

    from sqlalchemy import create_engine, text

    schema = f"b_{secrets.token_hex(6)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"
