"""A synthetic registry at scale, bulk-loaded and cached, for the benchmarks that need one.

`build_registry(url, patients=N)` fills a database with N active, consented patients linked to
Telegram, spread over 500 physicians, each with a year of weekly BASDAI + patient global
questionnaires (answers and scores), a CRP every fourth week and an ESR every eighth, and one
open therapy episode. Every patient's weekly slot is Monday 18:00 Europe/Berlin, so all of
them are due at `NOW` (the Monday wave).

The rows never go through the product's write path: they are loaded with COPY on PostgreSQL
and with executemany in one transaction on SQLite, from values converted by the schema's own
column types, so the application reads exactly what it would have stored. Rows are produced
and loaded in batches of patients, so memory does not grow with N.

A built registry is cached: a SQLite file `benchmarks/.cache/registry_<N>_<weeks>_<seed>.db`,
or a PostgreSQL schema of the same name. A benchmark that adds rows (opens questionnaires,
answers, sends) calls `reset_registry` afterwards, which deletes everything beyond the
registry as built, so the next run starts from the same data.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, text, update
from sqlalchemy.engine import Engine

from bot.domain import instruments, scoring
from storage import migrate
from storage.db import make_engine
from storage.models import (
    Administration,
    AdministrationKind,
    AdministrationStatus,
    Answer,
    ChatLink,
    LabResult,
    Patient,
    PatientStatus,
    Physician,
    ScoreRecord,
    TherapyEpisodeRow,
)

CACHE = Path(__file__).resolve().parent / ".cache"
POSTGRES_URL_ENV = "SPONDYBOT_TEST_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
# The registry's "now": Monday 17:00 UTC, 18:00 in Berlin, every patient's weekly slot.
NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
TIMEZONE = "Europe/Berlin"
# Telegram user (and chat) id of patient n is TELEGRAM_BASE + n, of physician n
# PHYSICIAN_TELEGRAM_BASE + n.
TELEGRAM_BASE = 700_000_000
PHYSICIAN_TELEGRAM_BASE = 600_000_000
BATCH_PATIENTS = 500
# Physicians read their digests on Sunday at 23:59, so that no benchmark run (a press, the
# Monday wave) also builds 500 digests: those are measured on their own.
DIGEST_WEEKDAY = 6
DIGEST_TIME = wall_time(23, 59)
# Tables the benchmarks write to beyond the registry: emptied by reset_registry.
SCRATCH_TABLES = (
    "safetyanswer",
    "safetycheckin",
    "delivery",
    "processedupdate",
    "schedulermark",
    "auditevent",
    "pendinglabentry",
    "pendingtherapychange",
    "sendbudget",
    "exportjob",  # before exportaudit, which its rows point to
    "exportaudit",
)
# Tables the registry fills, in foreign-key order.
LOADED: tuple[Table, ...] = tuple(
    model.__table__  # type: ignore[attr-defined]
    for model in (
        Physician,
        Patient,
        ChatLink,
        Administration,
        Answer,
        LabResult,
        ScoreRecord,
        TherapyEpisodeRow,
    )
)


@dataclass(frozen=True)
class Registry:
    """A built registry: where it is and what it holds."""

    url: str
    patients: int
    physicians: int
    weeks: int
    seed: int
    last_ids: dict[str, int]
    build_seconds: float | None  # None when it came from the cache

    def telegram_id(self, patient_id: int) -> int:
        """The Telegram user (and private chat) id linked to a patient."""
        return TELEGRAM_BASE + patient_id


@cache
def _asdas_crp(q2: int, q6: Decimal, glob: int, q3: int, crp: Decimal) -> Decimal:
    return scoring.asdas_crp(q2, q6, glob, q3, crp)


@cache
def _asdas_esr(q2: int, q6: Decimal, glob: int, q3: int, esr: Decimal) -> Decimal:
    return scoring.asdas_esr(q2, q6, glob, q3, esr)


def _templates() -> dict[str, dict[str, Any]]:
    """A row of each table with the model's defaults, to be completed per row."""
    return {
        "answer": Answer(
            administration_id=0, item_code="q1", raw_value=Decimal(0), score=Decimal(0),
            answered_at=NOW,
        ).model_dump(),
        "administration": Administration(
            patient_id=0, slot_at=NOW, instrument_version=instruments.INSTRUMENT_VERSION,
            language="en", opened_at=NOW, expires_at=NOW,
        ).model_dump(),
        "lab": LabResult(
            patient_id=0, analyte="crp", value=Decimal(1), unit="mg/L",
            value_normalised=Decimal(1), drawn_at=NOW, source="csv", entered_by="benchmark",
            created_at=NOW,
        ).model_dump(),
    }  # fmt: skip


