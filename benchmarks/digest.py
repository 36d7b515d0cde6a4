"""Physician digest: time to build and render every physician's weekly digest, charts included,
for 1,000 patients with 52 weeks of history across 20 physicians.

Target (issue "Weekly physician digest"): under 2 s per physician, median, on this machine.
Each digest is built from the database (`bot.services.digest.build_digest`), rendered for
Telegram, e-mail and the HTML document, and its attention charts are drawn (matplotlib, Agg):
everything the weekly tick does before it sends. The SQL statements of each build are counted
too, to show they do not grow with the panel.

The history is bulk-loaded into a fresh SQLite database (the default deployment) with values
computed by the clinical scoring module and stored through the schema's own column types:
weekly questionnaires (about 8 % missed, a few patients drifting away), a CRP every 8 to 16
weeks so that some questionnaires have an ASDAS-CRP, and a few patients who blocked the bot.
Answers themselves are not loaded, since the digest reads only scores.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from benchmarks import PSEUDONYM_KEY, registry
from benchmarks.report import Report
from bot.clock import FixedClock
from bot.config import load_settings
from bot.context import AppContext
from bot.domain import scoring
from bot.present.digest.text import render_charts, render_html, render_text
from bot.present.render import default_renderer
from bot.rare_collections import rare_collections
from bot.services.digest import build_digest
from bot.telegram.digest_sending import DIGESTS_AT_ONCE, at_most, render
from storage import migrate
from storage.db import make_engine
from storage.models import (
    Administration,
    AdministrationKind,
    AdministrationStatus,
    Analyte,
    LabResult,
    Patient,
    PatientStatus,
    Physician,
    ScoreRecord,
)

TARGET_SECONDS = 2.0
# The first history week starts on a Monday; the digest covers the last of the weeks.
FIRST_MONDAY = datetime(2025, 3, 31, tzinfo=UTC)
SEED = 6


@dataclass(frozen=True)
class Size:
    physicians: int
    patients: int
    weeks: int


FULL = Size(physicians=20, patients=1000, weeks=52)
QUICK = Size(physicians=2, patients=20, weeks=12)


def _item(rng: random.Random, level: float) -> Decimal:
    return Decimal(max(0, min(10, round(rng.gauss(level, 1.0)))))


def _history(rng: random.Random, patient_id: int, weeks: int) -> dict[str, list[dict[str, Any]]]:
    """One patient's year: administrations with scores, CRP values, as table rows."""
    rows: dict[str, list[dict[str, Any]]] = {"administration": [], "score": [], "lab": []}
    # Treated axSpA cohorts: BASDAI around 3.3 ± 1.8, CRP a few mg/L with a long tail.
    level = min(9.0, max(0.3, rng.gauss(3.3, 1.8)))
    drift = rng.choice([-0.03, 0.0, 0.0, 0.0, 0.02])
    drifting_away = rng.random() < 0.03
    next_crp = rng.randint(0, 8)
    crp_level = rng.lognormvariate(math.log(5.0), 0.8)
    crp_weeks: dict[int, Decimal] = {}
    for week in range(weeks):
        if week == next_crp:
            crp_weeks[week] = Decimal(str(round(max(0.3, rng.gauss(crp_level, crp_level / 3)), 1)))
            next_crp += rng.randint(8, 16)
    for week, crp in crp_weeks.items():
        rows["lab"].append(
            {
                "patient_id": patient_id,
                "analyte": Analyte.CRP.value,
                "value": crp,
                "unit": "mg/L",
                "value_normalised": crp,
                "below_detection_limit": False,
                "drawn_at": FIRST_MONDAY + timedelta(weeks=week, days=2, hours=9),
                "source": "benchmark",
                "entered_by": "benchmark",
                "created_at": FIRST_MONDAY + timedelta(weeks=week, days=2, hours=10),
            }
        )
    for week in range(weeks):
        level = max(0.3, min(9.5, level + drift + rng.gauss(0, 0.5)))
        slot = FIRST_MONDAY + timedelta(weeks=week, hours=17)
        missed = rng.random() < (0.5 if drifting_away and week > weeks - 4 else 0.08)
        rows["administration"].append(
            {
                "patient_id": patient_id,
                "kind": AdministrationKind.SCHEDULED.value,
                "slot_at": slot,
                "status": (
                    AdministrationStatus.MISSED.value
                    if missed
                    else AdministrationStatus.COMPLETED.value
                ),
                "instrument_version": "basdai-1",
                "language": "en",
                "opened_at": slot,
                "completed_at": None if missed else slot + timedelta(hours=2),
                "expires_at": slot + timedelta(days=3),
            }
        )
        if missed:
            rows["score"].append({})
            continue
        q1, q2, q3, q4, q5 = (_item(rng, level) for _ in range(5))
        minutes = Decimal(rng.choice([0, 15, 30, 45, 60, 75, 90, 105, 120]))
        q6 = scoring.stiffness_minutes_to_score(minutes)
        global_ = _item(rng, level)
        crp = crp_weeks.get(week)
        rows["score"].append(
            {
                "basdai": scoring.basdai(q1, q2, q3, q4, q5, q6),
                "asdas_crp": None if crp is None else scoring.asdas_crp(q2, q6, global_, q3, crp),
                "crp_floored": crp is not None and crp < scoring.CRP_FLOOR_MG_L,
                "computed_at": slot + timedelta(hours=2),
            }
        )
    return rows


