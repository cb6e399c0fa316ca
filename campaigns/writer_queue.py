"""Writers to one SQLite file take turns in a queue of ours, not in SQLite's busy handler.

SQLite lets one writer at a time hold a database; a writer that finds it taken sleeps and
tries again, 1, 2, 5, 10 … 100 ms later. The send path commits once a letter (a tenth of a
millisecond each), so with eight sending threads most of them slept through lock holders
that had long since committed: the workers measured waiting 80–90 % of their time, and the
machine half idle. Here a writer first takes a thread lock (the threads of its process, one
at a time) and then an `flock` on a file beside the database (the processes, one at a
time), and gives both back the moment its transaction commits or rolls back. SQLite's own
lock still guarantees correctness: this queue only decides who asks next. A writer that
waits longer than the busy timeout goes on to SQLite's handler, which behaves as before.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

POLL_START = 0.00005
POLL_MAX = 0.0005


class WriterQueue:
    """The turn-taking of one database file's writers, for this process and across processes."""

    def __init__(self, database: Path, *, timeout: float) -> None:
        self.path = database.with_name(database.name + "-writers.lock")
        self.timeout = timeout
        self._pid = -1
        self._thread_lock = threading.Lock()
        self._fd = -1

    def _for_this_process(self) -> None:
        # After a fork the parent's lock state means nothing here: start afresh.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread_lock = threading.Lock()
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

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