class Rows:
    """The registry's rows of each table, produced a batch of patients at a time.

    Ids are assigned here (1, 2, … per table), so batches load in any database without a
    round trip and the history of patient n is the same whatever the batch size.
    """

    def __init__(self, *, physicians: int, weeks: int, seed: int) -> None:
        self.physicians = physicians
        self.weeks = weeks
        self.seed = seed
        self.templates = _templates()
        self.ids = {"administration": 0, "answer": 0, "lab": 0, "therapy": 0}
        self.first_slot = NOW - timedelta(weeks=weeks)
        self.enrolled = self.first_slot - timedelta(days=14)

    def physician_rows(self) -> list[dict[str, Any]]:
        """Every physician; the Telegram links of physicians are made by `physician_links`."""
        return [
            Physician(
                id=n,
                display_name=f"Physician {n}",
                language=("en", "de", "zh")[n % 3],
                timezone=TIMEZONE,
                digest_weekday=DIGEST_WEEKDAY,
                digest_time=DIGEST_TIME,
                created_at=self.enrolled,
            ).model_dump()
            for n in range(1, self.physicians + 1)
        ]

    def physician_links(self, first_id: int) -> list[dict[str, Any]]:
        """Every physician linked to Telegram (they read digests and alerts there), with link
        ids from `first_id` on."""
        return [
            ChatLink(
                id=first_id + n - 1,
                telegram_user_id=PHYSICIAN_TELEGRAM_BASE + n,
                chat_id=PHYSICIAN_TELEGRAM_BASE + n,
                physician_id=n,
                linked_at=self.enrolled,
            ).model_dump()
            for n in range(1, self.physicians + 1)
        ]

    def batch(self, first: int, last: int) -> dict[Table, list[dict[str, Any]]]:
        """Rows of patients first..last inclusive and everything that belongs to them."""
        tables: dict[Table, list[dict[str, Any]]] = {table: [] for table in LOADED[1:]}
        patient_rows, links, administrations, answers, labs, scores, therapies = (
            tables[table] for table in LOADED[1:]
        )
        for patient_id in range(first, last + 1):
            rng = random.Random(self.seed * 1_000_003 + patient_id)
            language = ("en", "de", "zh")[patient_id % 3]
            patient_rows.append(
                Patient(
                    id=patient_id,
                    physician_id=1 + (patient_id - 1) % self.physicians,
                    clinic_ref=f"REG-{patient_id:07d}",
                    research_id=secrets.token_hex(16),
                    language=language,
                    timezone=TIMEZONE,
                    schedule_weekday=0,
                    schedule_time=wall_time(18, 0),
                    status=PatientStatus.ACTIVE.value,
                    consent_version="registry",
                    consent_at=self.enrolled,
                    baseline_date=self.enrolled,
                    created_at=self.enrolled,
                ).model_dump()
            )
            telegram_id = TELEGRAM_BASE + patient_id
            links.append(
                ChatLink(
                    id=patient_id,
                    telegram_user_id=telegram_id,
                    chat_id=telegram_id,
                    patient_id=patient_id,
                    linked_at=self.enrolled,
                ).model_dump()
            )
            self.ids["therapy"] += 1
            start = (self.enrolled - timedelta(days=rng.randint(30, 900))).date()
            therapies.append(
                TherapyEpisodeRow(
                    id=self.ids["therapy"],
                    patient_id=patient_id,
                    drug=rng.choice(("adalimumab", "etanercept", "secukinumab", "naproxen")),
                    therapy_class="tnf_inhibitor",
                    start_date=start,
                    entered_by="registry",
                    created_at=self.enrolled,
                    updated_at=self.enrolled,
                ).model_dump()
            )
            self._history(rng, patient_id, language, administrations, answers, labs, scores)
        return tables

    def _history(
        self,
        rng: random.Random,
        patient_id: int,
        language: str,
        administrations: list[dict[str, Any]],
        answers: list[dict[str, Any]],
        labs: list[dict[str, Any]],
        scores: list[dict[str, Any]],
    ) -> None:
        """One patient's year of weekly questionnaires: 92 % completed, 3 % partly answered
        and expired, 5 % missed; a CRP every 4th completed week, an ESR every 8th."""
        level = min(9.0, max(0.3, rng.gauss(3.3, 1.8)))
        answer_t, admin_t, lab_t = (
            self.templates[name] for name in ("answer", "administration", "lab")
        )
        for week in range(self.weeks):
            slot = self.first_slot + timedelta(weeks=week)
            draw = rng.random()
            answered = 7 if draw < 0.92 else (4 if draw < 0.95 else 0)
            status = (
                AdministrationStatus.COMPLETED if answered == 7 else AdministrationStatus.MISSED
            )
            completed = slot + timedelta(hours=1, minutes=8)
            self.ids["administration"] += 1
            admin_id = self.ids["administration"]
            administrations.append(
                admin_t
                | {
                    "id": admin_id,
                    "patient_id": patient_id,
                    "kind": AdministrationKind.SCHEDULED.value,
                    "slot_at": slot,
                    "status": status.value,
                    "language": language,
                    "opened_at": slot,
                    "started_at": slot + timedelta(hours=1) if answered else None,
                    "completed_at": completed if answered == 7 else None,
                    "expires_at": slot + timedelta(days=3),
                }
            )
            level = max(0.3, min(9.5, level + rng.gauss(0, 0.4)))
            values: dict[str, tuple[Decimal, Decimal]] = {}
            for position, code in enumerate(instruments.ITEM_CODES[:answered]):
                if code == "q6":
                    minutes = Decimal(rng.choice(instruments.STIFFNESS_CHOICES_MINUTES))
                    values[code] = (minutes, scoring.stiffness_minutes_to_score(minutes))
                else:
                    rating = Decimal(max(0, min(10, round(rng.gauss(level, 1.0)))))
                    values[code] = (rating, rating)
                self.ids["answer"] += 1
                answers.append(
                    answer_t
                    | {
                        "id": self.ids["answer"],
                        "administration_id": admin_id,
                        "item_code": code,
                        "raw_value": values[code][0],
                        "score": values[code][1],
                        "answered_at": slot + timedelta(hours=1, minutes=position + 1),
                    }
                )
            if answered != 7:
                continue
            score = {code: pair[1] for code, pair in values.items()}
            record: dict[str, Any] = {
                "id": admin_id,
                "administration_id": admin_id,
                "basdai": scoring.basdai(*(score[c] for c in instruments.ITEM_CODES[:6])),
                "asdas_crp": None,
                "asdas_crp_lab_id": None,
                "crp_floored": False,
                "asdas_esr": None,
                "asdas_esr_lab_id": None,
                "computed_at": completed,
            }
            inputs = (int(score["q2"]), score["q6"], int(score["patient_global"]), int(score["q3"]))
            for analyte, every, unit in (("crp", 4, "mg/L"), ("esr", 8, "mm/h")):
                if week % every:
                    continue
                self.ids["lab"] += 1
                if analyte == "crp":
                    value = Decimal(rng.randint(1, 900)) / 10
                    record |= {
                        "asdas_crp": _asdas_crp(*inputs, value),
                        "asdas_crp_lab_id": self.ids["lab"],
                        "crp_floored": value < scoring.CRP_FLOOR_MG_L,
                    }
                else:
                    value = Decimal(rng.randint(2, 80))
                    record |= {
                        "asdas_esr": _asdas_esr(*inputs, value),
                        "asdas_esr_lab_id": self.ids["lab"],
                    }
                labs.append(
                    lab_t
                    | {
                        "id": self.ids["lab"],
                        "patient_id": patient_id,
                        "analyte": analyte,
                        "value": value,
                        "unit": unit,
                        "value_normalised": value,
                        "drawn_at": completed - timedelta(days=1),
                        "created_at": completed,
                    }
                )
            scores.append(record)