def load(engine: Engine, size: Size, rng: random.Random) -> list[int]:
    """Bulk-inserts physicians, patients and their history; returns the physician ids."""
    created = FIRST_MONDAY - timedelta(days=30)
    with engine.begin() as conn:
        conn.execute(
            Physician.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "display_name": f"Dr. {index}",
                    "role": "physician",
                    "language": "zh" if index % 4 == 0 else "en",
                    "timezone": "Asia/Shanghai" if index % 4 == 0 else "Europe/Berlin",
                    "digest_weekday": 0,
                    "digest_time": datetime(2000, 1, 1, 8).time(),
                    "alerts_enabled": False,
                    "created_at": created,
                }
                for index in range(1, size.physicians + 1)
            ],
        )
        conn.execute(
            Patient.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "physician_id": 1 + index % size.physicians,
                    "clinic_ref": f"MRN-{index:05d}",
                    "research_id": f"{index:032x}",
                    "language": "en",
                    "timezone": "Europe/Berlin",
                    "schedule_weekday": 0,
                    "schedule_time": datetime(2000, 1, 1, 18).time(),
                    "status": PatientStatus.ACTIVE.value,
                    "unreachable_since": (
                        FIRST_MONDAY + timedelta(weeks=size.weeks - 2)
                        if rng.random() < 0.02
                        else None
                    ),
                    "created_at": created,
                }
                for index in range(1, size.patients + 1)
            ],
        )
    administration_id = 0
    with engine.begin() as conn:
        for patient_id in range(1, size.patients + 1):
            rows = _history(rng, patient_id, size.weeks)
            conn.execute(Administration.__table__.insert(), rows["administration"])  # type: ignore[attr-defined]
            scores = []
            for score in rows["score"]:
                administration_id += 1
                if score:
                    scores.append({"administration_id": administration_id, **score})
            if scores:
                conn.execute(ScoreRecord.__table__.insert(), scores)  # type: ignore[attr-defined]
            if rows["lab"]:
                conn.execute(LabResult.__table__.insert(), rows["lab"])  # type: ignore[attr-defined]
    return list(range(1, size.physicians + 1))


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


NIGHT_PHYSICIANS = 500
NIGHT_PATIENTS_EACH = 200
NIGHT_SAMPLE = 10
NIGHT_TARGET_SECONDS = 300.0
NIGHT_MEMORY_TARGET_MB = 300


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set (or, with VmHWM, its peak) in MB, as the kernel reports."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class NightFigures:
    """A round of digests as the weekly tick makes them, and each one's time and drawings."""

    seconds: list[float]
    """Each digest from the start of its reading to the end of its drawing; with
    `DIGESTS_AT_ONCE` in progress, it includes waiting for the one being drawn."""
    images: list[int]
    rss_mb: list[float]
    round_seconds: float = math.nan
    """The whole round, first reading to last drawing."""
    round_cpu_seconds: float = math.nan
    """This process's CPU time over the round (all threads): less sensitive than the wall
    time to other work sharing the machine's cores."""
    load: tuple[float, float] = (math.nan, math.nan)
    """The 1-minute load average when the digests began and when they ended."""


