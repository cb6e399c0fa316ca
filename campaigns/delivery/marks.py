"""The send path's per-letter writes: SQL prepared once, written by one thread per process.

Before each letter goes to SMTP, its row is marked in flight (so a crash leaves at most that
one letter's fate unknown), and the outcomes of the letters sent since are recorded.

- Written with the ORM (`update()` built per call, its cache key computed, the ORM's
  bulk-update path) these two statements cost about a millisecond of Python per letter —
  more than rendering and sending the letter. Here they are SQL text built once per letter
  category and run with typed parameters: a tenth of that. The SQL is the same on SQLite
  and PostgreSQL.
- A process's `Writer` does them for all its sending threads, as a group: the marks and
  outcomes that arrive while one thread writes go together in the next transaction (group
  commit). A sending thread waits for its own mark before it sends, so the guarantee is
  the same as one transaction per letter; but on SQLite, where writers take turns for the
  whole file, a process asks for the write lock once per group instead of once per letter,
  and its threads never queue behind one another for it.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, TextClause, bindparam, text
from sqlalchemy.orm import Session

from campaigns.db import JSONType, UTCDateTime
from campaigns.delivery import feedback
from campaigns.delivery.ledger import SUPPRESSED_STATUSES
from campaigns.models import CampaignStatus, DeliveryState, LetterCategory

_SENDING = DeliveryState.SENDING.value


@dataclass(frozen=True, slots=True)
class Outcome:
    """A letter's final state to record: the reason, and its Message-ID once sent."""

    delivery_id: int
    state: DeliveryState
    reason: str = ""
    message_id: str | None = None


# Only a row still `sending` is settled: one the reaper took back meanwhile stays as it is.
# (The f-strings below insert enum values of this module's own, never data.)
_RECORD = text(
    "UPDATE deliveries SET"  # noqa: S608
    " state = :state, reason = :reason, in_flight_at = NULL, "
    "message_id = COALESCE(:message_id, message_id), sent_at = COALESCE(:sent_at, sent_at) "
    f"WHERE id = :id AND state = '{_SENDING}'"
).bindparams(bindparam("sent_at", type_=UTCDateTime()))


@cache
def _mark_statement(category: LetterCategory) -> TextClause:
    """Mark a row in flight only if it is still ours, its contact may still get this
    category and kind of letter, its address is not suppressed and its campaign still runs."""
    blocked = ", ".join(f"'{status.value}'" for status in SUPPRESSED_STATUSES[category])
    # The contact may have turned this kind of letter off (legal letters cannot be).
    # (The kind comes as a parameter: looked up through the row's version instead, the
    # statement cost the send path about 0.5 ms a letter on SQLite.)
    kind_on = "" if category == LetterCategory.LEGAL else (
        "AND NOT EXISTS (SELECT 1 FROM kind_opt_outs WHERE kind_opt_outs.contact_id = "
        "deliveries.contact_id AND kind_opt_outs.kind = :kind) "
    )  # fmt: skip
    return text(
        "UPDATE deliveries SET"  # noqa: S608
        " in_flight_at = :now, locale = :locale, detail = :detail "
        f"WHERE id = :id AND state = '{_SENDING}' "
        "AND EXISTS (SELECT 1 FROM contacts WHERE contacts.id = deliveries.contact_id "
        f"AND contacts.status NOT IN ({blocked}) AND contacts.erased_at IS NULL) "
        "AND NOT EXISTS (SELECT 1 FROM suppressions WHERE suppressions.email = deliveries.email) "
        f"{kind_on}"
        "AND (deliveries.campaign_id IS NULL OR EXISTS (SELECT 1 FROM campaigns "
        "WHERE campaigns.id = deliveries.campaign_id "
        f"AND campaigns.status = '{CampaignStatus.RUNNING.value}'))"
    ).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("detail", type_=JSONType))


def record(connection: Connection, outcomes: Sequence[Outcome], *, now: datetime) -> None:
    """Settle `sending` rows with their outcomes (one statement for the lot)."""
    if outcomes:
        _bound_record(connection.dialect, outcomes, now=now).run(connection)


def _bound_record(dialect: Dialect, outcomes: Sequence[Outcome], *, now: datetime) -> _Bound:
    return _bind(_RECORD, dialect, [
        {"id": o.delivery_id, "state": o.state.value, "reason": o.reason[:2000],
         "message_id": o.message_id,
         "sent_at": now if o.state == DeliveryState.SENT else None}
        for o in outcomes
    ])  # fmt: skip


def _bound_mark(dialect: Dialect, mark: Mark, *, now: datetime) -> _Bound:
    return _bind(_mark_statement(mark.category), dialect, [{
        "id": mark.delivery_id, "now": now, "locale": mark.locale, "detail": mark.detail,
        "kind": mark.kind,
    }])  # fmt: skip


@dataclass(frozen=True, slots=True)
class _DriverSQL:
    """A statement compiled once for a dialect, with its parameters' bind processors."""

    sql: str
    order: tuple[str, ...] | None  # the parameters' order for a positional paramstyle
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def parameters(self, values: dict[str, Any]) -> Any:
        for name, process in self.processors:
            values[name] = process(values[name])
        return values if self.order is None else tuple(values[name] for name in self.order)


