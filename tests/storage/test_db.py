"""Engine settings and column types behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from storage import migrate
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


class TestSqliteFilePermissions:
    def test_database_and_its_wal_files_are_private(self, tmp_path: Path) -> None:
        """The database, -wal and -shm files are created 0600 whatever the umask, and an
        existing world-readable database is made private."""
        previous = os.umask(0o022)
        try:
            engine = make_engine(f"sqlite:///{tmp_path}/p.db")
            migrate.upgrade(engine)
            with engine.connect() as conn:  # keeps -wal and -shm while it is open
                conn.execute(text("SELECT 1"))
                names = ["p.db", "p.db-wal", "p.db-shm"]
                modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in names}
            engine.dispose()
            old = tmp_path / "old.db"
            old.touch(mode=0o644)
            make_engine(f"sqlite:///{old}").dispose()
        finally:
            os.umask(previous)
        assert modes == dict.fromkeys(names, 0o600)
        assert stat.S_IMODE(old.stat().st_mode) == 0o600


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

    @staticmethod
    def _administration(patient_id: int, moment: datetime) -> Administration:
        return Administration(
            patient_id=patient_id,
            slot_at=moment,
            instrument_version="v",
            language="en",
            opened_at=moment,
            expires_at=moment,
        )

    def test_decimals_and_datetimes_round_trip_exactly(self, migrated_engine: Engine) -> None:
        """A q6 score of 105/12 min and an aware datetime come back exactly as written."""
        patient_id = self._patient(migrated_engine)
        moment = datetime(2026, 3, 29, 7, 30, 15, tzinfo=timezone(timedelta(hours=2)))
        with session_scope(migrated_engine) as session:
            admin = self._administration(patient_id, moment)
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

    def test_times_come_back_in_utc_itself_whatever_the_servers_zone(
        self, database_url: str
    ) -> None:
        """Read times carry `datetime.UTC` itself. On PostgreSQL, whose server zone is set to
        Berlin here through the URL's own options (beside its search path), the times the
        database writes as text are UTC too."""
        postgres = not database_url.startswith("sqlite")
        url = database_url
        if postgres:
            url = database_url.replace("options=", "options=-cTimeZone%3DEurope/Berlin%20", 1)
        engine = make_engine(url)
        migrate.upgrade(engine)
        patient_id = self._patient(engine)
        moment = datetime(2026, 3, 29, 7, 30, 15, tzinfo=UTC)
        try:
            with session_scope(engine) as session:
                session.add(self._administration(patient_id, moment))
            with session_scope(engine) as session:
                stored = session.exec(select(Administration)).one().slot_at
                assert stored == moment
                assert stored.tzinfo is UTC
                if postgres:
                    as_text = session.connection().execute(
                        text("SELECT to_char(slot_at, 'YYYY-MM-DD HH24:MI') FROM administration")
                    )
                    assert as_text.scalar_one() == "2026-03-29 07:30"
                    search_path = session.connection().execute(text("SHOW search_path"))
                    assert search_path.scalar_one().startswith("t_")
        finally:
            engine.dispose()

    @pytest.mark.parametrize(
        ("stored", "read"),
        [
            ("2026-03-29 07:30:15.250000", datetime(2026, 3, 29, 7, 30, 15, 250000, tzinfo=UTC)),
            ("2026-03-29 07:30:15", datetime(2026, 3, 29, 7, 30, 15, tzinfo=UTC)),
            ("2026-03-29T09:30:15+02:00", datetime(2026, 3, 29, 7, 30, 15, tzinfo=UTC)),
        ],
    )
    def test_sqlite_text_is_read_as_utc(self, tmp_path: Path, stored: str, read: datetime) -> None:
        """SQLite keeps times as text: naive text is UTC (as written), and text someone wrote
        with an offset is moved to UTC rather than taken for UTC."""
        engine = make_engine(f"sqlite:///{tmp_path / 'text.db'}")
        migrate.upgrade(engine)
        patient_id = self._patient(engine)
        try:
            with session_scope(engine) as session:
                session.add(self._administration(patient_id, datetime(2026, 1, 1, tzinfo=UTC)))
            with session_scope(engine) as session:
                session.connection().execute(
                    text("UPDATE administration SET slot_at = :stored"), {"stored": stored}
                )
            with session_scope(engine) as session:
                slot_at = session.exec(select(Administration)).one().slot_at
            assert slot_at == read
            assert slot_at.tzinfo is UTC
        finally:
            engine.dispose()

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


def _physician_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.exec(select(Physician)).all())


def _add_physician(engine: Engine, name: str = "Dr") -> None:
    with session_scope(engine) as session:
        session.add(Physician(display_name=name, created_at=datetime.now(UTC)))


def _held_by_a_thread(engine: Engine, release: threading.Event) -> threading.Thread:
    """A thread whose unit of work adds a physician and holds the database until `release`
    is set; returned once it holds it."""
    holding = threading.Event()

    def hold() -> None:
        with session_scope(engine) as session:
            session.add(Physician(display_name="holder", created_at=datetime.now(UTC)))
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    return holder


class TestFirstUnitAtOnce:
    """`first_unit_at_once`: the first unit of work starts without waiting, or not at all."""

    def test_a_free_sqlite_database_is_taken_at_once(self, migrated_engine: Engine) -> None:
        """On SQLite with nobody writing, the unit of work runs and commits; on PostgreSQL it
        is refused with WouldWait before anything is written."""
        from storage.db import WouldWait, first_unit_at_once

        if migrated_engine.dialect.name == "sqlite":
            with first_unit_at_once():
                _add_physician(migrated_engine)
            assert _physician_count(migrated_engine) == 1
        else:
            with pytest.raises(WouldWait), first_unit_at_once():
                _add_physician(migrated_engine)
            assert _physician_count(migrated_engine) == 0

    def test_only_the_first_unit_is_asked_not_to_wait(self, tmp_path: object) -> None:
        """Later units of work of the block wait as usual, and outside the block nothing
        changes (SQLite: on PostgreSQL the first unit of work is always refused)."""
        from storage import migrate
        from storage.db import first_unit_at_once, starting_at_once

        engine = make_engine(f"sqlite:///{tmp_path}/units.db")
        migrate.upgrade(engine)
        assert not starting_at_once()
        with first_unit_at_once():
            assert starting_at_once()
            _add_physician(engine, "first")
            assert not starting_at_once()
            _add_physician(engine, "second")
        assert not starting_at_once()
        assert _physician_count(engine) == 2
        engine.dispose()

    def test_a_unit_of_work_of_this_process_holding_the_database(self, tmp_path: object) -> None:
        """While another thread's unit of work holds the database, the first unit of work is
        refused at once, before its block has run; the holder's work is unaffected."""
        import time

        from storage import migrate
        from storage.db import QueueTaken, first_unit_at_once

        engine = make_engine(f"sqlite:///{tmp_path}/held.db")
        migrate.upgrade(engine)
        release = threading.Event()
        holder = _held_by_a_thread(engine, release)
        body_ran = False
        started = time.monotonic()
        with pytest.raises(QueueTaken), first_unit_at_once(), session_scope(engine):
            body_ran = True
        assert time.monotonic() - started < 0.5
        assert not body_ran
        release.set()
        holder.join(5)
        assert _physician_count(engine) == 1
        engine.dispose()

    def test_another_process_holding_the_write_lock(self, tmp_path: object) -> None:
        """A write lock held by another connection (another process, say) refuses the first
        unit of work at once, without waiting out the busy timeout; the connection keeps its
        busy timeout for the next unit of work, which waits as usual."""
        import sqlite3
        import time

        from storage import migrate
        from storage.db import QueueTaken, WouldWait, first_unit_at_once

        path = f"{tmp_path}/other.db"
        engine = make_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=3000)
        migrate.upgrade(engine)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(WouldWait) as refused, first_unit_at_once():
            _add_physician(engine)
        assert time.monotonic() - started < 0.5
        assert not isinstance(refused.value, QueueTaken)  # nothing of ours to wait for
        other.execute("COMMIT")
        other.close()
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 3000
        _add_physician(engine)
        assert _physician_count(engine) == 1
        engine.dispose()

    def test_the_writer_queue_is_awaited_until_its_holder_ends(self, tmp_path: object) -> None:
        """`writer_queue_released` returns as soon as the holding unit of work of another
        thread ends, long before its patience runs out; with nobody holding it, at once."""
        import asyncio
        import time

        from storage import migrate
        from storage.db import writer_queue_released

        engine = make_engine(f"sqlite:///{tmp_path}/queue.db")
        migrate.upgrade(engine)
        release = threading.Event()

        async def wait_for_holder() -> tuple[float, float]:
            started = time.monotonic()
            await writer_queue_released(engine, 0)  # free: returns at once
            free = time.monotonic() - started
            holder = _held_by_a_thread(engine, release)
            threading.Timer(0.2, release.set).start()
            started = time.monotonic()
            await writer_queue_released(engine, 30)
            waited = time.monotonic() - started
            holder.join(5)
            return free, waited

        free, waited = asyncio.run(wait_for_holder())
        assert free < 0.05
        assert 0.05 < waited < 5
        assert _physician_count(engine) == 1
        engine.dispose()

    def test_would_wait_is_not_an_ordinary_exception(self) -> None:
        """No `except Exception` between the unit of work and the caller can swallow it."""
        from storage.db import WouldWait

        assert not issubclass(WouldWait, Exception)