def _digest_each(ctx: AppContext, physician_ids: list[int]) -> NightFigures:
    """Builds, renders and draws every physician's digest as the weekly tick does:
    `DIGESTS_AT_ONCE` in progress through `digest_sending.render`, drawn one at a time."""
    renderer = default_renderer()
    # Warm-up: templates compiled and fonts loaded once per process, as in production.
    warm = build_digest(ctx, physician_id=physician_ids[0])
    assert warm is not None
    render_text(warm, renderer)
    render_html(warm, renderer, ["cid:x"] * len(render_charts(warm, renderer)))
    figures = NightFigures([], [], [])

    async def night() -> None:
        drawing = asyncio.Lock()

        async def one(physician_id: int) -> None:
            begin = time.perf_counter()
            rendered = await render(ctx, renderer, physician_id=physician_id, drawing=drawing)
            assert rendered is not None
            figures.seconds.append(time.perf_counter() - begin)
            figures.images.append(len(rendered.charts))
            figures.rss_mb.append(_rss_mb())

        await at_most(DIGESTS_AT_ONCE, physician_ids, one)

    started_load = os.getloadavg()[0]
    begin = time.perf_counter()
    begin_cpu = time.process_time()
    with rare_collections():  # as the weekly round (`deliver_due_digests`) runs
        asyncio.run(night())
    figures.round_seconds = time.perf_counter() - begin
    figures.round_cpu_seconds = time.process_time() - begin_cpu
    figures.load = (started_load, os.getloadavg()[0])
    return figures


def _spread(values: list[float]) -> str:
    """Median (quartiles; min–max) in seconds."""
    quartiles = statistics.quantiles(values, n=4)
    return (
        f"{statistics.median(values):.2f} s ({quartiles[0]:.2f}–{quartiles[2]:.2f}; "
        f"{min(values):.2f}–{max(values):.2f})"
    )


def _night_rows(report: Report, label: str, figures: NightFigures, physicians: int) -> None:
    """Median, spread and the night: measured when every physician's digest was made,
    otherwise extrapolated from the sample's round to `physicians`."""
    done = len(figures.seconds)
    measured = done >= physicians
    scale = 1 if measured else physicians / done
    night = figures.round_seconds * scale
    report.add(
        f"{label}: per physician, start to drawn, median (quartiles; min–max)",
        _spread(figures.seconds),
        "",
    )
    report.add(
        f"{label}: CPU time per physician (the round's CPU / physicians)",
        f"{figures.round_cpu_seconds / done:.2f} s",
        "",
    )
    report.add(
        f"{label}: chart images per physician, median",
        f"{statistics.median(figures.images):.0f}",
        "",
    )
    verdict = "met" if night < NIGHT_TARGET_SECONDS else "NOT met"
    if measured:
        report.add(
            f"{label}: the night of {done} physicians, MEASURED (every digest)",
            f"{night / 60:.1f} min (CPU {figures.round_cpu_seconds / 60:.1f} min)",
            f"< {NIGHT_TARGET_SECONDS / 60:.0f} min: {verdict}",
        )
    else:
        report.add(
            f"{label}: the night of {physicians} physicians, EXTRAPOLATED from a round of "
            f"{done} (× {scale:g})",
            f"{night / 60:.1f} min (CPU {figures.round_cpu_seconds * scale / 60:.1f} min)",
            f"< {NIGHT_TARGET_SECONDS / 60:.0f} min: {verdict} (estimate)",
        )
    report.add(
        f"{label}: 1-minute load average, first → last digest",
        f"{figures.load[0]:.1f} → {figures.load[1]:.1f}",
        "",
    )
    peak = max(figures.rss_mb)
    report.add(
        f"{label}: RSS after each digest, max (start → end)",
        f"{peak:.0f} MB ({figures.rss_mb[0]:.0f} → {figures.rss_mb[-1]:.0f} MB)",
        f"< {NIGHT_MEMORY_TARGET_MB} MB: {'met' if peak < NIGHT_MEMORY_TARGET_MB else 'NOT met'}",
    )


