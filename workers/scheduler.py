"""The scheduler loop: launch due campaigns each tick, then enqueue their batches."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from campaigns.db import utcnow
from campaigns.delivery import scheduling
from workers import runtime
from workers.actors import enqueue

log = logging.getLogger(__name__)


def tick() -> int:
    """Run one scheduler tick; return how many campaigns it launched."""
    config = runtime.settings()
    with runtime.database().unit_of_work() as session:
        launches = scheduling.launch_due(session, now=utcnow(), batch_size=config.batch_size)
    # Enqueue only after the commit: a worker must find the rows it is told about.
    for launch in launches:
        enqueue(launch.batches)
        log.info("launched campaign #%d: %d ledger rows", launch.campaign_id, launch.added)
    return len(launches)


def run_forever() -> None:
    """Tick every TICK_SECONDS until SIGINT or SIGTERM."""
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    interval = runtime.settings().tick_seconds
    log.info("scheduler ticking every %.1fs", interval)
    while not stop.is_set():
        try:
            tick()
        except Exception:  # a bad tick must not stop the scheduler; the next one retries
            log.exception("scheduler tick failed")
        stop.wait(interval)
