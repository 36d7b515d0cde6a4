"""Engine creation and the unit-of-work session scope; the only place connections are opened."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, CursorResult, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.expression import Executable
from sqlalchemy.util import greenlet_spawn
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 15_000
POSTGRES_POOL: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}
"""Connections of one PostgreSQL engine: checked before use (the first request after an outage
gets a fresh one), at most 20."""

P = ParamSpec("P")
R = TypeVar("R")


def _postgres_connect_args(url: str | URL) -> dict[str, str]:
    """Every PostgreSQL session in UTC, the zone every stored time is kept in, beside any
    `options` the URL already sets (a search path, say).

    psycopg then returns times with `datetime.UTC` itself, which `UTCDateTime` passes on as
    they are, instead of the server's default zone (`Etc/UTC` as a ZoneInfo, or a local zone)
    converted once per value read; and a time the database itself turns into text or a day
    is taken in UTC whatever the server's own TimeZone setting."""
    given = make_url(url).query.get("options", "")
    options = " ".join(given) if isinstance(given, tuple) else given
    return {"options": f"{options} -c TimeZone=UTC".strip()}


def _configure_sqlite(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    """WAL for concurrent readers, foreign keys on, a busy timeout instead of instant failure."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class WouldWait(BaseException):
    """A unit of work asked to start at once (`first_unit_at_once`) found the database taken.

    Nothing has been read or written yet, so the caller can run the same work again where
    waiting is harmless. It derives from BaseException so that no `except Exception` on the
    way mistakes it for a failure.
    """


class QueueTaken(WouldWait):
    """`WouldWait` because another unit of work of this process holds SQLite's writer queue.

    That unit is about to finish, so the caller can wait for it without a thread
    (`writer_queue_released`) and try again.
    """


class _AtOnce:
    """The pending request of `first_unit_at_once`: made good by the first unit of work."""

    def __init__(self) -> None:
        self.pending = True


_FIRST_UNIT_AT_ONCE: ContextVar[_AtOnce | None] = ContextVar(
    "spondybot_first_unit_at_once", default=None
)
_BEGIN_AT_ONCE = "spondybot_begin_at_once"
"""Execution option of a connection whose BEGIN must not wait (see `_begin_immediate`)."""


@contextmanager
def first_unit_at_once() -> Iterator[None]:
    """While the block runs, its first unit of work starts only if it can do so without waiting.

    On SQLite that means this process's writer queue is free and no other process holds the
    write lock; otherwise `session_scope` raises `WouldWait` before the unit of work has read
    or written anything. On PostgreSQL every statement waits on the network, so the first unit
    of work raises `WouldWait` unless its engine awaits instead (`make_awaiting_engine`).
    Later units of work of the block wait as usual.
    """
    token = _FIRST_UNIT_AT_ONCE.set(_AtOnce())
    try:
        yield
    finally:
        _FIRST_UNIT_AT_ONCE.reset(token)


def starting_at_once() -> bool:
    """Whether the next unit of work must start without waiting (see `first_unit_at_once`)."""
    request = _FIRST_UNIT_AT_ONCE.get()
    return request is not None and request.pending


def _takes_first_turn() -> bool:
    """Whether the unit of work starting now must start at once (and uses up the request)."""
    request = _FIRST_UNIT_AT_ONCE.get()
    if request is None or not request.pending:
        return False
    request.pending = False
    return True


def _begin_immediate(conn: Connection, busy_timeout_ms: int) -> None:
    """Take SQLite's write lock at BEGIN, so two writers queue instead of deadlocking mid-way.

    Under `first_unit_at_once` the lock is asked for without the busy timeout, straight on the
    driver's connection (three statements, every press): if it cannot be had at once, for
    whatever reason, `WouldWait` is raised, and the unit of work is run again where waiting
    (and reporting a lasting error) is harmless.
    """
    if not conn.get_execution_options().get(_BEGIN_AT_ONCE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise WouldWait("the database cannot be taken at once") from error
        finally:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    finally:
        cursor.close()


def private_database_file(path: Path) -> None:
    """Creates the SQLite file readable by its owner only (0600), or makes an existing one so.

    SQLite creates its -wal and -shm files with the database file's permissions, so they are
    private too; health data is never left readable by every account of the machine.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)
    for companion in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if companion.exists() and companion.stat().st_mode & 0o077:
            companion.chmod(0o600)


def has_single_writer(engine: Engine) -> bool:
    """Whether one writer holds the whole database at a time (SQLite): a long job then pauses
    between its transactions, since SQLite's waiting writers only poll for the lock (at most
    every 100 ms) and one that commits and begins again at once would keep them out."""
    return engine.dialect.name == "sqlite"