def _night_database(folder: Path, size: Size) -> tuple[str, list[int], float | None]:
    """The night's SQLite database in `folder`: loaded there, or taken as it is when a
    complete one is already there. Its URL, the physician ids and the minutes loading took
    (None when it was already there)."""
    path = folder / f"digest-night-{size.physicians}-{size.weeks}-{SEED}.db"
    complete = path.with_suffix(".complete")
    ids = list(range(1, size.physicians + 1))
    if path.exists() and complete.exists():
        return f"sqlite:///{path}", ids, None
    for stale in folder.glob(f"{path.name}*"):
        stale.unlink()
    complete.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    loading = time.perf_counter()
    loaded_ids = load(engine, size, random.Random(SEED))
    assert loaded_ids == ids
    loaded = (time.perf_counter() - loading) / 60
    engine.dispose()
    complete.touch()
    return f"sqlite:///{path}", ids, loaded


def run_night(sample: int = NIGHT_SAMPLE, *, keep: bool = False) -> Report:
    """Digest night (500 physicians × 200 patients): `sample` physicians with 200 patients
    each are loaded and every one of their digests timed; the night is extrapolated from a
    sample, or measured with `sample=NIGHT_PHYSICIANS` (about 2 GB of SQLite, most of an hour
    to load on a busy machine). With `keep`, the loaded database stays in benchmarks/.cache
    and later runs of the same size use it instead of loading again; otherwise it is made in
    a temporary folder and removed."""
    size = Size(physicians=sample, patients=sample * NIGHT_PATIENTS_EACH, weeks=52)
    report = Report(title="Digest", columns=["measure", "value", "target"])
    with tempfile.TemporaryDirectory() as temporary:
        folder = registry.CACHE if keep else Path(temporary)
        folder.mkdir(exist_ok=True)
        url, physician_ids, loaded = _night_database(folder, size)
        engine = make_engine(url)
        now = FIRST_MONDAY + timedelta(weeks=size.weeks, hours=7)
        settings = load_settings(_env_file=None, database_url=url, pseudonym_key=PSEUDONYM_KEY)
        ctx = AppContext(settings=settings, engine=engine, clock=FixedClock(now))
        figures = _digest_each(ctx, physician_ids)
        engine.dispose()
    whole = "the whole night" if sample >= NIGHT_PHYSICIANS else f"a sample of {NIGHT_PHYSICIANS}"
    report.add(
        "data",
        f"{sample} physicians × {NIGHT_PATIENTS_EACH} patients, 52 weeks, SQLite ({whole}); "
        + ("loaded before" if loaded is None else f"loaded in {loaded:.1f} min"),
        "",
    )
    _night_rows(report, "200 patients each", figures, NIGHT_PHYSICIANS)
    report.add("process peak RSS (VmHWM, loading included)", f"{_rss_mb('VmHWM'):.0f} MB", "")
    return report


