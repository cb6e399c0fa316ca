"""The ledger heals: rows of dead workers, lost work orders, one recipient that hangs
(RELIABILITY.md 2, 12, 32)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import recovery, scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryState
from tests.factories import launch_now, schedule_campaign


def _launched(db: Database, people: int) -> tuple[int, list[int]]:
    """A running campaign to `people` contacts; returns its id and its ledger ids."""
    campaign_id = schedule_campaign(db, "Offer", [f"p{i}@example.com" for i in range(people)])
    return campaign_id, launch_now(db, size=1000)[0]


def _rows(db: Database) -> dict[str, Delivery]:
    with db.unit_of_work() as s:
        return {d.email: d for d in s.scalars(select(Delivery))}


def test_rows_of_a_worker_that_stopped_beating_are_taken_back(db: Database) -> None:
    campaign_id, ids = _launched(db, 4)
    claimed_at = utcnow() - timedelta(minutes=5)
    with db.unit_of_work() as s:
        sending.claim(s, ids[:3], now=claimed_at, worker="dead-host:1")
        sending.claim(s, ids[3:], now=claimed_at, worker="live-host:2")
        s.get_one(Delivery, ids[0]).in_flight_at = claimed_at  # the letter being sent
        recovery.beat(s, "live-host:2", now=utcnow())
    with db.unit_of_work() as s:
        reaped = recovery.reap(s, now=utcnow(), stale_after=timedelta(seconds=60))
    assert (reaped.ambiguous, reaped.requeued) == ([ids[0]], ids[1:3])
    rows = {row.id: row for row in _rows(db).values()}
    assert rows[ids[0]].state == DeliveryState.AMBIGUOUS
    assert "may or may not have gone" in rows[ids[0]].reason
    assert [rows[i].state for i in ids[1:3]] == [DeliveryState.QUEUED] * 2
    assert [rows[i].attempts for i in ids[1:3]] == [0, 0]  # the lost claim is not counted
    assert rows[ids[3]].state == DeliveryState.SENDING  # its worker is alive
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign_id).status == CampaignStatus.RUNNING


def test_a_fresh_claim_is_never_reaped_even_without_a_heartbeat(db: Database) -> None:
    _campaign_id, ids = _launched(db, 2)
    with db.unit_of_work() as s:
        sending.claim(s, ids, now=utcnow(), worker="starting-host:3")
    with db.unit_of_work() as s:
        reaped = recovery.reap(s, now=utcnow(), stale_after=timedelta(seconds=60))
    assert (reaped.ambiguous, reaped.requeued) == ([], [])


def test_overdue_queued_rows_of_running_campaigns_are_enqueued_again(db: Database) -> None:
    campaign_id, ids = _launched(db, 3)
    later = utcnow() + timedelta(minutes=5)
    with db.unit_of_work() as s:
        assert recovery.overdue_batches(s, now=utcnow(), grace=timedelta(minutes=2)) == []
        assert recovery.overdue_batches(s, now=later, grace=timedelta(minutes=2), size=2) == [
            ids[:2], ids[2:]
        ]  # fmt: skip
        # Picked rows are due again only after another grace period.
        assert recovery.overdue_batches(s, now=later, grace=timedelta(minutes=2)) == []
    with db.unit_of_work() as s:
        scheduling.pause(s, campaign_id)
    with db.unit_of_work() as s:
        much_later = later + timedelta(hours=1)
        assert recovery.overdue_batches(s, now=much_later, grace=timedelta(minutes=2)) == []


def test_a_recipient_whose_server_hangs_at_rcpt_is_retried_alone(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    _campaign_id, ids = _launched(db, 4)
    smtp_server.rcpt_delay = lambda address: 3.0 if address == "p1@example.com" else 0.0
    mailer = SMTPMailer(smtp_server.url, timeout=0.5)
    result = sending.deliver_batch(db, ids, mailer=mailer, settings=settings)
    assert (result.sent, result.retry) == (3, [_rows(db)["p1@example.com"].id])
    hung = _rows(db)["p1@example.com"]
    assert hung.state == DeliveryState.QUEUED and hung.attempts == 1
    assert hung.due_at is not None and hung.due_at > utcnow() + timedelta(seconds=30)
    assert sorted(m.recipients[0] for m in smtp_server.messages) == [
        "p0@example.com", "p2@example.com", "p3@example.com"]  # fmt: skip

    for _ in range(sending.MAX_ATTEMPTS - 1):  # each retry the worker would make
        sending.deliver_batch(db, [hung.id], mailer=mailer, settings=settings)
    mailer.close()
    hung = _rows(db)["p1@example.com"]
    assert hung.state == DeliveryState.FAILED
    assert f"gave up after {sending.MAX_ATTEMPTS} attempts" in hung.reason
    assert "stopped answering for this recipient" in hung.reason
    assert len(smtp_server.messages) == 3


def test_a_campaign_still_being_claimed_keeps_its_backlog_without_new_orders(
    db: Database,
) -> None:
    _campaign_id, ids = _launched(db, 3)
    later = utcnow() + timedelta(minutes=5)
    with db.unit_of_work() as s:
        sending.claim(s, ids[:1], now=later - timedelta(seconds=10), worker="busy-host:1")
    grace = timedelta(minutes=2)
    with db.unit_of_work() as s:
        # A worker claimed a row 10 s ago: the rest are waiting in Redis, not lost.
        assert recovery.overdue_batches(s, now=later, grace=grace) == []
    with db.unit_of_work() as s:
        # Nothing claimed for longer than the grace: the orders are taken for lost.
        stalled = later + timedelta(minutes=3)
        assert recovery.overdue_batches(s, now=stalled, grace=grace) == [ids[1:]]
