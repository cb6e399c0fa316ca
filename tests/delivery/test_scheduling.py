"""Launching campaigns: compare-and-set, lateness, the ledger's states and reasons."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns.db import Database, utcnow
from campaigns.delivery import ledger, scheduling
from campaigns.errors import InvalidTransition
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryState
from tests.factories import make_contact, make_segment, make_version


def _scheduled(db: Database, *, send_at_offset: timedelta = timedelta(0), holdout: int = 0) -> int:
    with db.unit_of_work() as s:
        for i in range(40):
            make_contact(s, f"customer{i}@example.com")
        make_contact(s, "CUSTOMER0@Example.com".replace("0", "40"))
        segment = make_segment(s)
        version = make_version(s)
        campaign = scheduling.create_campaign(
            s, "Offer", segment_id=segment.id, letter_version_id=version.id,
            holdout_percent=holdout,
        )  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow() + send_at_offset)
        return campaign.id


def test_two_ticks_at_once_launch_a_campaign_exactly_once(db: Database) -> None:
    campaign_id = _scheduled(db)
    barrier = threading.Barrier(2)
    launched: list[int] = []

    def tick() -> None:
        barrier.wait()
        with db.unit_of_work() as s:
            launched.append(len(scheduling.launch_due(s, now=utcnow())))

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(launched) == [0, 1]
    with db.unit_of_work() as s:
        rows = s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)).all()
    assert len(rows) == 41 and len({r.contact_id for r in rows}) == 41


def test_a_status_change_from_a_stale_read_is_refused(db: Database) -> None:
    campaign_id = _scheduled(db)
    stale_session = db.sessions()
    try:
        stale = stale_session.get_one(Campaign, campaign_id)
        stale_session.commit()  # the object keeps the status it read: scheduled
        with db.unit_of_work() as s:
            scheduling.launch_due(s, now=utcnow())
        with pytest.raises(InvalidTransition, match="changed meanwhile"):
            scheduling.cancel(stale_session, stale.id)
    finally:
        stale_session.close()
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign_id).status == CampaignStatus.RUNNING


def test_a_campaign_far_past_its_time_is_not_sent_and_says_why(db: Database) -> None:
    campaign_id = _scheduled(db, send_at_offset=-timedelta(days=3))
    with db.unit_of_work() as s:
        assert scheduling.launch_due(s, now=utcnow()) == []
    with db.unit_of_work() as s:
        campaign = s.get_one(Campaign, campaign_id)
        assert campaign.status == CampaignStatus.DRAFT
        assert "more than 1 day" in campaign.status_reason
        assert ledger.counts_by_state(s, campaign_id)[DeliveryState.QUEUED] == 0


def test_holdout_puts_a_share_of_the_audience_aside_with_a_reason(db: Database) -> None:
    campaign_id = _scheduled(db, holdout=25)
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())
    assert launch.added == 41  # the count the scheduler logs, on both databases
    with db.unit_of_work() as s:
        counts = ledger.counts_by_state(s, campaign_id)
        reasons = set(s.scalars(select(Delivery.reason).where(
            Delivery.state == DeliveryState.HELD_OUT)))  # fmt: skip
    assert 3 <= counts[DeliveryState.HELD_OUT] <= 20
    assert counts[DeliveryState.HELD_OUT] + counts[DeliveryState.QUEUED] == 41
    assert reasons == {"holdout group"}


def test_illegal_moves_raise_invalid_transition(db: Database) -> None:
    campaign_id = _scheduled(db)
    with db.unit_of_work() as s, pytest.raises(InvalidTransition, match="cannot become paused"):
        scheduling.pause(s, campaign_id)
