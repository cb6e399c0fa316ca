"""The walking skeleton end to end: scheduler → Redis → Dramatiq worker → SMTP → ledger → open."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from campaigns.accounts import users
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.letters import approvals
from campaigns.models import (
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryState,
    Event,
    LetterCategory,
    Role,
)
from campaigns.tracking import events as tracking_events
from campaigns.web import create_app
from tests.conftest import scheduler_once, wait_until
from tests.factories import (
    BODY,
    launch_now,
    ledger_rows,
    make_contact,
    make_segment,
    make_version,
    schedule_campaign,
)


def _ready_campaign(db: Database) -> int:
    with db.unit_of_work() as s:
        make_contact(s, "Jane.Doe@Example.com", first_name="Jane")
        make_contact(s, "gone@example.com", first_name="Gone", status=ContactStatus.UNSUBSCRIBED)
        segment = make_segment(s)
        version = make_version(s)
        campaign = scheduling.create_campaign(
            s, "Spring offer", segment_id=segment.id, letter_version_id=version.id
        )
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        return campaign.id


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def test_scheduled_campaign_is_sent_by_a_real_worker_and_the_open_is_recorded(
    db: Database, env: dict[str, str], settings: Settings, smtp_server: SMTPCatcher, worker
) -> None:
    campaign_id = _ready_campaign(db)

    assert "launched 1 campaign(s)" in scheduler_once(env)

    received = smtp_server.wait_for(1)
    letter = _parse(received[0].data)
    assert received[0].recipients == ["jane.doe@example.com"]
    assert letter["Subject"] == "Hello Jane"
    assert letter["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = letter.get_body(preferencelist=("html",)).get_content()
    assert "Dear Jane" in html and 'style="color:#123456"' in html  # CSS inlined
    text = letter.get_body(preferencelist=("plain",)).get_content()
    assert "Dear Jane" in text

    def campaign_done() -> bool:
        with db.unit_of_work() as s:
            return s.get_one(Campaign, campaign_id).status == CampaignStatus.COMPLETED

    wait_until(campaign_done, what="the campaign to complete")
    with db.unit_of_work() as s:
        rows = {d.email: d for d in s.scalars(select(Delivery))}
    assert rows["jane.doe@example.com"].state == DeliveryState.SENT
    assert rows["jane.doe@example.com"].message_id == letter["Message-ID"]
    assert rows["gone@example.com"].state == DeliveryState.SUPPRESSED
    assert rows["gone@example.com"].reason == "contact is unsubscribed"
    assert len(smtp_server.messages) == 1  # nobody suppressed got a letter

    pixel = re.search(r'<img src="(http://campaigns\.test/o/[^"]+\.gif)"', html)
    assert pixel is not None
    client = create_app(settings, database=db).test_client()
    path = urlsplit(pixel.group(1)).path
    with db.unit_of_work() as s:  # read an hour later (an open within seconds is a machine's)
        s.execute(update(Delivery).values(sent_at=utcnow() - timedelta(hours=1)))
    answer = client.get(path, headers={"User-Agent": "Mozilla/5.0 (Macintosh)"})
    assert answer.status_code == 200 and answer.mimetype == "image/gif"
    forged = client.get(path.replace(".gif", "x.gif"))
    assert forged.status_code == 404

    tracking_events.flush(db)  # hits are written a moment after they are answered
    with db.unit_of_work() as s:
        events = list(s.scalars(select(Event)))
    assert [(e.kind, e.delivery_id, e.is_machine) for e in events] == [
        ("open", rows["jane.doe@example.com"].id, False)
    ]


def test_a_batch_delivered_twice_sends_each_letter_once(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    campaign_id = _ready_campaign(db)
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())
    (batch,) = launch.batches
    mailer = SMTPMailer(smtp_server.url)
    first = sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    second = sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    mailer.close()
    assert (first.sent, second.sent, second.skipped) == (1, 0, 1)
    assert len(smtp_server.messages) == 1
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign_id).status == CampaignStatus.COMPLETED


def test_a_permanent_rejection_fails_only_that_row_with_the_server_reply(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    with db.unit_of_work() as s:
        for name in ("ann", "bob", "cat"):
            make_contact(s, f"{name}@example.com", first_name=name)
        segment = make_segment(s)
        version = make_version(s)
        campaign = scheduling.create_campaign(
            s, "Offer", segment_id=segment.id, letter_version_id=version.id
        )
        scheduling.schedule(s, campaign.id, send_at=utcnow())
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())
    smtp_server.reply = lambda r: (
        "550 5.1.1 mailbox unavailable" if "bob@" in r.recipients[0] else None
    )
    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, launch.batches[0], mailer=mailer, settings=settings)
    mailer.close()
    assert (result.sent, result.failed) == (2, 1)
    with db.unit_of_work() as s:
        bob = s.scalar(select(Delivery).where(Delivery.email == "bob@example.com"))
    assert bob is not None and bob.state == DeliveryState.FAILED
    assert bob.reason == "550 5.1.1 mailbox unavailable"
    assert sorted(m.recipients[0] for m in smtp_server.messages) == [
        "ann@example.com", "cat@example.com",
    ]  # fmt: skip


def test_rows_of_a_campaign_paused_after_enqueueing_are_handed_back_unsent(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    campaign_id = _ready_campaign(db)
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())
        scheduling.pause(s, campaign_id)
    mailer = SMTPMailer(smtp_server.url)
    paused = sending.deliver_batch(db, launch.batches[0], mailer=mailer, settings=settings)
    assert (paused.sent, paused.skipped) == (0, 1)
    assert smtp_server.messages == []
    with db.unit_of_work() as s:
        (row,) = s.scalars(select(Delivery).where(Delivery.state == DeliveryState.QUEUED))
        assert row.attempts == 0
        batches = scheduling.resume(s, campaign_id)
    resumed = sending.deliver_batch(db, batches[0], mailer=mailer, settings=settings)
    mailer.close()
    assert resumed.sent == 1 and len(smtp_server.messages) == 1


class _Meanwhile:
    """A throttle that lets every letter go, but first does something else, once."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action: Callable[[], None] | None = action

    def wait(self, *, campaign_id: int | None, rate_per_minute: int | None, domain: str) -> bool:
        if self.action is not None:
            self.action()
            self.action = None
        return True


