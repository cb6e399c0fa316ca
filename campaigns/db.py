"""Declarative base, shared column types, engine and session factory, unit_of_work()."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    MetaData,
    Numeric,
    String,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from campaigns.errors import Conflict, NotFound, ValidationError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite keeps no zone, so aware values are converted to naive UTC on the way in and
    tagged as UTC on the way out; PostgreSQL gets a plain `timestamp with time zone`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use campaigns.db.utcnow() or an aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON on every database, JSONB where PostgreSQL can index it.
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")

intpk = Annotated[int, mapped_column(primary_key=True)]
str50 = Annotated[str, mapped_column(String(50))]
str255 = Annotated[str, mapped_column(String(255))]
timestamp = Annotated[datetime, mapped_column(UTCDateTime())]
created_at = Annotated[datetime, mapped_column(UTCDateTime(), default=utcnow)]
json_dict = Annotated[dict[str, Any], mapped_column(JSONType, default=dict)]


class Base(DeclarativeBase):
    """Base of every model; its metadata names constraints so migrations stay stable."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        Decimal: Numeric(12, 2),
    }


SQLITE_BUSY_SECONDS = 30


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite files get WAL, a busy timeout, enforced foreign keys, and a
    queue in which their writers take turns (WriterQueue)."""
    if url.startswith("sqlite"):
        connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_SECONDS}
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            connect_args["factory"] = connection_factory(
                Path(database).resolve(), timeout=SQLITE_BUSY_SECONDS
            )
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own BEGIN handling defers the write lock; issue BEGIN ourselves so
        # SELECT-then-UPDATE transactions take it up front instead of failing on upgrade.
        # Reading units (`Database.reading`) take no lock at all: in WAL mode readers never
        # wait, so a page or a poll is not starved by busy writers.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("reading", False):
        conn.exec_driver_sql("BEGIN")
        return
    raw = conn.connection.dbapi_connection
    if isinstance(raw, QueuedConnection):
        raw.take_turn()
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see make_engine)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.close()


M = TypeVar("M", bound=Base)


def require(session: Session, model: type[M], ident: int, *, what: str) -> M:
    """Load a row by primary key or raise NotFound naming what was asked for."""
    row = session.get(model, ident)
    if row is None:
        raise NotFound(f"no {what} #{ident}")
    return row


def checked_key(raw: str) -> str:
    """An `Idempotency-Key` as given, stripped: 1 to 200 characters."""
    key = raw.strip()
    if not key or len(key) > 200:
        raise ValidationError("give an Idempotency-Key of 1 to 200 characters",
                              field="Idempotency-Key")  # fmt: skip
    return key


def replayed(session: Session, model: type[M], key: str, *, same: Callable[[M], bool],
             used_for: Callable[[M], str]) -> M | None:  # fmt: skip
    """The row a request with this idempotency key wrote before (this one is its replay), or
    None. A key used before for another request is a Conflict saying what it was used for
    (`used_for`: "conversion #3 (contract #7, 480.00 EUR)")."""
    column = model.__table__.c.idempotency_key
    found = session.scalars(select(model).where(column == key)).first()
    if found is None:
        return None
    if not same(found):
        raise Conflict(f"the Idempotency-Key was already used for {used_for(found)}; use a new "
                       "key")  # fmt: skip
    return found


class Database:
    """An engine and its session factory; entry points own one and open units of work on it."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """Open a session, commit when the block ends cleanly, roll back when it raises."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Open a session for reads only: on SQLite it never waits for the write lock."""
        session = Session(self.engine.execution_options(reading=True), expire_on_commit=False)
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


# Writers to one SQLite file take turns in a queue of ours, not in SQLite's busy handler.
#
# SQLite lets one writer at a time hold a database; a writer that finds it taken sleeps and
# tries again, 1, 2, 5, 10 … 100 ms later. The send path commits every few letters (a tenth
# of a millisecond each), so with several sending processes most writers slept through lock
# holders that had long since committed: the workers measured waiting 80–90 % of their time,
# and the machine half idle. Here a writer first takes a thread lock (the threads of its
# process, one at a time) and then an `flock` on a file beside the database (the processes,
# one at a time), and gives both back the moment its transaction commits or rolls back. SQLite's own
# lock still guarantees correctness: this queue only decides who asks next. A writer that
# waits longer than the busy timeout goes on to SQLite's handler, which behaves as before.
POLL_START = 0.00005
POLL_MAX = 0.0005
_SETUP = threading.Lock()


class WriterQueue:
    """The turn-taking of one database file's writers, for this process and across processes."""

    def __init__(self, database: Path, *, timeout: float) -> None:
        self.path = database.with_name(database.name + "-writers.lock")
        self.timeout = timeout
        self._pid = -1
        self._thread_lock = threading.Lock()
        self._fd = -1

    def _for_this_process(self) -> None:
        # After a fork the parent's lock state means nothing here: start afresh (once).
        if self._pid == os.getpid():
            return
        with _SETUP:
            if self._pid != os.getpid():
                self._thread_lock = threading.Lock()
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()

    def acquire(self) -> bool:
        """Wait for this writer's turn; False if it did not come within the timeout."""
        self._for_this_process()
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            return False
        pause = POLL_START
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._thread_lock.release()
                    return False
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


class QueuedConnection(sqlite3.Connection):
    """A SQLite connection that gives its writer's turn back when its transaction ends."""

    queue: WriterQueue | None = None
    _holding = False

    def take_turn(self) -> None:
        """Wait for this connection's turn to write (call right before BEGIN IMMEDIATE)."""
        if self.queue is not None and not self._holding:
            self._holding = self.queue.acquire()

    def _give_back(self) -> None:
        if self._holding and self.queue is not None:
            self._holding = False
            self.queue.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def connection_factory(database: Path, *, timeout: float) -> type[QueuedConnection]:
    """A QueuedConnection class whose connections share one queue for `database`."""
    queue = WriterQueue(database, timeout=timeout)
    attributes: dict[str, Any] = {"queue": queue}
    return type("QueuedConnection", (QueuedConnection,), attributes)
