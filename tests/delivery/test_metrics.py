"""Workers export metrics for Prometheus: Dramatiq's own and the product's letters, SMTP
latency and queue lag, summed over the worker processes."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import redis

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.embedded.services import RedisServer, SMTPCatcher, free_port
from tests.conftest import scheduler_once, start_worker, stop, wait_until
from tests.factories import schedule_campaign


def test_a_worker_exports_letters_smtp_latency_and_queue_lag(
    db: Database, env: dict[str, str], redis_server: RedisServer, smtp_server: SMTPCatcher,
    tmp_path: Path,
) -> None:  # fmt: skip
    redis.Redis.from_url(redis_server.url).flushall()
    port = free_port()
    env = {**env, "METRICS_PORT": str(port)}
    # What `campaigns worker` puts in the environment before Dramatiq starts.
    env.update(Settings.from_env(env).metrics_environment())
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        schedule_campaign(db, "Offer", [f"user{n}@example.com" for n in range(5)])
        assert "launched 1 campaign(s)" in scheduler_once(env)
        wait_until(lambda: len(smtp_server.messages) == 5, what="five letters")

        def scrape() -> str | None:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
            return text if 'campaigns_letters_total{outcome="sent"} 5.0' in text else None

        text = wait_until(scrape, timeout=15, what="the sent letters counted")
    finally:
        stop(worker)
    assert "campaigns_smtp_seconds_count 5.0" in text
    assert 'campaigns_queue_lag_seconds_count{queue="send"} 1.0' in text
    assert 'dramatiq_messages_total{actor_name="send_batch",queue_name="send"} 1.0' in text
