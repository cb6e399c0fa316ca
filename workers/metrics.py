"""Worker metrics for Prometheus: Dramatiq's own middleware plus the product's counters.

Dramatiq's `Prometheus` middleware exports message counts and durations from every worker
process through one exposition server (METRICS_PORT). `ProductMetrics` adds, in the same
multi-process registry:

- `campaigns_letters_total{outcome}`: letters by outcome (sent, failed, suppressed, ambiguous,
  retry, deferred, skipped), per batch result;
- `campaigns_smtp_seconds`: how long the SMTP server took to take one letter;
- `campaigns_queue_lag_seconds`: how long a message waited in Redis past the time it was due.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.common import current_millis

from campaigns.config import Settings
from campaigns.delivery.mailer import Mailer
from campaigns.delivery.sending import BatchResult

OUTCOMES = ("sent", "failed", "suppressed", "ambiguous", "retry", "deferred", "skipped")
_metrics: dict[str, Any] = {}


def install(broker: dramatiq.Broker, settings: Settings) -> None:
    """Export metrics on METRICS_HOST:METRICS_PORT when a port is set; else do nothing."""
    if not settings.metrics_port:
        return
    # Dramatiq's middleware reads these when its module is imported (`campaigns worker`
    # has already put them in the environment of every process of the group).
    os.environ.update(settings.metrics_environment())
    from dramatiq.middleware.prometheus import Prometheus

    broker.add_middleware(Prometheus())
    broker.add_middleware(ProductMetrics())


class ProductMetrics(dramatiq.Middleware):
    """Declares the product's metrics in each worker process and measures queue lag."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # Dramatiq runs "after" hooks last-added first, so this may run before Prometheus's
        # own: name the multi-process directory before prometheus_client is first imported.
        from dramatiq.middleware.prometheus import DB_PATH

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = DB_PATH
        import prometheus_client as prom

        registry = prom.CollectorRegistry()  # the exposition server reads the files, not this
        _metrics["letters"] = prom.Counter(
            "campaigns_letters_total", "Letters by outcome of the batch that handled them.",
            ["outcome"], registry=registry,
        )  # fmt: skip
        _metrics["smtp"] = prom.Histogram(
            "campaigns_smtp_seconds", "Time the SMTP server took to accept one letter.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )  # fmt: skip
        _metrics["lag"] = prom.Histogram(
            "campaigns_queue_lag_seconds", "Time a message waited in Redis after it was due.",
            ["queue"], buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )  # fmt: skip

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        lag = _metrics.get("lag")
        if lag is not None:
            due = message.options.get("eta", message.message_timestamp)
            lag.labels(message.queue_name).observe(max(0, current_millis() - due) / 1000)


def count(result: BatchResult) -> None:
    """Add a batch's outcomes to the letters counter."""
    letters = _metrics.get("letters")
    if letters is None:
        return
    for outcome in OUTCOMES:
        value = getattr(result, outcome)
        n = len(value) if isinstance(value, list) else value
        if n:
            letters.labels(outcome).inc(n)


def _observe(seconds: float) -> None:
    smtp = _metrics.get("smtp")
    if smtp is not None:
        smtp.observe(seconds)


class TimedMailer:
    """A Mailer that records how long each send took."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        self.submit(sender, recipients, data)()

    def submit(self, sender: str, recipients: Sequence[str], data: bytes) -> Callable[[], None]:
        """The mailer's submit; the time observed is its own and its reply's, not the wait
        between them (the caller's work)."""
        started = time.perf_counter()
        try:
            finish = self.mailer.submit(sender, recipients, data)
        except BaseException:
            _observe(time.perf_counter() - started)
            raise
        spent = time.perf_counter() - started

        def timed_finish() -> None:
            reading = time.perf_counter()
            try:
                finish()
            finally:
                _observe(spent + time.perf_counter() - reading)

        return timed_finish

    def close(self) -> None:
        self.mailer.close()
