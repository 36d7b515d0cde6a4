"""The Alembic migrations produce exactly the schema the models describe, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from storage import migrate
from storage.db import make_engine
from storage.models import Patient, Physician, table_of


class TestMigrations:
    def test_migrations_match_models(self, migrated_engine: Engine) -> None:
        """After upgrading, autogenerate finds nothing left to change."""
        with migrated_engine.connect() as connection:
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, SQLModel.metadata)
        assert differences == []

    def test_upgrade_is_idempotent_and_reaches_head(self, migrated_engine: Engine) -> None:
        """Running the upgrade again changes nothing and reports the newest revision."""
        migrate.upgrade(migrated_engine)
        assert migrate.current_revision(migrated_engine) == migrate.head_revision()
        tables = set(inspect(migrated_engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables

    def test_patients_stored_before_the_next_check_start_unknown(self, database_url: str) -> None:
        """Migration 0007 gives every patient already stored an unknown next check (NULL), so
        the first tick works each one out; its downgrade removes the column again."""
        engine = make_engine(database_url)
        at = datetime(2026, 3, 1, tzinfo=UTC)
        physician = Physician(id=1, display_name="Dr. Old", created_at=at).model_dump()
        patient = Patient(
            id=1, physician_id=1, clinic_ref="MRN-OLD", research_id="r" * 32, created_at=at
        ).model_dump(exclude={"next_check_at"})
        try:
            migrate.upgrade(engine, "0006")
            with engine.begin() as connection:
                connection.execute(table_of(Physician).insert().values(physician))
                connection.execute(table_of(Patient).insert().values(patient))
            migrate.upgrade(engine)
            with engine.connect() as connection:
                checks = connection.execute(select(table_of(Patient).c.next_check_at)).all()
            assert [tuple(row) for row in checks] == [(None,)]
            with engine.begin() as connection:
                config = migrate.alembic_config()
                config.attributes["connection"] = connection
                command.downgrade(config, "0006")
            columns = {column["name"] for column in inspect(engine).get_columns("patient")}
            assert "next_check_at" not in columns
        finally:
            engine.dispose()
