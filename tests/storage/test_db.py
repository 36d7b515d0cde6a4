"""Engine settings and column types behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from storage.db import make_engine, session_scope
from storage.models import Administration, Answer, Patient, Physician


class TestSqlitePragmas:
    def test_wal_foreign_keys_and_busy_timeout(self, tmp_path: object) -> None:
        """SQLite runs in WAL mode with foreign keys enforced and a busy timeout."""
        engine = make_engine(f"sqlite:///{tmp_path}/p.db")
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        engine.dispose()


class TestColumnTypes:
    def _patient(self, engine: Engine) -> int:
        now = datetime(2026, 3, 2, tzinfo=UTC)
        with session_scope(engine) as session:
            physician = Physician(display_name="Dr", created_at=now)
            session.add(physician)
            session.flush()
            assert physician.id is not None
            patient = Patient(
                physician_id=physician.id, clinic_ref="R1", research_id="x", created_at=now
            )
            session.add(patient)
            session.flush()
            assert patient.id is not None
            return patient.id

    def test_decimals_and_datetimes_round_trip_exactly(self, migrated_engine: Engine) -> None:
        """A q6 score of 105/12 min and an aware datetime come back exactly as written."""
        patient_id = self._patient(migrated_engine)
        moment = datetime(2026, 3, 29, 7, 30, 15, tzinfo=timezone(timedelta(hours=2)))
        with session_scope(migrated_engine) as session:
            admin = Administration(
                patient_id=patient_id,
                slot_at=moment,
                instrument_version="v",
                language="en",
                opened_at=moment,
                expires_at=moment,
            )
            session.add(admin)
            session.flush()
            assert admin.id is not None
            session.add(
                Answer(
                    administration_id=admin.id,
                    item_code="q6",
                    raw_value=Decimal("105"),
                    score=Decimal("8.75"),
                    answered_at=moment,
                )
            )
        with session_scope(migrated_engine) as session:
            answer = session.exec(select(Answer)).one()
            assert answer.score == Decimal("8.75")
            assert isinstance(answer.score, Decimal)
            stored = session.exec(select(Administration)).one().slot_at
            assert stored == moment
            assert stored.tzinfo is not None
            assert stored.utcoffset() == timedelta(0)

    def test_naive_datetimes_are_refused(self, migrated_engine: Engine) -> None:
        """Writing a naive datetime is a programming error caught at once."""
        with pytest.raises(Exception, match="timezone-aware"):
            with session_scope(migrated_engine) as session:
                session.add(Physician(display_name="Dr", created_at=datetime(2026, 1, 1)))

    def test_failed_unit_of_work_is_rolled_back(self, migrated_engine: Engine) -> None:
        """An exception inside a session scope leaves nothing behind."""
        with pytest.raises(RuntimeError), session_scope(migrated_engine) as session:
            session.add(Physician(display_name="Dr", created_at=datetime.now(UTC)))
            session.flush()
            raise RuntimeError("boom")
        with session_scope(migrated_engine) as session:
            assert session.exec(select(Physician)).all() == []


class TestSqliteWriterQueue:
    def test_waiting_longer_than_the_busy_timeout_fails_clearly(self, tmp_path: object) -> None:
        """A unit of work that cannot get the database within the busy timeout gives up with
        DatabaseBusyError instead of queueing behind every other waiter."""
        import threading
        import time

        from storage.db import DatabaseBusyError

        engine = make_engine(f"sqlite:///{tmp_path}/q.db", sqlite_busy_timeout_ms=200)
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with session_scope(engine):
                holding.set()
                release.wait(5)

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(5)
        started = time.monotonic()
        with pytest.raises(DatabaseBusyError):
            with session_scope(engine):
                pass
        waited = time.monotonic() - started
        release.set()
        holder.join(5)
        assert 0.15 <= waited < 2
        with session_scope(engine) as session:
            session.exec(text("SELECT 1")).one()
        engine.dispose()
