"""Bounces and complaints mailed back over SMTP to the letters' VERP return paths: recorded
once, the address suppressed, and the next campaign does not mail it."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.audience import contacts, suppressions
from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher, free_port
from campaigns.models import Contact, ContactStatus, EventKind
from campaigns.models import DeliveryState as State
from campaigns.tracking.mailboxes import BounceServer, Receiver
from tests.factories import launch_now, ledger_rows, schedule_campaign
from tests.tracking.conftest import (
    contact_status,
    events_of,
    letter_to,
    mail,
    report_mail,
)

ANN, BOB = "ann@example.com", "bob@example.com"
VERP = re.compile(r"bounces\+[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+@example\.com")


def send_campaign(db: Database, settings: Settings, smtp_server: SMTPCatcher, name: str) -> int:
    campaign_id = schedule_campaign(db, name, [ANN, BOB])
    mailer = SMTPMailer(smtp_server.url)
    for batch in launch_now(db):
        sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    mailer.close()
    return campaign_id


def test_every_letter_goes_out_with_a_return_path_of_its_own(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    send_campaign(db, settings, smtp_server, "Offer")
    senders = [letter_to(smtp_server, a).sender for a in (ANN, BOB)]
    assert all(VERP.fullmatch(s) for s in senders), senders
    assert senders[0] != senders[1]
    assert all(len(s.partition("@")[0]) <= 64 for s in senders)  # RFC 5321 local-part limit


def test_a_dsn_mailed_to_the_return_path_bounces_the_address_once_and_the_next_campaign_skips_it(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, bounce_server: BounceServer
) -> None:
    first = send_campaign(db, settings, smtp_server, "First")
    letter = letter_to(smtp_server, BOB)
    dsn = report_mail("dsn_postfix_user_unknown", verp=letter.sender, recipient=BOB,
                      message_id=str(letter.message["Message-ID"]))  # fmt: skip
    mail(bounce_server.port, dsn, to=letter.sender)
    mail(bounce_server.port, dsn, to=letter.sender)  # the same bounce again: recorded once

    [event] = events_of(db, BOB)
    assert (event.kind, event.delivery_id) == (EventKind.BOUNCE, ledger_rows(db, first)[BOB].id)
    assert event.detail["severity"] == "hard" and event.detail["status"] == "5.1.1"
    assert "User unknown in virtual mailbox table" in event.detail["diagnostic"]
    assert events_of(db, ANN) == []
    with db.unit_of_work() as s:
        bob = s.scalar(select(Contact).where(Contact.email == BOB))
        assert bob is not None and bob.status == ContactStatus.BOUNCED
        [change] = contacts.status_history(s, bob.id)
        assert change.source == "bounce"
        assert change.reason.startswith("hard bounce: 5.1.1 550 5.1.1 <bob@example.com>")
        assert suppressions.is_suppressed(s, BOB) and not suppressions.is_suppressed(s, ANN)

    second = send_campaign(db, settings, smtp_server, "Second")
    assert ledger_rows(db, second)[BOB].state == State.SUPPRESSED
    assert ledger_rows(db, second)[ANN].state == State.SENT
    assert [m.recipients[0] for m in smtp_server.messages].count(BOB) == 1


def test_an_arf_complaint_suppresses_the_address_and_marks_the_contact_complained(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, bounce_server: BounceServer
) -> None:
    send_campaign(db, settings, smtp_server, "First")
    letter = letter_to(smtp_server, ANN)
    # Feedback loops mail their reports to the address registered with them: the bare one.
    arf = report_mail("arf_abuse", verp=letter.sender, recipient=ANN,
                      message_id=str(letter.message["Message-ID"]))  # fmt: skip
    mail(bounce_server.port, arf, to="bounces@example.com")

    [event] = events_of(db, ANN)
    assert event.kind == EventKind.COMPLAINT
    report_id = "<1773144000.42.yahoo.arf@arf.mail.yahoo.com>"
    assert event.detail == {"source": "arf", "feedback_type": "abuse", "recipient": ANN,
                            "report_id": report_id}  # fmt: skip
    assert contact_status(db, ANN) == ContactStatus.COMPLAINED
    second = send_campaign(db, settings, smtp_server, "Second")
    assert ledger_rows(db, second)[ANN].state == State.SUPPRESSED
    assert [m.recipients[0] for m in smtp_server.messages].count(ANN) == 1


def test_a_bounce_without_a_token_is_found_by_the_message_id_it_returns(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, bounce_server: BounceServer
) -> None:
    first = send_campaign(db, settings, smtp_server, "First")
    letter = letter_to(smtp_server, BOB)
    # A server that lost the envelope: no VERP address anywhere, only the returned headers.
    qmail = report_mail("qmail_failure_notice", verp="bounces@example.com", recipient=BOB,
                        message_id=str(letter.message["Message-ID"]))  # fmt: skip
    mail(bounce_server.port, qmail, to="bounces@example.com")
    [event] = events_of(db, BOB)
    assert event.delivery_id == ledger_rows(db, first)[BOB].id
    assert (event.detail["source"], event.detail["severity"]) == ("text", "hard")
    assert contact_status(db, BOB) == ContactStatus.BOUNCED


def test_delay_notices_auto_replies_and_forged_tokens_change_nothing(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, bounce_server: BounceServer
) -> None:
    send_campaign(db, settings, smtp_server, "First")
    letter = letter_to(smtp_server, BOB)
    ids = {"verp": letter.sender, "recipient": BOB, "message_id": "<elsewhere@example.org>"}
    mail(bounce_server.port, report_mail("dsn_delayed", **ids), to=letter.sender)
    mail(bounce_server.port, report_mail("out_of_office", **ids), to=letter.sender)
    # A token we did not sign (a guessed id) names no letter.
    forged = letter.sender.replace("bounces+", "bounces+WzFd.")
    dsn = report_mail("dsn_postfix_user_unknown", **{**ids, "verp": forged})
    mail(bounce_server.port, dsn, to=forged)
    assert events_of(db, BOB) == [] and events_of(db, ANN) == []
    assert contact_status(db, BOB) == ContactStatus.ACTIVE


def test_the_receiver_takes_mail_for_bounce_addresses_only(
    db: Database, bounce_server: BounceServer
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        with smtplib.SMTP(bounce_server.host, bounce_server.port, timeout=30) as smtp:
            smtp.sendmail("someone@example.org", ["care@example.com"], b"Subject: hi\r\n\r\nhi\r\n")
    assert refused.value.recipients["care@example.com"][0] == 550


def test_a_bounce_that_cannot_be_recorded_is_refused_for_now_so_the_sender_retries(
    settings: Settings, tmp_path: Path
) -> None:
    broken = Database(f"sqlite:///{tmp_path}/missing/dir/campaigns.db")  # cannot be opened
    server = BounceServer(Receiver(broken, settings), host="127.0.0.1", port=free_port()).start()
    dsn = report_mail("dsn_postfix_user_unknown", verp="bounces+WzFd.x@example.com",
                      recipient=BOB, message_id="<a@example.com>")  # fmt: skip
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            mail(server.port, dsn, to="bounces+WzFd.x@example.com")
        assert refused.value.smtp_code == 451
    finally:
        server.stop()
        broken.dispose()