def make_engine(
    url: str, *, echo: bool = False, sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Engine:
    """Creates an engine for `url`; SQLite gets WAL, foreign keys and a busy timeout.

    `sqlite_busy_timeout_ms` is how long a unit of work waits for another process's write lock
    before it fails (the person is then asked to try again in a moment).
    """
    if url.startswith("sqlite"):
        memory = url in {"sqlite://", "sqlite:///:memory:"}
        if not memory:
            path = url.split("///", 1)[-1].split("?", 1)[0]
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                private_database_file(Path(path))
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout_ms / 1000},
            poolclass=StaticPool if memory else None,
        )
        # pysqlite's own transaction handling is disabled so BEGIN IMMEDIATE can be issued.
        event.listen(
            engine,
            "connect",
            lambda dbapi_conn, _rec: _configure_sqlite(dbapi_conn, sqlite_busy_timeout_ms),
        )
        event.listen(
            engine,
            "connect",
            lambda dbapi_conn, _rec: setattr(dbapi_conn, "isolation_level", None),
        )
        event.listen(
            engine,
            "begin",
            lambda conn: _begin_immediate(conn, sqlite_busy_timeout_ms),
        )
        with _sqlite_writers_guard:
            _sqlite_writers[engine] = _WriterLock(sqlite_busy_timeout_ms / 1000)
        return engine
    return create_engine(url, echo=echo, connect_args=_postgres_connect_args(url), **POSTGRES_POOL)


class DatabaseBusyError(RuntimeError):
    """The database stayed locked by another process longer than the busy timeout."""


class _WriterLock:
    """This process's queue for SQLite's single writer, waiting no longer than the busy timeout.

    SQLite allows one writer; a waiting connection polls with sleeps that grow to 100 ms, so
    dozens of concurrent updates would spend most of their time asleep. Within one process this
    lock hands the database over at once. It is re-entrant, and a unit of work that cannot get
    it within the busy timeout (another process holds the database) fails like SQLite itself
    would, instead of queueing behind every other waiter.
    """

    def __init__(self, timeout_s: float) -> None:
        self._lock = threading.RLock()
        self._timeout_s = timeout_s
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiters_guard = threading.Lock()

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=self._timeout_s):
            raise DatabaseBusyError("the database is busy; try again in a moment")

    @contextmanager
    def held_at_once(self) -> Iterator[None]:
        """Holds the lock for the block if it is free now; `QueueTaken` otherwise."""
        if not self._lock.acquire(blocking=False):
            raise QueueTaken("another unit of work of this process holds the database")
        try:
            yield
        finally:
            self._release()

    def __exit__(self, *_exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self._lock.release()
        if self._waiters:  # a waiter that registers after this check finds the lock free
            with self._waiters_guard:
                waiters, self._waiters = self._waiters, []
            for loop, future in waiters:
                # A closed loop has no one left waiting; this unit of work has committed
                # already, so nothing may raise here.
                with suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, future)

    async def released(self, patience_s: float) -> None:
        """Returns on the event loop once the lock is free, or after `patience_s` seconds,
        whichever comes first (the lock may be taken again by then: the caller tries again)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._waiters_guard:
            self._waiters.append((loop, future))
        if self._lock.acquire(blocking=False):  # let go before we registered
            self._lock.release()
            return
        timer = loop.call_later(patience_s, _settle, future)
        try:
            await future
        finally:
            timer.cancel()
            with self._waiters_guard:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_sqlite_writers: WeakKeyDictionary[Engine, _WriterLock] = WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


def _writer_lock_of(engine: Engine) -> _WriterLock:
    with _sqlite_writers_guard:
        lock = _sqlite_writers.get(engine)
        if lock is None:
            lock = _sqlite_writers[engine] = _WriterLock(SQLITE_BUSY_TIMEOUT_MS / 1000)
    return lock


async def writer_queue_released(engine: Engine, patience_s: float) -> None:
    """Waits on the event loop, at most `patience_s` seconds, until no other unit of work of
    this process holds a SQLite engine's writer queue (see `QueueTaken`); at once otherwise."""
    if engine.dialect.name == "sqlite":
        await _writer_lock_of(engine).released(patience_s)