def prepared(
    engine: Engine, table: Table, rows: list[dict[str, Any]]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and value tuples converted by the schema's own types for this database."""
    dialect = engine.dialect
    names = [column.name for column in table.columns]
    processors = [
        column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns
    ]
    values = [
        tuple(
            value if process is None or value is None else process(value)
            for value, process in zip((row.get(name) for name in names), processors, strict=True)
        )
        for row in rows
    ]
    return names, values


def bulk_load(engine: Engine, batches: Iterator[list[tuple[Table, list[dict[str, Any]]]]]) -> None:
    """Loads (table, rows) batches in one transaction: executemany on SQLite, COPY on
    PostgreSQL; then brings id sequences past the loaded ids and refreshes statistics."""
    raw = engine.raw_connection()
    sqlite = engine.dialect.name == "sqlite"
    try:
        cursor = raw.cursor()
        if sqlite:
            cursor.execute("BEGIN")
        loaded: set[str] = set()
        for batch in batches:
            for table, rows in batch:
                if not rows:
                    continue
                loaded.add(table.name)
                names, values = prepared(engine, table, rows)
                columns = ", ".join(f'"{name}"' for name in names)
                if sqlite:
                    marks = ", ".join("?" for _ in names)
                    cursor.executemany(
                        f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})', values
                    )
                else:
                    with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
                        for row in values:
                            copy.write_row(row)
        if not sqlite:
            for name in sorted(loaded):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                    f'(SELECT max(id) FROM "{name}"))'
                )
        if sqlite:
            cursor.execute("COMMIT")
            cursor.execute("ANALYZE")
        else:
            raw.commit()
            cursor.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()


