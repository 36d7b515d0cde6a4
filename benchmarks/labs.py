"""Lab file import: time per line on a clinic with scored questionnaires, on SQLite and PostgreSQL.

Target: at most 10 ms per line. An import is stored in short transactions (at most 200 lines
or 0.4 s, with a pause between them on SQLite), so the bot's writes are not held up however
long the file; `benchmarks/lab_import_load.py` measures that with 100,000 lines.

Each measured line is a CRP that falls within ±7 days of about two completed questionnaires,
so the time includes the ASDAS recomputation it triggers. The same file is then imported again
(every line a duplicate) and checked with `--dry-run` semantics.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from benchmarks import PSEUDONYM_KEY
from benchmarks.report import Report
from bot.clock import FixedClock
from bot.config import load_settings
from bot.context import AppContext
from bot.domain import instruments
from bot.services import labs, staff
from storage import migrate
from tests.factories import make_completed_questionnaire

POSTGRES_URL_ENV = "SPONDYBOT_TEST_POSTGRES_URL"
TARGET_MS_PER_LINE = 10.0
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANSWERS = {
    code: instruments.button_answer(code, value)
    for code, value in {
        "q1": 4,
        "q2": 5,
        "q3": 2,
        "q4": 3,
        "q5": 5,
        "q6": 60,
        "patient_global": 5,
    }.items()
}


def _clinic(ctx: AppContext, patients: int, weeks: int) -> bytes:
    """Patients with weekly questionnaires, and a lab file with a CRP every other week."""
    physician = staff.add_physician(ctx, display_name="Dr Bench")
    start = NOW - timedelta(weeks=weeks + 1)
    lines = ["Patient;Drawn;Test;Result;Unit"]
    for number in range(patients):
        ref = f"B-{number:05d}"
        created = staff.add_patient(ctx, physician_id=physician.physician_id, clinic_ref=ref)
        for week in range(weeks):
            make_completed_questionnaire(
                ctx,
                patient_id=created.patient_id,
                completed_at=start + timedelta(weeks=week, hours=18),
                answers=ANSWERS,
            )
            if week % 2 == 0:
                drawn = (start + timedelta(weeks=week, days=2)).strftime("%d.%m.%Y")
                value = f"{(number + week) % 40 + 0.5:.1f}".replace(".", ",")
                lines.append(f"{ref};{drawn};CRP;{value};mg/L")
    return ("\n".join(lines) + "\n").encode()


@contextmanager
def _database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        yield None
        return
    base = base.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _measure(kind: str, patients: int, weeks: int) -> list[str] | None:
    with _database(kind) as url:
        if url is None:
            return None
        settings = load_settings(
            _env_file=None,
            database_url=url,
            clinic_timezone="Europe/Berlin",
            pseudonym_key=PSEUDONYM_KEY,
        )
        ctx = AppContext.from_settings(settings, clock=FixedClock(NOW))
        try:
            migrate.upgrade(ctx.engine)
            data = _clinic(ctx, patients, weeks)
            lines = data.count(b"\n") - 1
            timings = {}
            for name, dry_run in (("dry run", True), ("import", False), ("re-import", False)):
                started = time.perf_counter()
                report = labs.import_lab_file(ctx, data=data, entered_by="bench", dry_run=dry_run)
                timings[name] = time.perf_counter() - started
                assert report.refused == 0
            assert report.duplicate == lines
        finally:
            ctx.close()
    per_line = timings["import"] * 1000 / lines
    return [
        kind,
        str(lines),
        f"{timings['import']:.2f} s",
        f"{per_line:.2f} ms",
        f"{timings['re-import'] * 1000 / lines:.2f} ms",
        f"{timings['dry run'] * 1000 / lines:.2f} ms",
        ("met" if per_line <= TARGET_MS_PER_LINE else "MISSED") if kind == "sqlite" else "n/a",
    ]


def run(quick: bool) -> Report:
    """Imports a lab file on SQLite (and PostgreSQL when configured) and reports ms per line."""
    patients, weeks = (10, 6) if quick else (100, 20)
    report = Report(
        title="Lab file import",
        columns=[
            "database",
            "lines",
            "import",
            "per line",
            "re-import per line",
            "dry run per line",
            f"SQLite target ≤ {TARGET_MS_PER_LINE:.0f} ms/line",
        ],
    )
    for kind in ("sqlite", "postgres"):
        row = _measure(kind, patients, weeks)
        if row is not None:
            report.add(*row)
    report.notes.append(
        f"{patients} patients × {weeks} weekly scored questionnaires; one CRP every other week "
        "per patient (decimal comma, day-first dates), each within ±7 days of about two "
        "questionnaires, so every stored line also recomputes their ASDAS."
    )
    report.notes.append(
        "The import is stored in transactions of at most 200 lines or 0.4 s, pausing between "
        "them on SQLite so other writers get in (see Lab import under load); the per-line "
        "target bounds the whole import's time."
    )
    return report
