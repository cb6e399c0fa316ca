"""The scheduler loop: launch due campaigns each tick, then enqueue their batches."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timedelta
from types import FrameType

from campaigns.db import utcnow
from campaigns.delivery import recovery, scheduling
from workers import runtime
from workers.actors import deliver_webhooks, enqueue, expire_points, refresh_reports

log = logging.getLogger(__name__)


class Cadence:
    """When this process last did a periodic job (monotonic seconds)."""

    last: float | None = None

    def due(self, every: float) -> bool:
        return self.last is None or time.monotonic() - self.last >= every


automations = Cadence()
webhooks = Cadence()
reports = Cadence()
expiries = Cadence()
# A rebuild of the report figures this long after a tick that decided letters.
FOLLOW_UP_SECONDS = 10.0
EXPIRY_SECONDS = 3600.0  # service points expire by the day: hourly is plenty


def tick() -> scheduling.Tick:
    """Run one scheduler tick; return what it decided.

    Campaigns are launched every tick; automations are decided every AUTOMATION_SECONDS
    (their steps are days and their send windows hours). Each tick also heals the ledger:
    rows of workers that stopped beating are taken back, and queued rows whose work order
    is overdue (lost by Redis, or never sent because the enqueue after a commit failed)
    are enqueued again.
    """
    config = runtime.settings()
    now = utcnow()
    with_automations = automations.due(config.automation_seconds)
    with runtime.database().unit_of_work() as session:
        decided = scheduling.run_tick(
            session, now=now, caps=config.caps, batch_size=config.batch_size,
            max_lateness=timedelta(hours=config.max_lateness_hours),
            with_automations=with_automations,
        )  # fmt: skip
    if with_automations:
        automations.last = time.monotonic()
    # Enqueue only after the commit: a worker must find the rows it is told about.
    for launch in decided.launches:
        enqueue(launch.batches)
        log.info("launched campaign #%d: %d ledger rows", launch.campaign_id, launch.added)
    enqueue(decided.batches)
    if any(decided.written.values()) or decided.released or decided.given_up:
        log.info(
            "automations: %d ledger row(s) written, %d deferred letter(s) queued, %d given up",
            sum(decided.written.values()),
            decided.released,
            decided.given_up,
        )
    with runtime.database().unit_of_work() as session:
        reaped = recovery.reap(
            session, now=now, stale_after=timedelta(seconds=config.worker_stale_seconds)
        )
        overdue = recovery.overdue_batches(
            session, now=now, grace=timedelta(seconds=config.reconcile_seconds),
            size=config.batch_size,
        )  # fmt: skip
    if reaped.requeued or reaped.ambiguous:
        log.warning("took back %d row(s) of stopped workers; %d marked ambiguous",
                    len(reaped.requeued), len(reaped.ambiguous))  # fmt: skip
    if overdue:
        log.warning("re-enqueued %d overdue row(s)", sum(map(len, overdue)))
        enqueue(overdue)
    if webhooks.due(config.webhooks.seconds):  # collected and sent by a worker
        deliver_webhooks.send()
        webhooks.last = time.monotonic()
    if reports.due(config.results.refresh_seconds):  # rebuilt by a worker
        refresh_reports.send()
        reports.last = time.monotonic()
    if decided.launches or any(decided.written.values()):
        # Letters just decided are sent within seconds: rebuild once more after them, so the
        # report does not say "0 sent" until the next REPORT_SECONDS.
        refresh_reports.send_with_options(delay=int(FOLLOW_UP_SECONDS * 1000))
    if expiries.due(EXPIRY_SECONDS):
        expire_points.send()
        expiries.last = time.monotonic()
    return decided


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