def _name(patients: int, weeks: int, seed: int) -> str:
    return f"registry_{patients}_{weeks}_{seed}"


def postgres_base() -> str:
    """The PostgreSQL server of the benchmarks, as a psycopg URL."""
    base = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES
    return "postgresql+psycopg://" + base.split("://", 1)[1]


def postgres_available() -> bool:
    try:
        engine = create_engine(postgres_base())
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:  # any failure means "not available here"
        return False


def _schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def _last_ids(engine: Engine) -> dict[str, int]:
    """The highest id of each loaded table."""
    with engine.connect() as connection:
        found = {
            table.name: connection.execute(text(f'SELECT max(id) FROM "{table.name}"')).one()
            for table in LOADED
        }
    return {name: int(row[0] or 0) for name, row in found.items()}


def load_registry(engine: Engine, *, patients: int, physicians: int, weeks: int, seed: int) -> None:
    """Migrates `engine`'s database and bulk-loads a registry into it (no caching)."""
    migrate.upgrade(engine)
    rows = Rows(physicians=physicians, weeks=weeks, seed=seed)

    def batches() -> Iterator[list[tuple[Table, list[dict[str, Any]]]]]:
        yield [(LOADED[0], rows.physician_rows())]
        for first in range(1, patients + 1, BATCH_PATIENTS):
            last = min(patients, first + BATCH_PATIENTS - 1)
            yield list(rows.batch(first, last).items())
        yield [(ChatLink.__table__, rows.physician_links(first_id=patients + 1))]

    bulk_load(engine, batches())


