"""A benchmark leaves the registry as it was built: what it added is deleted afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from benchmarks.registry import Registry, _last_ids, load_registry, reset_registry
from storage.models import Administration, ExportAudit, table_of


def _count(engine: Engine, model: type[SQLModel]) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table_of(model))).scalar_one()
        )


def test_reset_deletes_what_a_benchmark_added(migrated_engine: Engine, database_url: str) -> None:
    load_registry(migrated_engine, patients=4, physicians=2, weeks=3, seed=1)
    registry = Registry(
        url=database_url,
        patients=4,
        physicians=2,
        weeks=3,
        seed=1,
        last_ids=_last_ids(migrated_engine),
        build_seconds=None,
    )
    administrations = _count(migrated_engine, Administration)
    now = datetime(2026, 3, 2, 17, tzinfo=UTC)
    with migrated_engine.begin() as connection:
        connection.execute(
            table_of(ExportAudit).insert(),
            {
                "at": now,
                "by": "bench",
                "format": "wide",
                "filters": "{}",
                "rows": 1,
                "sha256": "0" * 64,
            },
        )
        connection.execute(
            table_of(Administration).insert(),
            {
                "patient_id": 1,
                "slot_at": now,
                "kind": "checkin",
                "status": "open",
                "return_to_summary": False,
                "instrument_version": "basdai-v1",
                "language": "en",
                "opened_at": now,
                "expires_at": now,
                "reminders_sent": 0,
            },
        )
    reset_registry(registry)
    assert _count(migrated_engine, ExportAudit) == 0
    assert _count(migrated_engine, Administration) == administrations
