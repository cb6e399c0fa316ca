"""What bounces decide: hard and soft, soft bounces in a row, and a campaign that bounces or
draws complaints too often pauses and says why (RELIABILITY.md 22)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy.exc import IntegrityError

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Campaign, CampaignStatus, ContactStatus, Event, EventKind
from campaigns.models import DeliveryState as State
from campaigns.tracking import bounces
from campaigns.tracking.mailboxes import Receiver
from tests.factories import launch_now, ledger_rows, schedule_campaign
from tests.tracking.conftest import contact_status, events_of, letter_to, report_mail

BOB = "bob@example.com"


@pytest.mark.parametrize(
    ("status", "diagnostic", "expected"),
    [
        ("5.1.1", "550 5.1.1 user unknown", "hard"),
        ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound", "hard"),
        ("5.4.4", "550 5.4.4 unable to route: no such domain", "hard"),
        ("5.2.2", "552 5.2.2 mailbox full", "soft"),
        ("5.7.1", "550 5.7.1 rejected as spam", "soft"),  # the letter, not the address
        ("4.2.2", "452 4.2.2 over quota", "soft"),
        ("", "550 Requested action not taken: mailbox unavailable", "hard"),
        ("", "421 try again later", "soft"),
        ("", "", "hard"),  # "Action: failed" and no more said: permanent
    ],
)
def test_bounces_are_hard_when_the_address_is_bad_and_soft_otherwise(
    status: str, diagnostic: str, expected: str
) -> None:
    assert bounces.severity(status, diagnostic) == expected


def rules(settings: Settings, **changes: object) -> Settings:
    return replace(settings, bounces=replace(settings.bounces, **changes))  # type: ignore[arg-type]


def send_to(db: Database, settings: Settings, smtp_server: SMTPCatcher, name: str,
            emails: list[str], *, batch_size: int = 200) -> int:  # fmt: skip
    campaign_id = schedule_campaign(db, name, emails)
    mailer = SMTPMailer(smtp_server.url)
    for batch in launch_now(db, size=batch_size)[:1]:  # the first batch only
        sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    mailer.close()
    return campaign_id


def bounce(receiver: Receiver, smtp_server: SMTPCatcher, address: str, fixture: str) -> str:
    """Mail the letter's return path a report about the last letter `address` received."""
    letter = [m for m in smtp_server.messages if m.recipients == [address]][-1]
    raw = report_mail(fixture, verp=letter.sender, recipient=address,
                      message_id=str(letter.message["Message-ID"]))  # fmt: skip
    return receiver.receive(raw, envelope_recipients=(letter.sender,))


def test_soft_bounces_suppress_only_when_the_last_letters_all_bounced(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    settings = rules(settings, soft_limit=2)
    receiver = Receiver(db, settings)
    send_to(db, settings, smtp_server, "One", [BOB])
    assert bounce(receiver, smtp_server, BOB, "dsn_gmail_mailbox_full") == "recorded"
    send_to(db, settings, smtp_server, "Two", [BOB])  # delivered: it breaks the row
    send_to(db, settings, smtp_server, "Three", [BOB])
    bounce(receiver, smtp_server, BOB, "dsn_gmail_mailbox_full")
    assert contact_status(db, BOB) == ContactStatus.ACTIVE  # bounced, delivered, bounced
    send_to(db, settings, smtp_server, "Four", [BOB])
    bounce(receiver, smtp_server, BOB, "dsn_gmail_mailbox_full")
    assert contact_status(db, BOB) == ContactStatus.BOUNCED  # the last two both bounced
    assert [e.detail["severity"] for e in events_of(db, BOB)] == ["soft"] * 3
    five = send_to(db, settings, smtp_server, "Five", [BOB])
    assert ledger_rows(db, five)[BOB].state == State.SUPPRESSED
    assert len(smtp_server.messages) == 4


@pytest.mark.parametrize(
    ("fixture", "setting", "says"),
    [
        ("dsn_postfix_user_unknown", {"pause_hard_percent": 5.0},
         "paused automatically: 1 of 10 letters sent bounced hard (10.0 %, over the 5 % limit)"),
        ("arf_abuse", {"pause_complaint_percent": 0.3},
         "paused automatically: 1 of 10 recipients complained (10.00 %, over the 0.3 % limit)"),
    ],
)  # fmt: skip
def test_a_campaign_that_bounces_or_draws_complaints_too_often_pauses_and_says_why(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, fixture: str,
    setting: dict[str, float], says: str,
) -> None:  # fmt: skip
    emails = [f"p{i:02}@example.com" for i in range(20)]
    settings = rules(settings, pause_min_sent=10, **setting)
    receiver = Receiver(db, settings)
    campaign_id = send_to(db, settings, smtp_server, "Storm", emails, batch_size=10)
    # A soft bounce does not count towards the hard-bounce rate.
    bounce(receiver, smtp_server, emails[1], "dsn_gmail_mailbox_full")
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign_id).status == CampaignStatus.RUNNING
    bounce(receiver, smtp_server, emails[0], fixture)
    with db.unit_of_work() as s:
        campaign = s.get_one(Campaign, campaign_id)
        assert campaign.status == CampaignStatus.PAUSED
        assert campaign.status_reason.startswith(says), campaign.status_reason
    rows = ledger_rows(db, campaign_id)
    assert sum(r.state == State.QUEUED for r in rows.values()) == 10  # the rest waits
    assert letter_to(smtp_server, emails[0])  # it did go out


def test_a_campaign_is_judged_only_once_enough_letters_went_out(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    emails = [f"p{i:02}@example.com" for i in range(20)]
    settings = rules(settings, pause_min_sent=11)
    receiver = Receiver(db, settings)
    campaign_id = send_to(db, settings, smtp_server, "Early", emails, batch_size=10)
    for address in emails[:3]:
        bounce(receiver, smtp_server, address, "dsn_postfix_user_unknown")
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign_id).status == CampaignStatus.RUNNING
    assert all(contact_status(db, a) == ContactStatus.BOUNCED for a in emails[:3])


def test_the_database_keeps_one_bounce_and_one_complaint_per_letter_whatever_races(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    """Two receivers past the "already recorded?" check at once: the index stops the second."""
    campaign_id = send_to(db, settings, smtp_server, "Race", ["race@example.com"])
    delivery = ledger_rows(db, campaign_id)["race@example.com"]
    row = delivery.id
    with db.unit_of_work() as s:
        for kind in (EventKind.OPEN, EventKind.OPEN, EventKind.BOUNCE, EventKind.COMPLAINT):
            s.add(Event(kind=kind, delivery_id=row, contact_id=delivery.contact_id))
    with pytest.raises(IntegrityError), db.unit_of_work() as s:
        s.add(Event(kind=EventKind.BOUNCE, delivery_id=row, contact_id=delivery.contact_id))
    assert [e.kind for e in events_of(db, "race@example.com")] == [
        "open", "open", "bounce", "complaint"]  # fmt: skip
