"""Faults against real processes: a worker SIGKILLed mid-batch, Redis flushed mid-campaign,
Redis down while a tick launches (RELIABILITY.md 1, 2, 12, 16, 33)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from sqlalchemy import select

from campaigns.db import Database
from campaigns.embedded.services import RedisServer, SMTPCatcher
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryState
from tests.conftest import ROOT, kill, start_worker, stop, wait_until
from tests.factories import schedule_campaign

PEOPLE = 40
# Heal quickly: workers beat every 0.3 s, are given up after 2 s, lost orders after 2 s.
FAST = {"HEARTBEAT_SECONDS": "0.3", "WORKER_STALE_SECONDS": "2", "RECONCILE_SECONDS": "2",
        "BATCH_SIZE": "5", "TICK_SECONDS": "0.2"}  # fmt: skip


def _schedule(db: Database) -> int:
    return schedule_campaign(db, "Offer", [f"p{i:02}@example.com" for i in range(PEOPLE)])


@contextmanager
def _scheduler(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaigns.cli", "scheduler"], env=env, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        stop(process)


def _status(db: Database, campaign_id: int) -> CampaignStatus:
    with db.reading() as s:
        return s.get_one(Campaign, campaign_id).status


def _wait_completed(
    db: Database, campaign_id: int, logs: list[Path], *, timeout: float = 90
) -> None:
    def done() -> bool:
        return _status(db, campaign_id) == CampaignStatus.COMPLETED

    wait_until(done, timeout=timeout, what="the campaign to complete; logs:\n"
               + "\n".join(p.read_text()[-3000:] for p in logs if p.exists()))  # fmt: skip


def _ledger(db: Database) -> dict[str, DeliveryState]:
    with db.unit_of_work() as s:
        return {d.email: d.state for d in s.scalars(select(Delivery))}


def _sending(db: Database) -> int:
    with db.unit_of_work() as s:
        rows = s.scalars(select(Delivery.id).where(Delivery.state == DeliveryState.SENDING))
        return len(rows.all())


def _slow(smtp_server: SMTPCatcher, seconds: float = 0.05) -> None:
    smtp_server.reply = lambda _received: time.sleep(seconds) or None  # type: ignore[func-returns-value]


def _send_interrupted(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, redis_server: RedisServer,
    tmp_path: Path, interrupt: Callable[[subprocess.Popen[bytes], Path], None],
) -> None:  # fmt: skip
    """Send a campaign; `interrupt` the first worker mid-batch; let a second one finish."""
    redis.Redis.from_url(redis_server.url).flushall()
    env = {**env, **FAST}
    campaign_id = _schedule(db)
    _slow(smtp_server)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log", tmp_path / "scheduler.log"]
    first = start_worker(env, logs[0], threads=1)
    with _scheduler(env, logs[2]):
        wait_until(lambda: len(smtp_server.messages) >= 8 and _sending(db) >= 2,
                   what="the first letters, and a batch under way")  # fmt: skip
        interrupt(first, logs[2])
        second = start_worker(env, logs[1], threads=1)
        try:
            _wait_completed(db, campaign_id, logs)
        finally:
            stop(second)


def test_a_worker_killed_mid_batch_leaves_each_letter_sent_once_or_ambiguous(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    # SIGKILL to the worker and its forked child: rows left in `sending`.
    _send_interrupted(db, env, smtp_server, redis_server, tmp_path, lambda p, _log: kill(p))
    ledger = _ledger(db)
    states = Counter(ledger.values())
    assert set(states) <= {DeliveryState.SENT, DeliveryState.AMBIGUOUS}, states
    assert states[DeliveryState.AMBIGUOUS] <= 1  # at most the one letter in flight
    received = Counter(m.recipients[0] for m in smtp_server.messages)
    for email, state in ledger.items():
        if state == DeliveryState.SENT:
            assert received[email] == 1, email
        else:
            assert received[email] <= 1, email  # ambiguous: never sent again
    assert len(ledger) == PEOPLE
    # The reaper, not luck, finished the batch.
    assert "took back" in (tmp_path / "scheduler.log").read_text()


def test_redis_flushed_mid_campaign_loses_no_letter_and_doubles_none(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    env = {**env, **FAST}
    campaign_id = _schedule(db)
    _slow(smtp_server)
    logs = [tmp_path / "worker.log", tmp_path / "scheduler.log"]
    worker = start_worker(env, logs[0], threads=1)
    try:
        with _scheduler(env, logs[1]):
            wait_until(lambda: len(smtp_server.messages) >= 8, what="the first letters")
            client.flushall()  # every work order gone
            _wait_completed(db, campaign_id, logs)
    finally:
        stop(worker)
    assert set(_ledger(db).values()) == {DeliveryState.SENT}
    received = Counter(m.recipients[0] for m in smtp_server.messages)
    assert len(received) == PEOPLE and set(received.values()) == {1}


def test_redis_down_while_a_tick_launches_is_healed_once_it_is_back(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, tmp_path: Path
) -> None:
    own_redis = RedisServer().start()
    env = {**env, **FAST, "REDIS_URL": own_redis.url}
    logs = [tmp_path / "worker.log", tmp_path / "scheduler.log"]
    try:
        own_redis.stop()
        campaign_id = _schedule(db)
        with _scheduler(env, logs[1]):
            # The launch commits; the enqueue after it fails: nothing is on its way.
            wait_until(lambda: _status(db, campaign_id) == CampaignStatus.RUNNING,
                       what="the launch")  # fmt: skip
            time.sleep(1)
            assert smtp_server.messages == []
            own_redis.start()
            worker = start_worker(env, logs[0])
            try:
                _wait_completed(db, campaign_id, logs)
            finally:
                stop(worker)
    finally:
        own_redis.stop()
    assert "scheduler tick failed" in logs[1].read_text()
    assert set(_ledger(db).values()) == {DeliveryState.SENT}
    received = Counter(m.recipients[0] for m in smtp_server.messages)
    assert len(received) == PEOPLE and set(received.values()) == {1}


def test_sigterm_lets_the_batch_in_hand_finish_and_leaves_nothing_sending(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    def sigterm(worker: subprocess.Popen[bytes], scheduler_log: Path) -> None:
        stop(worker)  # SIGTERM: Dramatiq lets the running batch finish
        assert _sending(db) == 0
        assert "took back" not in scheduler_log.read_text()

    _send_interrupted(db, env, smtp_server, redis_server, tmp_path, sigterm)
    assert set(_ledger(db).values()) == {DeliveryState.SENT}
    received = Counter(m.recipients[0] for m in smtp_server.messages)
    assert len(received) == PEOPLE and set(received.values()) == {1}
