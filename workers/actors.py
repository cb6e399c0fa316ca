"""Thin, idempotent actors: they take ids and call the domain."""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq

from campaigns.audience import importer
from campaigns.db import utcnow
from campaigns.delivery import sending
from campaigns.models import ImportStatus
from campaigns.service import points
from campaigns.tracking import conversions, results, webhook_sender, webhooks
from workers import metrics, ratelimits, runtime
from workers.broker import broker

log = logging.getLogger(__name__)
__all__ = [
    "broker",
    "deliver_webhooks",
    "expire_points",
    "refresh_reports",
    "run_import",
    "send_batch",
]


@dramatiq.actor(queue_name="send", max_retries=3, time_limit=30 * 60 * 1000)
def send_batch(delivery_ids: list[int]) -> None:
    """Send the letters of these ledger rows; rows already claimed are skipped."""
    result = sending.deliver_batch(
        runtime.database(),
        delivery_ids,
        mailer=metrics.TimedMailer(runtime.mailer()),
        settings=runtime.settings(),
        worker=runtime.worker_id(),
        throttle=ratelimits.throttle(),
    )
    log.info("batch of %d: %s", len(delivery_ids), result)
    metrics.count(result)
    if (
        result.sent or result.ambiguous
    ):  # the service points the letters gave (a campaign's grant), once
        with runtime.database().unit_of_work() as session:
            points.apply_grants(session, delivery_ids)
    if result.retry:
        with runtime.database().unit_of_work() as session:
            delay = sending.retry_delay_seconds(sending.highest_attempt(session, result.retry))
        send_batch.send_with_options(args=(result.retry,), delay=delay * 1000)
    if result.deferred:  # a rate was saturated: later, without spending an attempt
        send_batch.send_with_options(args=(result.deferred,), delay=sending.DEFER_SECONDS * 1000)


def enqueue(batches: list[list[int]]) -> None:
    """Hand batches of ledger ids to the workers (call only after the commit)."""
    for batch in batches:
        send_batch.send(batch)


@dramatiq.actor(queue_name="imports", max_retries=3, time_limit=6 * 60 * 60 * 1000)
def run_import(job_id: int) -> None:
    """Check or write a CSV import; a job already done or held by another worker is left be."""
    job = importer.run(runtime.database(), job_id)
    log.info("import %d: %s", job_id, job.status if job else "nothing to do")
    if job is not None and job.status == ImportStatus.DONE:  # end dates it moved: renewals
        with runtime.database().unit_of_work() as session:
            found = conversions.detect(session, window=_attribution())
        log.info("import %d: %d renewal(s) recorded", job_id, found)


def _attribution() -> timedelta:
    return timedelta(days=runtime.settings().results.attribution_days)


# Enqueued by the scheduler every hour; harmless twice (one expiry per contact and day,
# one grant per letter).
@dramatiq.actor(queue_name="reports", max_retries=0, time_limit=30 * 60 * 1000)
def expire_points() -> None:
    """Write the expiry of service points past their date, and the grants of sent letters
    a send worker did not live to write (campaigns.service.points)."""
    with runtime.database().unit_of_work() as session:
        lost = points.expire_due(session, today=utcnow().date())
    if lost:
        log.info("service points expired for %d contact(s)", lost)
    while True:
        with runtime.database().unit_of_work() as session:
            owed = points.apply_grants(session)
        if not owed:
            break
        log.info("service points given with %d letter(s) sent earlier", owed)


# Enqueued by the scheduler every REPORT_SECONDS; two at once are harmless (each rebuild
# replaces the figures whole, in one transaction). Not retried: the next one comes.
@dramatiq.actor(queue_name="reports", max_retries=0, time_limit=30 * 60 * 1000)
def refresh_reports() -> None:
    """Rebuild the report figures (and record renewals found in moved end dates)."""
    with runtime.database().unit_of_work() as session:
        done = results.refresh(session, window=_attribution())
    log.info("reports rebuilt in %.1f s over %d ledger rows; %d renewal(s) detected",
             done.seconds, done.ledger_rows, done.detected)  # fmt: skip


# Enqueued by the scheduler every WEBHOOK_SECONDS; two at once are harmless (collect adds
# each webhook once, and a claim lets one worker post a row). Not retried: the next comes.
@dramatiq.actor(queue_name="webhooks", max_retries=0, time_limit=15 * 60 * 1000)
def deliver_webhooks() -> None:
    """Queue webhooks for what happened since the last run, then send those due."""
    database = runtime.database()
    config = runtime.settings().webhooks
    with database.unit_of_work() as session:
        added = webhooks.collect(session, now=utcnow())
    sent = webhook_sender.deliver_due(database, now=utcnow(), config=config)
    with database.unit_of_work() as session:
        pruned = webhook_sender.prune(session, now=utcnow(), keep_days=config.keep_days)
    if added or sent.delivered or sent.retrying or sent.failed or pruned:
        log.info("webhooks: %d queued, %s, %d old ones removed from the log", added, sent, pruned)