def build_registry(
    engine_url: str,
    *,
    patients: int,
    physicians: int = 500,
    weeks: int = 52,
    seed: int = 7,
    fresh: bool = False,
) -> Registry:
    """The registry of `patients` on the database `engine_url` names, built once and cached.

    `engine_url` chooses the database: any `sqlite` URL means the cached file under
    benchmarks/.cache (its own path, if any, is ignored); a PostgreSQL URL means a schema
    `registry_<N>_<weeks>_<seed>` on that server. A registry is built under a temporary name
    and renamed when complete, so an interrupted build is never taken for a cached one.
    `fresh` rebuilds it even if cached.
    """
    physicians = min(physicians, patients)
    name = _name(patients, weeks, seed)
    started = time.perf_counter()
    built = False
    if engine_url.startswith("sqlite"):
        CACHE.mkdir(exist_ok=True)
        path = CACHE / f"{name}.db"
        url = f"sqlite:///{path}"
        if fresh or not path.exists():
            partial = CACHE / f"{name}.building.db"
            for stale in CACHE.glob(f"{name}.building.db*"):
                stale.unlink()
            engine = make_engine(f"sqlite:///{partial}")
            try:
                load_registry(
                    engine, patients=patients, physicians=physicians, weeks=weeks, seed=seed
                )
            finally:
                engine.dispose()  # the last connection closing checkpoints the WAL
            os.replace(partial, path)
            built = True
    else:
        base = postgres_base() if engine_url.startswith("postgres") else engine_url
        url = _schema_url(base, name)
        admin = create_engine(base)
        try:
            with admin.begin() as connection:
                exists = connection.execute(
                    text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"),
                    {"n": name},
                ).first()
                if exists and fresh:
                    connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
                    exists = None
                partial = f"{name}_building"
                if not exists:
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{partial}" CASCADE'))
                    connection.execute(text(f'CREATE SCHEMA "{partial}"'))
            if not exists:
                engine = make_engine(_schema_url(base, partial))
                try:
                    load_registry(
                        engine, patients=patients, physicians=physicians, weeks=weeks, seed=seed
                    )
                finally:
                    engine.dispose()
                with admin.begin() as connection:
                    connection.execute(text(f'ALTER SCHEMA "{partial}" RENAME TO "{name}"'))
                built = True
        finally:
            admin.dispose()
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)  # a registry cached under an older schema gains its new tables
    finally:
        engine.dispose()
    # The last id of each table as built, kept beside the cache: reset_registry deletes
    # whatever lies beyond.
    manifest = CACHE / f"{name}.{'sqlite' if url.startswith('sqlite') else 'postgresql'}.json"
    if built or not manifest.exists():
        engine = make_engine(url)
        try:
            rows = _last_ids(engine)
        finally:
            engine.dispose()
        CACHE.mkdir(exist_ok=True)
        manifest.write_text(json.dumps(rows, indent=1) + "\n")
    rows = json.loads(manifest.read_text())
    return Registry(
        url=url,
        patients=patients,
        physicians=physicians,
        weeks=weeks,
        seed=seed,
        last_ids=rows,
        build_seconds=time.perf_counter() - started if built else None,
    )


def reset_registry(registry: Registry) -> None:
    """Deletes every row a benchmark added beyond the registry as built (ids past the loaded
    ones, and the tables the registry leaves empty), and undoes patient state changes (next
    checks included)."""
    engine = make_engine(registry.url)
    physicians: Table = Physician.__table__  # type: ignore[attr-defined]
    last = registry.last_ids
    try:
        with engine.begin() as connection:
            for table in SCRATCH_TABLES:
                connection.execute(text(f'DELETE FROM "{table}"'))
            for statement, bound in (
                (
                    "DELETE FROM answer WHERE administration_id > :a OR id > :b",
                    ("administration", "answer"),
                ),
                (
                    "DELETE FROM scorerecord WHERE administration_id > :a OR id > :b",
                    ("administration", "scorerecord"),
                ),
                ("DELETE FROM labresult WHERE id > :a", ("labresult",)),
                ("DELETE FROM administration WHERE id > :a", ("administration",)),
                ("DELETE FROM therapyepisode WHERE id > :a", ("therapyepisode",)),
            ):
                connection.execute(
                    text(statement), dict(zip("ab", (last[name] for name in bound), strict=False))
                )
            connection.execute(
                text(
                    "UPDATE patient SET unreachable_since = NULL, paused_until = NULL "
                    "WHERE unreachable_since IS NOT NULL OR paused_until IS NOT NULL"
                )
            )
            # Next checks a tick stored point past the slots it opened, now deleted.
            connection.execute(
                text("UPDATE patient SET next_check_at = NULL WHERE next_check_at IS NOT NULL")
            )
            connection.execute(
                update(physicians).values(digest_weekday=DIGEST_WEEKDAY, digest_time=DIGEST_TIME)
            )
    finally:
        engine.dispose()
