"""The server's answers count: hard bounces suppress, error storms pause, failed rows can be
sent again (RELIABILITY.md 8, 22)."""

from __future__ import annotations

from sqlalchemy import select

from campaigns.audience import contacts, suppressions
from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import feedback, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Campaign, CampaignStatus, Contact, ContactStatus
from campaigns.models import DeliveryState as State
from tests.factories import launch_now, ledger_rows, schedule_campaign


def test_only_a_5_1_x_reply_counts_as_a_hard_bounce() -> None:
    assert feedback.is_hard_bounce("550 5.1.1 <bob@example.com>: user unknown")
    assert feedback.is_hard_bounce("553 5.1.10 recipient address rejected")
    assert not feedback.is_hard_bounce("550 5.7.1 message rejected as spam")
    assert not feedback.is_hard_bounce("452 4.1.1 mailbox full, try later")
    assert not feedback.is_hard_bounce("gave up after 5 attempts: 451 4.3.0 try again")


def test_a_hard_bounce_suppresses_the_address_for_the_next_campaign(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    emails = ["ann@example.com", "bob@example.com"]
    first = schedule_campaign(db, "First", emails)
    smtp_server.reply = lambda r: "550 5.1.1 user unknown" if "bob@" in r.recipients[0] else None
    mailer = SMTPMailer(smtp_server.url)
    sending.deliver_batch(db, launch_now(db)[0], mailer=mailer, settings=settings)
    assert ledger_rows(db, first)["bob@example.com"].state == State.FAILED
    with db.unit_of_work() as s:
        bob = s.scalar(select(Contact).where(Contact.email == "bob@example.com"))
        assert bob is not None and bob.status == ContactStatus.BOUNCED
        [change] = contacts.status_history(s, bob.id)
        assert (change.status, change.source) == (ContactStatus.BOUNCED, "bounce")
        assert change.reason == "hard bounce: 550 5.1.1 user unknown"
        assert suppressions.is_suppressed(s, "Bob@Example.com")

    second = schedule_campaign(db, "Second", emails)
    sending.deliver_batch(db, launch_now(db)[0], mailer=mailer, settings=settings)
    mailer.close()
    row = ledger_rows(db, second)["bob@example.com"]
    assert (row.state, row.reason) == (State.SUPPRESSED, "address is on the suppression list")
    assert [m.recipients[0] for m in smtp_server.messages].count("bob@example.com") == 0


def test_an_address_listed_after_launch_is_not_sent(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    campaign = schedule_campaign(db, "Offer", ["ann@example.com", "bob@example.com"])
    batch = launch_now(db)[0]
    with db.unit_of_work() as s:
        suppressions.suppress(s, "bob@example.com", reason="asked by phone", source="admin")
    mailer = SMTPMailer(smtp_server.url)
    sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    mailer.close()
    row = ledger_rows(db, campaign)["bob@example.com"]
    assert (row.state, row.reason) == (State.SUPPRESSED, "address is on the suppression list")
    assert [m.recipients[0] for m in smtp_server.messages] == ["ann@example.com"]


def test_an_error_storm_pauses_the_campaign_and_says_why(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    emails = [f"p{i:02}@example.com" for i in range(30)]
    campaign_id = schedule_campaign(db, "Storm", emails)
    smtp_server.reply = lambda r: (
        "550 5.7.1 rejected" if int(r.recipients[0][1:3]) % 5 < 2 else None
    )
    mailer = SMTPMailer(smtp_server.url)
    batches = launch_now(db, size=10)
    for batch in batches:
        sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    mailer.close()
    with db.unit_of_work() as s:
        campaign = s.get_one(Campaign, campaign_id)
        assert campaign.status == CampaignStatus.PAUSED
        assert campaign.status_reason.startswith("paused automatically: 8 of the last 20")
        assert "550 5.7.1 rejected" in campaign.status_reason
    rows = ledger_rows(db, campaign_id)
    last = [rows[e] for e in emails[20:]]
    assert all(r.state == State.QUEUED and r.attempts == 0 for r in last)
    assert len(smtp_server.messages) == 12  # nothing went out after the pause
