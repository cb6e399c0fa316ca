"""From a campaign to what customers (and their mail providers' machines) did with it.

A renewal campaign goes to five customers through the real send path and a real SMTP
server. The test reads each letter as a mailbox would and acts on it: Ada's letter is opened
by her and by Apple's privacy proxy; Bob's links are all fetched by a link scanner, then he
clicks the renewal button himself; Cyd's mail provider sends the one-click unsubscribe of
the `List-Unsubscribe` header; Dee acknowledges the terms; Eve's server bounces the letter
with a real DSN mailed to its return path. Then the ledger, the events and the contacts'
statuses must be exactly right, and the next campaign must not mail Cyd or Eve.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from email.message import Message

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaigns.audience import contacts, segments
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import Received, SMTPCatcher
from campaigns.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryState,
    Event,
    LetterCategory,
    LetterKind,
    SegmentTarget,
    Suppression,
)
from campaigns.tracking import hits
from campaigns.tracking.mailboxes import BounceServer
from tests.factories import launch_now, make_version
from tests.tracking.conftest import mail, report_mail
from tests.web.conftest import app, csrf_token

__all__ = ["app"]  # the web app fixture, shared with the web tests

PEOPLE = ("ada", "bob", "cyd", "dee", "eve")
LETTER = ('<p>Dear {{ contact.first_name }}, your {{ contract.product }} ends on '
          '{{ format_date(contract.ends_on) }}.</p>'
          '<p><a href="{{ renewal_url }}">Renew now</a></p>'
          '<p><a href="{{ acknowledge_url }}">I have read the new support terms</a></p>'
          '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')  # fmt: skip
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")  # fmt: skip
APPLE_PROXY = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"


def _campaign(db: Database, name: str) -> int:
    """A renewal campaign to every contract ending within 30 days, due now."""
    with db.unit_of_work() as s:
        ending = segments.create_segment(
            s, f"Ending soon ({name})", target=SegmentTarget.CONTRACTS,
            rules={"match": "all", "conditions": [
                {"field": "contract.ends_on", "op": "in_next_days", "value": 30}]},
        )  # fmt: skip
        version = make_version(s, name=name, kind=LetterKind.RENEWAL,
                               category=LetterCategory.MARKETING, html=LETTER)  # fmt: skip
        campaign = scheduling.create_campaign(s, name, segment_id=ending.id,
                                              letter_version_id=version.id)  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        return campaign.id


def _send(db: Database, settings: Settings, smtp_server: SMTPCatcher) -> None:
    mailer = SMTPMailer(smtp_server.url)
    try:
        for batch in launch_now(db):
            sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    finally:
        mailer.close()


def _links(letter: Message) -> dict[str, str]:
    """The letter's links by their first path segment (`o`, `r`, `a`, `u`), as paths."""
    html = next(p for p in letter.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    found = re.findall(r'(?:href|src)="https?://[^/"]+(/([a-z])/[^"]+)"', body)
    return {kind: path for path, kind in found}


def _events(db: Database) -> list[tuple[str, str, bool]]:
    """(first name, kind, by a machine) of every event, in a stable order."""
    with db.unit_of_work() as s:
        rows = s.execute(select(Contact.first_name, Event.kind, Event.is_machine)
                         .join(Contact, Contact.id == Event.contact_id))  # fmt: skip
        return sorted((name.lower(), str(kind), bool(machine)) for name, kind, machine in rows)


def test_a_campaigns_letters_are_opened_clicked_unsubscribed_acknowledged_and_bounced(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher,
    bounce_server: BounceServer,
) -> None:  # fmt: skip
    today = utcnow().date()
    with db.unit_of_work() as s:
        for name in PEOPLE:
            person = contacts.create_contact(s, f"{name}@example.com", first_name=name.title())
            contacts.add_contract(s, person.id, product="Premium Support",
                                  starts_on=today - timedelta(days=345),
                                  ends_on=today + timedelta(days=20),
                                  renewal_url=f"https://shop.example.com/renew/{name}")  # fmt: skip
    first = _campaign(db, "Renew before it ends")
    _send(db, settings, smtp_server)
    letters: dict[str, Received] = {m.recipients[0].split("@")[0]: m
                                    for m in smtp_server.wait_for(5)}  # fmt: skip
    assert sorted(letters) == list(PEOPLE)
    links = {name: _links(letter.message) for name, letter in letters.items()}
    # The letters were read later, not the instant they arrived.
    with db.unit_of_work() as s:
        s.execute(update(Delivery).values(sent_at=utcnow() - timedelta(hours=2)))

    web = app.test_client(use_cookies=False)

    # Ada opens her letter; Apple's proxy had fetched its images first.
    apple = {"REMOTE_ADDR": "17.58.101.7"}
    assert web.get(links["ada"]["o"], headers={"User-Agent": APPLE_PROXY},
                   environ_base=apple).status_code == 200  # fmt: skip
    assert web.get(links["ada"]["o"], headers={"User-Agent": CHROME}).status_code == 200

    # A scanner fetches every link of Bob's letter (GET and HEAD) within a second.
    for path in links["bob"].values():
        web.head(path, headers={"User-Agent": SCANNER})
        web.get(path, headers={"User-Agent": SCANNER})
    time.sleep(1.2)  # then, later, Bob clicks the renewal button himself
    answer = web.get(links["bob"]["r"], headers={"User-Agent": CHROME})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://shop.example.com/renew/bob"

    # Cyd's provider sends the one-click unsubscribe exactly as RFC 8058 says.
    header = letters["cyd"].message["List-Unsubscribe"]
    assert letters["cyd"].message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = re.fullmatch(r"<https?://[^/]+(/u/[^>]+)>", header)
    assert one_click is not None
    answer = web.post(one_click.group(1), data="List-Unsubscribe=One-Click",
                      content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert answer.status_code == 200

    # Dee reads the terms and accepts them.
    dee: FlaskClient = app.test_client()
    page = dee.get(links["dee"]["a"], headers={"User-Agent": CHROME})
    assert "I have read and accept" in page.get_data(as_text=True)
    dee.post(links["dee"]["a"], data={"csrf_token": csrf_token(dee, links["dee"]["a"])},
             headers={"User-Agent": CHROME})  # fmt: skip

    # Eve's server bounces the letter: a DSN mailed to the letter's own return path.
    eve = letters["eve"]
    assert eve.sender.startswith("bounces+")
    dsn = report_mail("dsn_postfix_user_unknown", verp=eve.sender, recipient="eve@example.com",
                      message_id=eve.message["Message-ID"])  # fmt: skip
    mail(bounce_server.port, dsn, to=eve.sender)

    hits.flush_all()
    assert _events(db) == sorted([
        ("ada", "open", False), ("ada", "open", True),
        # The scanner's GET and HEAD of the pixel and the renewal link: recorded, flagged.
        ("bob", "open", True), ("bob", "open", True),
        ("bob", "renewal_click", True), ("bob", "renewal_click", True),
        ("bob", "renewal_click", False),
        ("cyd", "unsubscribe", False),
        ("dee", "acknowledgment", False),
        ("eve", "bounce", False),
    ])  # fmt: skip
    with db.unit_of_work() as s:
        statuses = {n: st for n, st in s.execute(select(Contact.first_name, Contact.status))}
        suppressed = s.scalars(select(Suppression.email)).all()
        rows = s.scalars(select(Delivery.state).where(Delivery.campaign_id == first)).all()
    assert statuses == {"Ada": ContactStatus.ACTIVE, "Bob": ContactStatus.ACTIVE,
                        "Cyd": ContactStatus.UNSUBSCRIBED, "Dee": ContactStatus.ACTIVE,
                        "Eve": ContactStatus.BOUNCED}  # fmt: skip
    assert suppressed == ["eve@example.com"]
    assert rows == [DeliveryState.SENT] * 5

    # The next campaign reaches only those who can still be mailed.
    second = _campaign(db, "Last reminder")
    _send(db, settings, smtp_server)
    received = smtp_server.wait_for(8)[5:]
    assert sorted(m.recipients[0] for m in received) == [
        "ada@example.com", "bob@example.com", "dee@example.com"]  # fmt: skip
    with db.unit_of_work() as s:
        held = s.execute(
            select(Delivery.email, Delivery.reason).where(
                Delivery.campaign_id == second, Delivery.state == DeliveryState.SUPPRESSED
            )
        )
        assert sorted(held) == [
            ("cyd@example.com", "contact is unsubscribed"),
            ("eve@example.com", "address is on the suppression list"),
        ]