_compiled: dict[tuple[int, str], tuple[TextClause, _DriverSQL]] = {}


def _driver_sql(clause: TextClause, dialect: Dialect) -> _DriverSQL:
    key = (id(clause), dialect.name)
    found = _compiled.get(key)
    if found is None or found[0] is not clause:
        compiled = clause.compile(dialect=dialect)
        processors = tuple(
            (name, process) for name, bind in compiled.binds.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        )  # fmt: skip
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        found = _compiled[key] = (clause, _DriverSQL(compiled.string, order, processors))
    return found[1]


@dataclass(frozen=True, slots=True)
class _Bound:
    """A statement and its rows of parameters, processed for the driver (JSON written,
    timestamps converted) before any transaction: on SQLite the write lock is held only
    while the statements run."""

    sql: str
    rows: list[Any]

    def run(self, connection: Connection) -> int:
        """Run it on the driver's cursor, in `connection`'s transaction; return the rows
        changed. The same SQL and parameters as `connection.execute(clause, rows)`, without
        its per-call work (about 0.1 ms a letter on the send path, two statements a letter).
        """
        cursor = connection.connection.cursor()
        try:
            if len(self.rows) == 1:
                cursor.execute(self.sql, self.rows[0])
            else:
                cursor.executemany(self.sql, self.rows)
            return int(cursor.rowcount)
        finally:
            cursor.close()


def _bind(clause: TextClause, dialect: Dialect, rows: list[dict[str, Any]]) -> _Bound:
    statement = _driver_sql(clause, dialect)
    return _Bound(statement.sql, [statement.parameters(row) for row in rows])


@dataclass(frozen=True, slots=True)
class Mark:
    """A letter about to be sent: its row, its category and kind, and what its row keeps."""

    delivery_id: int
    category: LetterCategory
    kind: str
    locale: str
    detail: dict[str, Any]


@dataclass(slots=True)
class _Request:
    outcomes: list[Outcome]
    records: _Bound | None  # the outcomes, bound
    marking: _Bound | None  # the mark, bound
    done: bool = False
    marked: bool = False
    error: BaseException | None = None


class Writer:
    """Writes the marks and outcomes of every sending thread of a process, in groups.

    Group commit without a thread of its own: a caller queues its request, then waits for
    the lock. Whoever holds it writes every request queued so far in one transaction; a
    caller whose request was written meanwhile finds it done. With one sending thread a
    request is written at once, in its own thread (a writer thread cost two hand-offs of
    the GIL a letter).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def write(self, outcomes: Sequence[Outcome], mark: Mark | None = None, *,
              now: datetime) -> bool:  # fmt: skip
        """Record `outcomes`, and mark `mark` in flight if it may still go (`_mark_statement`);
        return whether it was marked. Returns once committed; raises what the write raised."""
        if not outcomes and mark is None:
            return False
        dialect = self.engine.dialect
        request = _Request(
            list(outcomes),
            _bound_record(dialect, outcomes, now=now) if outcomes else None,
            _bound_mark(dialect, mark, now=now) if mark is not None else None,
        )
        self._queue.put(request)
        with self._lock:
            if not request.done:  # not taken by the group written before: lead the next
                self._write(self._waiting())
        if request.error is not None:
            raise request.error
        return request.marked

    def _waiting(self) -> list[_Request]:
        group: list[_Request] = []
        while True:
            try:
                group.append(self._queue.get_nowait())
            except queue.Empty:
                return group

    def _write(self, group: list[_Request]) -> None:
        """Write a group in one transaction; on failure every request of it gets the error."""
        try:
            with self.engine.connect() as connection, connection.begin():
                for request in group:
                    if request.records is not None:
                        request.records.run(connection)
                        _suppress_hard_bounces(connection, request.outcomes)
                for request in group:
                    if request.marking is not None:
                        request.marked = request.marking.run(connection) == 1
        except BaseException as exc:
            for request in group:
                request.error, request.marked = exc, False
        finally:
            for request in group:
                request.done = True


def _suppress_hard_bounces(connection: Connection, outcomes: Sequence[Outcome]) -> None:
    """In the same transaction as the outcome: a 5.1.x reply suppresses the address."""
    failed = [o for o in outcomes if o.state == DeliveryState.FAILED]
    if not failed:
        return
    with Session(bind=connection) as session:
        for outcome in failed:
            feedback.suppress_if_hard_bounce(session, outcome.delivery_id, outcome.reason)
        session.flush()


_writers: dict[tuple[int, int], Writer] = {}
_writers_lock = threading.Lock()


def writer(engine: Engine) -> Writer:
    """This process's writer for `engine` (a forked child gets its own)."""
    key = (os.getpid(), id(engine))
    with _writers_lock:
        found = _writers.get(key)
        if found is None or found.engine is not engine:
            found = _writers[key] = Writer(engine)
        return found
