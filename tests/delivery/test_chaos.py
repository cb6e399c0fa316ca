"""Chaos: a 20,000-letter campaign while workers are SIGKILLed at random, several times
(issue 9, RELIABILITY.md 1, 2, 12). Every row ends with an outcome and a reason; no address
gets two letters; only the letters in flight at a kill may be `ambiguous`."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import redis
from sqlalchemy import func, select

from campaigns.db import Database
from campaigns.embedded.services import RedisServer, SMTPCatcher
from campaigns.models import Delivery, DeliveryState
from tests.conftest import kill, start_worker, stop, wait_until
from tests.delivery.test_faults import FAST, _scheduler, _wait_completed
from tests.factories import schedule_campaign

LETTERS = 20_000
KILLS = 3
WORKERS = 2  # processes of one thread each: at most one letter in flight per kill


def _sent(db: Database) -> int:
    with db.reading() as s:  # on SQLite, a poll must not wait for the busy workers' lock
        query = select(func.count()).where(Delivery.state == DeliveryState.SENT)
        return s.scalar(query) or 0


def test_workers_killed_at_random_leave_every_row_settled_and_no_letter_doubled(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    redis.Redis.from_url(redis_server.url).flushall()
    env = {**env, **FAST, "BATCH_SIZE": "200"}
    campaign_id = schedule_campaign(db, "Renewal", [f"c{i:05}@example.com" for i in range(LETTERS)])
    chance = random.Random(campaign_id)  # varies with nothing but the run: reproducible
    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS + KILLS)]
    workers = [start_worker(env, logs[n], threads=1) for n in range(WORKERS)]
    with _scheduler(env, tmp_path / "scheduler.log"):
        try:
            for kill_number in range(KILLS):
                # Kill one worker somewhere in each quarter of the campaign, then replace it.
                target = (kill_number + chance.uniform(0.3, 0.9)) * LETTERS / (KILLS + 1)
                wait_until(lambda t=target: _sent(db) >= t, timeout=200,  # type: ignore[misc]
                           what=f"{int(target)} letters before kill {kill_number + 1}")  # fmt: skip
                victim = chance.randrange(len(workers))
                kill(workers[victim])
                workers[victim] = start_worker(env, logs[WORKERS + kill_number], threads=1)
            _wait_completed(db, campaign_id, [*logs, tmp_path / "scheduler.log"], timeout=400)
        finally:
            for worker in workers:
                stop(worker)

    with db.unit_of_work() as s:
        rows = s.execute(select(Delivery.email, Delivery.state, Delivery.reason)).all()
    states = Counter(state for _, state, _ in rows)
    assert len(rows) == LETTERS
    assert states[DeliveryState.SENDING] == 0 and states[DeliveryState.QUEUED] == 0
    assert set(states) <= {DeliveryState.SENT, DeliveryState.AMBIGUOUS}, states
    assert states[DeliveryState.AMBIGUOUS] <= KILLS
    assert all(reason for _, state, reason in rows if state == DeliveryState.AMBIGUOUS)
    received = Counter(m.recipients[0] for m in smtp_server.messages)
    assert max(received.values()) == 1  # nobody got a letter twice
    sent = {email for email, state, _ in rows if state == DeliveryState.SENT}
    assert sent <= set(received) and len(received) - len(sent) <= KILLS