def test_an_unsubscribe_that_commits_while_the_batch_runs_stops_that_letter(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    emails = ["ann@example.com", "bob@example.com", "cat@example.com"]
    campaign_id = schedule_campaign(db, "Offer", emails)
    (batch,) = launch_now(db)

    def bob_unsubscribes() -> None:  # after the batch was read, before any letter went
        with db.unit_of_work() as s:
            s.execute(update(Contact).where(Contact.email == "bob@example.com")
                      .values(status=ContactStatus.UNSUBSCRIBED))  # fmt: skip

    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, batch, mailer=mailer, settings=settings,
                                   throttle=_Meanwhile(bob_unsubscribes))  # fmt: skip
    mailer.close()
    assert (result.sent, result.suppressed) == (2, 1)
    bob = ledger_rows(db, campaign_id)["bob@example.com"]
    assert (bob.state, bob.reason) == (DeliveryState.SUPPRESSED, "contact is unsubscribed")
    assert sorted(m.recipients[0] for m in smtp_server.messages) == [
        "ann@example.com", "cat@example.com"]  # fmt: skip


def test_a_pause_that_commits_while_the_batch_runs_stops_the_rest(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    campaign_id = schedule_campaign(db, "Offer", ["ann@example.com", "bob@example.com"])
    (batch,) = launch_now(db)

    def paused() -> None:
        with db.unit_of_work() as s:
            scheduling.pause(s, campaign_id)

    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, batch, mailer=mailer, settings=settings,
                                   throttle=_Meanwhile(paused))  # fmt: skip
    mailer.close()
    assert (result.sent, result.skipped) == (0, 2)
    rows = ledger_rows(db, campaign_id).values()
    assert {(r.state, r.attempts) for r in rows} == {(DeliveryState.QUEUED, 0)}
    assert smtp_server.messages == []


@pytest.mark.parametrize(
    ("category", "unsubscribe"),
    [(LetterCategory.MARKETING, True), (LetterCategory.SERVICE, True),
     (LetterCategory.LEGAL, False)],
)  # fmt: skip
def test_headers_say_where_replies_go_which_feed_a_letter_is_and_how_to_unsubscribe(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, category: LetterCategory,
    unsubscribe: bool,
) -> None:  # fmt: skip
    settings = Settings.from_env({**env, "REPLY_TO": "Support <help@example.com>"})
    with db.unit_of_work() as s:
        make_contact(s, "jane@example.com", first_name="Jane")
        html = (
            BODY if category == LetterCategory.MARKETING else "<p>Hi {{ contact.first_name }}</p>"
        )
        version = make_version(s, category=category, html=html)
        if version.requires_approval:  # a legal letter: a second person approved it
            checker = users.create_user(s, "legal@example.com", "a long password 123",
                                        role=Role.EDITOR)  # fmt: skip
            approvals.approve(s, version.id, user_id=checker.id)
        campaign = scheduling.create_campaign(s, "Note", segment_id=make_segment(s).id,
                                              letter_version_id=version.id)  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        campaign_id = campaign.id
    mailer = SMTPMailer(smtp_server.url)
    sending.deliver_batch(db, launch_now(db)[0], mailer=mailer, settings=settings)
    mailer.close()
    letter = _parse(smtp_server.wait_for(1)[0].data)
    assert letter["Reply-To"] == "Support <help@example.com>"
    assert letter["Feedback-ID"] == f"c{campaign_id}:other:{category}:example.com"
    assert ("List-Unsubscribe" in letter) is unsubscribe
    assert (letter.get("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click") is unsubscribe
