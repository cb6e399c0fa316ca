"""Hits on letters' pixels and links, written as events in groups by one thread per process.

A pixel or a click must answer fast under bursts (a campaign's letters arrive together, and
so do the proxies and scanners fetching them). A transaction per hit made every hit queue
for the database's write lock; waiting for a group commit instead still cost each hit two
thread switches, which on a busy web process means waiting for Python's GIL. So a request
hands its hit to the process's `HitWriter` and answers at once; the writer takes every hit
handed to it since its last commit and writes them in one transaction: one look-up of their
deliveries, one look at recent clicks (scanners follow every link at once), one INSERT, with
SQL prepared once (docs/machine-traffic.md has the figures). What this gives up: hits
answered but not yet committed — the last few milliseconds' — are lost if the process is
killed; a normal exit writes them first (`flush_all`, at exit).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Connection, Engine, Integer, bindparam, event, text

from campaigns.db import JSONType, UTCDateTime
from campaigns.models import DELIVERED_STATES, EventKind
from campaigns.tracking import machines
from campaigns.tracking.machines import Hit

log = logging.getLogger(__name__)

DELIVERED_SQL = ", ".join(f"'{state.value}'" for state in DELIVERED_STATES)
CLICKS = (EventKind.CLICK, EventKind.RENEWAL_CLICK)
_CLICKS_SQL = ", ".join(f"'{kind.value}'" for kind in CLICKS)

_NAMED = re.compile(r"(?<!:):(\w+)")  # a `:name` parameter (not a `::` cast)

# (The f-strings below insert enum values of this codebase's own, never data.)
_DELIVERIES = (
    text(
        "SELECT id, contact_id, letter_version_id, sent_at FROM deliveries "  # noqa: S608
        f"WHERE id IN :ids AND state IN ({DELIVERED_SQL})"
    )
    .bindparams(bindparam("ids", expanding=True))
    .columns(id=Integer(), contact_id=Integer(), letter_version_id=Integer(), sent_at=UTCDateTime())
)
_RECENT_CLICKS = (
    text(
        "SELECT id, delivery_id, kind, link_id, occurred_at, is_machine, detail "  # noqa: S608
        f"FROM events WHERE delivery_id IN :ids AND kind IN ({_CLICKS_SQL}) "
        # A bound on a link hammered by someone: scanners follow each link once or twice.
        "AND occurred_at >= :since ORDER BY occurred_at DESC LIMIT 200"
    )
    .bindparams(bindparam("ids", expanding=True), bindparam("since", type_=UTCDateTime()))
    .columns(occurred_at=UTCDateTime(), is_machine=Boolean(), detail=JSONType)
)
_FLAG = text("UPDATE events SET is_machine = :machine, detail = :detail WHERE id = :id").bindparams(
    bindparam("machine", type_=Boolean()), bindparam("detail", type_=JSONType)
)
_INSERT = text(
    "INSERT INTO events (kind, delivery_id, contact_id, link_id, occurred_at, user_agent, "
    "is_machine, detail) VALUES (:kind, :delivery_id, :contact_id, :link_id, :occurred_at, "
    ":user_agent, :is_machine, :detail)"
).bindparams(
    bindparam("occurred_at", type_=UTCDateTime()),
    bindparam("is_machine", type_=Boolean()),
    bindparam("detail", type_=JSONType),
)


@dataclass(slots=True)
class Pending:
    """A hit waiting to be written."""

    kind: EventKind
    delivery_id: int
    hit: Hit
    now: datetime
    link_id: int | None = None
    # The version a clicked link belongs to: a click counts only for a letter of it.
    version_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def link(self) -> str:
        """Which link of the letter was followed (for `machines.clicked_together`)."""
        return link_key(self.kind, self.link_id, self.detail)


def link_key(kind: str, link_id: int | None, detail: dict[str, Any]) -> str:
    if kind == EventKind.RENEWAL_CLICK:
        return f"renewal:{detail.get('contract_id')}"
    return f"link:{link_id}"


class HitWriter:
    """Writes the hits of every request thread of a process, in groups."""

    IDLE_SECONDS = 5.0  # the thread goes away after this long unused
    RETRY_SECONDS = (0.1, 1.0, 5.0)  # a group that failed is tried again after these pauses
    GATHER_SECONDS = 0.05

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.links: dict[int, tuple[int, str]] = {}  # stored links read: version, URL
        self._own = threading.local()  # each request thread's connection for `lookup`
        self._opened: list[Any] = []  # all of them, closed with the engine
        event.listen(engine, "engine_disposed", self._close_lookups)
        self._postgresql = engine.dialect.name == "postgresql"
        self._queue: queue.SimpleQueue[Pending | threading.Event] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def lookup(self, sql: str, parameters: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of one read (SQL with `:name` parameters), or None.

        The hit path's one read goes straight to the driver on a connection of the
        request thread's own, in autocommit: through SQLAlchemy (pool check-out, BEGIN,
        ROLLBACK, result objects) it cost more than the rest of a click together.
        """
        connection: Any = getattr(self._own, "connection", None)
        if connection is None:
            raw = self.engine.raw_connection()
            raw.detach()  # this thread's for good: not the pool's to count or hand out
            connection = raw.dbapi_connection
            if self._postgresql:
                connection.autocommit = True  # a lone SELECT: no transaction left open
            self._own.connection = connection
            self._own.prepared = set()  # the statements prepared on it
            with self._lock:
                self._opened.append(connection)
        try:
            if self._postgresql:
                return _libpq_row(connection.pgconn, self._own.prepared, sql, parameters)
            cursor = connection.cursor()
            cursor.execute(sql, parameters)  # sqlite3 takes `:name` parameters as they are
            row = cursor.fetchone()
            cursor.close()
        except Exception:
            self._own.connection = None  # broken (a restarted server): a new one next time
            with contextlib.suppress(Exception):
                connection.close()
            raise
        return None if row is None else tuple(row)

    def _close_lookups(self, _engine: Engine) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            with contextlib.suppress(Exception):
                connection.close()

    def write(self, pending: Pending) -> None:
        """Hand `pending` to the writer thread; it is committed within milliseconds."""
        self._queue.put(pending)
        self._start_if_idle()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every hit handed over so far is written; False if that took too long."""
        done = threading.Event()
        self._queue.put(done)
        self._start_if_idle()
        return done.wait(timeout)

    def _start_if_idle(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                group = [self._queue.get(timeout=self.IDLE_SECONDS)]
            except queue.Empty:
                with self._lock:  # `_start_if_idle` starts a new thread for a later hit
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if isinstance(group[0], Pending):
                # Let a few milliseconds' hits gather: a transaction costs about as much
                # as 20 hits' rows, and nobody waits for them (a flush waits this long).
                time.sleep(self.GATHER_SECONDS)
            while True:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            pending = [p for p in group if isinstance(p, Pending)]
            if pending:
                self._write(pending)
            for flushed in group:
                if isinstance(flushed, threading.Event):
                    flushed.set()

    def _write(self, group: list[Pending]) -> None:
        """Write a group in one transaction, trying again a few times before giving up."""
        for pause in (*self.RETRY_SECONDS, None):
            try:
                with self.engine.connect() as connection, connection.begin():
                    write_group(connection, group)
                return
            except Exception:
                if pause is None:
                    log.exception("%d hits could not be recorded", len(group))
                    return
                log.warning("writing %d hits failed; trying again", len(group), exc_info=True)
                time.sleep(pause)


def write_group(connection: Connection, group: list[Pending]) -> None:
    """Classify the hits of delivered letters and insert them; skip the others."""
    ids = sorted({p.delivery_id for p in group})
    delivered = {row.id: row for row in connection.execute(_DELIVERIES, {"ids": ids})}
    # A hit is answered before this look: one of a letter never delivered, or a click on a
    # link of another letter than its token's, goes no further.
    group = [p for p in group if p.delivery_id in delivered
             and p.version_id in (None, delivered[p.delivery_id].letter_version_id)]  # fmt: skip
    for pending in group:
        sent_at = delivered[pending.delivery_id].sent_at
        why = machines.reason(pending.hit, sent_at=sent_at, now=pending.now)
        if why is not None:
            pending.detail["machine"] = why
    clicks = [p for p in group if p.kind in CLICKS]
    if clicks:
        _flag_links_together(connection, clicks)
    if group:
        connection.execute(_INSERT, [
            {"kind": p.kind.value, "delivery_id": p.delivery_id,
             "contact_id": delivered[p.delivery_id].contact_id, "link_id": p.link_id,
             "occurred_at": p.now, "user_agent": p.hit.user_agent[:500],
             "is_machine": "machine" in p.detail, "detail": p.detail}
            for p in group
        ])  # fmt: skip


def _flag_links_together(connection: Connection, clicks: list[Pending]) -> None:
    """Flag new and stored clicks of a letter that came within a second on different links."""
    since = min(p.now for p in clicks) - machines.LINKS_TOGETHER
    stored = list(connection.execute(
        _RECENT_CLICKS, {"ids": sorted({p.delivery_id for p in clicks}), "since": since}
    ))  # fmt: skip
    together = machines.clicked_together([
        *(machines.Click(row.delivery_id, link_key(row.kind, row.link_id, row.detail or {}),
                         row.occurred_at) for row in stored),
        *(machines.Click(p.delivery_id, p.link, p.now) for p in clicks),
    ])  # fmt: skip
    for position in sorted(together):
        if position < len(stored):
            row = stored[position]
            if not row.is_machine:
                detail = dict(row.detail or {}, machine="links-together")
                connection.execute(_FLAG, {"id": row.id, "machine": True, "detail": detail})
        else:
            pending = clicks[position - len(stored)]
            pending.detail.setdefault("machine", "links-together")


_INTEGERS = {20, 21, 23}  # PostgreSQL's int8, int2 and int4


def _libpq_row(
    pgconn: Any, prepared: set[bytes], sql: str, parameters: dict[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of a read, run as a statement prepared once per connection through
    libpq itself (psycopg's `pq` layer): psycopg's cursor spends about 0.7 ms of Python on
    each execute, libpq a few µs. Values come back as int, str or None."""
    names = _NAMED.findall(sql)
    statement = f"hit_{abs(hash(sql)):x}".encode()
    if statement not in prepared:
        numbered = sql
        for position, name in enumerate(dict.fromkeys(names), start=1):
            numbered = re.sub(rf"(?<!:):{name}\b", f"${position}", numbered)
        _checked(pgconn.prepare(statement, numbered.encode()), pgconn)
        prepared.add(statement)
    values = [None if parameters[n] is None else str(parameters[n]).encode()
              for n in dict.fromkeys(names)]  # fmt: skip
    result = _checked(pgconn.exec_prepared(statement, values), pgconn)
    if result.ntuples == 0:
        return None
    row: list[Any] = []
    for column in range(result.nfields):
        raw = result.get_value(0, column)
        if raw is None:
            row.append(None)
        else:
            text_value = bytes(raw).decode()
            row.append(int(text_value) if result.ftype(column) in _INTEGERS else text_value)
    return tuple(row)


def _checked(result: Any, pgconn: Any) -> Any:
    from psycopg import pq

    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        message = (result.error_message or pgconn.error_message or b"").decode(errors="replace")
        raise RuntimeError(f"PostgreSQL refused a hit's look-up: {message.strip()}")
    return result


# Keyed by the engine itself (not its id, which a new engine may reuse) and the process.
_writers: dict[tuple[int, Engine], HitWriter] = {}
_writers_lock = threading.Lock()


def writer(engine: Engine) -> HitWriter:
    """This process's hit writer for `engine` (a forked child gets its own)."""
    found = _writers.get((os.getpid(), engine))  # no lock on the hit path once made
    if found is None:
        with _writers_lock:
            found = _writers.setdefault((os.getpid(), engine), HitWriter(engine))
    return found


@atexit.register
def flush_all() -> None:
    """Write the hits every writer of this process still holds (at exit)."""
    for (pid, _engine), found in list(_writers.items()):
        if pid == os.getpid():
            found.flush(timeout=10.0)