def run_scale(
    patients: int, sample: int = NIGHT_SAMPLE, kinds: Sequence[str] | None = None
) -> Report:
    """Digests of `sample` physicians of the synthetic registry of `patients` (500
    physicians, benchmarks/registry.py) on SQLite and PostgreSQL (or `kinds`), the night
    extrapolated."""
    report = Report(title="Digest", columns=["measure", "value", "target"])
    if kinds is None:
        kinds = ["sqlite", *(["postgresql"] if registry.postgres_available() else [])]
    for kind in kinds:
        built = registry.build_registry(kind, patients=patients)
        engine = make_engine(built.url)
        settings = load_settings(
            _env_file=None,
            database_url=built.url,
            pseudonym_key=PSEUDONYM_KEY,
        )
        ctx = AppContext(settings=settings, engine=engine, clock=FixedClock(registry.NOW))
        # Physicians spread over the ids, so the sample is not the first few only.
        step = max(1, built.physicians // sample)
        ids = list(range(1, built.physicians + 1, step))[:sample]
        figures = _digest_each(ctx, ids)
        engine.dispose()
        _night_rows(
            report,
            f"registry {patients:,}, {kind}, {patients // built.physicians} patients each",
            figures,
            built.physicians,
        )
    return report


def run(quick: bool, scale: int | None = None) -> Report:
    """The digest benchmark; with `scale`, the registry of `scale` patients (`run_scale`)."""
    if scale is not None:
        return run_scale(scale, sample=3 if quick else NIGHT_SAMPLE)
    size = QUICK if quick else FULL
    rng = random.Random(SEED)
    renderer = default_renderer()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'digest-bench.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        started = time.perf_counter()
        physician_ids = load(engine, size, rng)
        load_seconds = time.perf_counter() - started
        # Monday 08:00 after the last history week: its digest is the one due.
        now = FIRST_MONDAY + timedelta(weeks=size.weeks, hours=7)
        settings = load_settings(_env_file=None, database_url=url, pseudonym_key=PSEUDONYM_KEY)
        ctx = AppContext(settings=settings, engine=engine, clock=FixedClock(now))
        # Warm-up: templates compiled, fonts loaded, once per process as in production.
        warm = build_digest(ctx, physician_id=physician_ids[0])
        assert warm is not None
        render_charts(warm, renderer)
        totals, builds, texts, charts_seconds = [], [], [], []
        queries, attention, images = [], [], []
        for physician_id in physician_ids:
            begin = time.perf_counter()
            with counting(engine) as statements:
                built = build_digest(ctx, physician_id=physician_id)
            built_at = time.perf_counter()
            assert built is not None
            text = render_text(built, renderer)
            drawn = render_charts(built, renderer)
            drawn_at = time.perf_counter()
            render_html(built, renderer, ["cid:x"] * len(drawn))
            done = time.perf_counter()
            assert text
            totals.append(done - begin)
            builds.append(built_at - begin)
            charts_seconds.append(drawn_at - built_at)
            texts.append(done - drawn_at)
            queries.append(len(statements))
            attention.append(len(built.attention))
            images.append(len(drawn))
        engine.dispose()

    median = statistics.median(totals)
    report = Report(
        title="Digest",
        columns=["measure", "value", "target"],
    )
    report.add(
        "data",
        f"{size.physicians} physicians, {size.patients} patients, {size.weeks} weeks "
        f"({size.patients * size.weeks:,} questionnaires), SQLite",
        "",
    )
    report.add("bulk load", f"{load_seconds:.1f} s", "")
    report.add(
        "build + render + charts per physician, median",
        f"{median:.2f} s",
        f"< {TARGET_SECONDS:.0f} s: {'met' if median < TARGET_SECONDS else 'NOT met'}",
    )
    report.add(
        "per physician, min / max",
        f"{min(totals):.2f} s / {max(totals):.2f} s",
        "",
    )
    report.add(
        "of which: build (SQL + rules) / charts / text + HTML, median",
        f"{statistics.median(builds):.3f} s / {statistics.median(charts_seconds):.3f} s / "
        f"{statistics.median(texts):.3f} s",
        "",
    )
    report.add("all digests", f"{sum(totals):.1f} s", "")
    report.add(
        "SQL statements per digest",
        f"{min(queries)}–{max(queries)}",
        "same for every panel size",
    )
    report.add(
        "attention patients per physician, median (chart images)",
        f"{statistics.median(attention):.0f} ({statistics.median(images):.0f})",
        "",
    )
    report.notes.append(
        "Each digest: `build_digest` from the database, Telegram text, e-mail/document HTML, "
        "and the attention charts drawn with matplotlib (8 panels an image), i.e. what the "
        "weekly tick does before sending. One warm-up digest first (templates, fonts)."
    )
    report.notes.append(
        "Run with `.venv/bin/python -m benchmarks digest` (`--quick` for a smoke run)."
    )
    return report
