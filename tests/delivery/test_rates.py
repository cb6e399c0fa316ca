"""Rates hold across workers and defer letters without spending attempts (RELIABILITY.md 10)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import redis
from sqlalchemy import update

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import RedisServer, SMTPCatcher
from campaigns.models import Campaign, DeliveryState
from tests.factories import launch_now, ledger_rows, schedule_campaign
from workers.ratelimits import RedisThrottle


def test_the_global_rate_paces_a_batch_and_every_letter_goes_on_its_first_attempt(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, redis_server: RedisServer
) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    emails = [f"p{i:02}@example.com" for i in range(15)]
    campaign_id = schedule_campaign(db, "Paced", emails)
    throttle = RedisThrottle(replace(settings, send_rate_per_second=5))
    mailer = SMTPMailer(smtp_server.url)
    started = time.monotonic()
    result = sending.deliver_batch(db, launch_now(db)[0], mailer=mailer, settings=settings,
                                   throttle=throttle)  # fmt: skip
    elapsed = time.monotonic() - started
    mailer.close()
    assert result.sent == 15 and result.deferred == []
    rows = ledger_rows(db, campaign_id)
    assert {(r.state, r.attempts) for r in rows.values()} == {(DeliveryState.SENT, 1)}
    # Windows are calendar seconds: 15 letters at 5 a second span three of them.
    assert elapsed > 1.0
    assert len({int(r.sent_at.timestamp()) for r in rows.values() if r.sent_at}) >= 3


def test_a_saturated_campaign_rate_hands_the_rest_back_without_an_attempt(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, redis_server: RedisServer
) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    emails = [f"p{i:02}@example.com" for i in range(6)]
    campaign_id = schedule_campaign(db, "Slow", emails)
    with db.unit_of_work() as s:
        s.execute(update(Campaign).values(rate_per_minute=3))
    throttle = RedisThrottle(settings, max_wait=0.3)
    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, launch_now(db)[0], mailer=mailer, settings=settings,
                                   throttle=throttle)  # fmt: skip
    mailer.close()
    assert result.sent == 3 and len(result.deferred) == 3
    later = [r for r in ledger_rows(db, campaign_id).values() if r.state != DeliveryState.SENT]
    assert len(later) == 3
    assert all(r.state == DeliveryState.QUEUED and r.attempts == 0 for r in later)
    assert all(r.due_at is not None and r.due_at > utcnow() + timedelta(seconds=1) for r in later)
    assert len(smtp_server.messages) == 3
