"""Dramatiq middleware: each worker process beats in the ledger database while it runs."""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq

from campaigns.db import utcnow
from campaigns.delivery import recovery
from workers import runtime

log = logging.getLogger(__name__)


class Heartbeat(dramatiq.Middleware):
    """Keeps this process's claimed rows its own; the scheduler's reaper takes them back
    from a process that stopped beating (killed, frozen, its machine gone)."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.clear()
        threading.Thread(target=self._run, name="heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.set()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        # Dramatiq waits for running messages first: anything still claimed now is not
        # being worked on, so let the reaper have it at once.
        with runtime.database().unit_of_work() as session:
            recovery.forget(session, runtime.worker_id())

    def _run(self) -> None:
        interval = runtime.settings().heartbeat_seconds
        while not self._stop.is_set():
            try:
                with runtime.database().unit_of_work() as session:
                    recovery.beat(session, runtime.worker_id(), now=utcnow())
            except Exception:  # a missed beat is retried; only a long silence matters
                log.exception("heartbeat failed")
            self._stop.wait(interval)
