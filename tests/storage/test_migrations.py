"""The Alembic migrations produce exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from storage import migrate


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