def _in_process_writer_lock(engine: Engine) -> AbstractContextManager[Any]:
    """The writer queue of a SQLite engine (see `_WriterLock`); nothing for PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    return _writer_lock_of(engine)


@contextmanager
def _unit_of_work(engine: Engine) -> Iterator[Session]:
    """A new session that commits when the block succeeds and rolls back when it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def _session_at_once(engine: Engine) -> Iterator[Session]:
    """A unit of work that starts without waiting (see `first_unit_at_once`), or `WouldWait`.

    On SQLite it has taken the writer queue and the write lock at once. A PostgreSQL engine
    from `make_awaiting_engine`, used under `run_awaiting`, never holds up the event loop, so
    its unit of work simply starts; any other PostgreSQL engine would wait on the network.
    """
    if engine.dialect.name != "sqlite":
        if not engine.dialect.is_async:
            raise WouldWait("PostgreSQL units of work wait on the network")
        with _unit_of_work(engine) as session:
            yield session
        return
    with _writer_lock_of(engine).held_at_once(), _unit_of_work(engine) as session:
        session.connection(execution_options={_BEGIN_AT_ONCE: True})  # BEGIN IMMEDIATE now
        yield session


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits when the block succeeds, rolls back when it raises.

    A new session is opened for each call and is not shared between threads or tasks.
    """
    if _takes_first_turn():
        with _session_at_once(engine) as session:
            yield session
        return
    with _in_process_writer_lock(engine), _unit_of_work(engine) as session:
        yield session


def make_awaiting_engine(engine: Engine) -> AsyncEngine:
    """For a PostgreSQL engine, a twin on the same database whose connections wait on the event
    loop (psycopg's asyncio interface) instead of blocking it. (SQLite needs none: its
    statements never wait on a network.) Its `sync_engine` works only inside `run_awaiting`,
    on the loop it was made on; close it with `await twin.dispose()`."""
    return create_async_engine(
        engine.url, connect_args=_postgres_connect_args(engine.url), **POSTGRES_POOL
    )


async def run_awaiting(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Runs synchronous code on the event loop; each statement it runs on an awaiting engine's
    `sync_engine` is awaited, so other tasks go on meanwhile (SQLAlchemy's greenlet bridge)."""
    return await greenlet_spawn(partial(function, *args, **kwargs))


# Hot-path statements are built once, at import, with `bindparam` bind parameters, and run
# as Core statements: on SQLite, building an ORM statement and loading entities costs several
# times more than running the statement itself, and a button press runs about ten of them.


def planned_for_index_reads(session: Session) -> Connection:
    """The session's connection, with PostgreSQL told, for the rest of its transaction, to
    plan reads of a few patients' rows (a digest's panel, an export's batch) by their indexes
    and for their own bounds. Nothing to tell SQLite.

    psycopg prepares a statement it has run five times, and PostgreSQL may then switch to a
    generic plan, which cannot tell a batch's few patients from the whole table: each read
    then costs several times as much, and more as the table grows.

    Such a read takes a few thousand rows by index; at the default cost of a random page (4,
    a spinning disk's) PostgreSQL prefers to hash a whole table instead. A digest's course
    read hashed every stored score of a 100,000-patient registry (2.2 s, against 52 ms by
    index), so the night's cost would grow with the square of the registry. 1.1 is the usual
    value for data on SSD or in memory.

    Nor are these reads run in parallel: the statistics of a large registry overestimate the
    rows of a patient, and parallel plans then gather and sort every row, twice as slow as
    reading them by index alone, on a server whose cores the application already shares.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # set_config(..., true) is SET LOCAL; all in one round trip.
        connection.exec_driver_sql(
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
            " set_config('random_page_cost', '1.1', true),"
            " set_config('max_parallel_workers_per_gather', '0', true)"
        )
    return connection


def run_prepared(
    session: Session, statement: Executable, params: Mapping[str, Any] | None = None
) -> CursorResult[Any]:
    """Executes a statement built once at import (Core, on tables) in the session's transaction.

    Pending ORM changes are flushed first, as an ORM query would do, so the statement sees them.
    """
    session.flush()
    return session.connection().execute(statement, dict(params or {}))


def cached_row(session: Session, model: type[Any], row_id: int) -> Any:
    """The session's cached copy of a row, or None if this unit of work has not loaded it."""
    return session.identity_map.get(session.identity_key(model, row_id))


def sync_cached(session: Session, model: type[Any], row_id: int, **values: Any) -> None:
    """Tells the session's cached copy of a row, if it holds one, what a Core UPDATE has just
    written, so later reads in the same unit of work agree with the database without
    querying it again (an ORM bulk UPDATE does this itself, at a price)."""
    instance = cached_row(session, model, row_id)
    if instance is not None:
        for name, value in values.items():
            set_committed_value(instance, name, value)
