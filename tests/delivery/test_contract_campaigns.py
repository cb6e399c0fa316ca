"""A campaign to a segment of contracts: one letter per contact, about the soonest-ending one."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from decimal import Decimal
from email.message import Message

from babel.dates import format_date as babel_date
from flask import Flask
from sqlalchemy import select

from campaigns.audience import contacts, segments
from campaigns.config import Caps, Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.letters import stock
from campaigns.models import Contract, Delivery, LetterCategory, LetterKind, SegmentTarget
from tests.factories import deliver, launch_now, make_version
from tests.web.conftest import app

__all__ = ["app"]  # the web app fixture, shared with the web tests

RENEWAL = ('<p>Dear {{ contact.first_name }}, your {{ contract.product }} ends on '
           '{{ format_date(contract.ends_on) }}.</p><a href="{{ renewal_url }}">Renew</a>'
           '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')  # fmt: skip


def test_each_contact_gets_one_letter_about_their_soonest_ending_matching_contract(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    today = utcnow().date()
    with db.unit_of_work() as s:
        ada = contacts.create_contact(s, "ada@example.com", first_name="Ada")
        for product, days in (("Gold Support", 20), ("Basic Support", 10), ("Old Plan", 400)):
            contacts.add_contract(s, ada.id, product=product, starts_on=today - timedelta(365),
                                  ends_on=today + timedelta(days),
                                  renewal_url="https://shop.example.com/renew")  # fmt: skip
        bob = contacts.create_contact(s, "bob@example.com", first_name="Bob")
        contacts.add_contract(s, bob.id, product="Gold Support", starts_on=today,
                              ends_on=today + timedelta(200))  # no contract ends soon  # fmt: skip
        ending = segments.create_segment(
            s, "Ends in 30 days", target=SegmentTarget.CONTRACTS,
            rules={"match": "all",
                   "conditions": [{"field": "contract.ends_on", "op": "in_next_days",
                                   "value": 30}]},
        )  # fmt: skip
        version = make_version(s, name="Renewal", kind=LetterKind.RENEWAL,
                               category=LetterCategory.MARKETING, html=RENEWAL)  # fmt: skip
        campaign = scheduling.create_campaign(s, "Renew now", segment_id=ending.id,
                                              letter_version_id=version.id)  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        basic = next(c.id for c in ada.contracts if c.product == "Basic Support")
    (batch,) = launch_now(db)
    with db.unit_of_work() as s:
        rows = s.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id)).all()
        assert [(r.email, r.contract_id, r.term) for r in rows] == [("ada@example.com", basic, 1)]
    mailer = SMTPMailer(smtp_server.url)
    try:
        assert sending.deliver_batch(db, batch, mailer=mailer, settings=settings).sent == 1
    finally:
        mailer.close()
    (letter,) = smtp_server.wait_for(1)
    html = next(p for p in letter.message.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "your Basic Support ends on" in body and f"{settings.public_url}/r/" in body


def _parts(letter: Message) -> tuple[str, str]:
    """The HTML and the text of a received letter."""
    found = {}
    for part in letter.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            found[part.get_content_type()] = payload.decode()
    return found["text/html"], found["text/plain"]


def test_the_stock_expiry_and_renewal_letters_name_the_contracts_and_renew_them(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    """Must-show 2 of the automations issue: both stock letters, through per-contract
    campaigns and a real SMTP server, name the contract and link to renewing it."""
    today = utcnow().date()
    covers = {"ada": [("Gold Support", 10), ("Basic Support", 25), ("Old Plan", 200)],
              "bob": [("Premium Support", 20)]}  # fmt: skip
    with db.unit_of_work() as s:
        versions = stock.load(s)
        for name, held in covers.items():
            person = contacts.create_contact(s, f"{name}@example.com", first_name=name.title())
            for product, days in held:
                contacts.add_contract(
                    s, person.id, product=product, starts_on=today - timedelta(300),
                    ends_on=today + timedelta(days), price=Decimal("480.00"),
                    renewal_url=f"https://shop.example.com/renew/{name}/{days}",
                )  # fmt: skip
        ending = segments.create_segment(
            s, "Ends within 30 days", target=SegmentTarget.CONTRACTS,
            rules={"match": "all", "conditions": [
                {"field": "contract.ends_on", "op": "in_next_days", "value": 30}]},
        )  # fmt: skip
        for kind in (LetterKind.EXPIRY, LetterKind.RENEWAL):
            campaign = scheduling.create_campaign(s, f"{kind} to contracts", segment_id=ending.id,
                                                  letter_version_id=versions[kind].id)  # fmt: skip
            scheduling.schedule(s, campaign.id, send_at=utcnow())
    with db.unit_of_work() as s:
        launches = scheduling.launch_due(s, now=utcnow())
    # Both letters go to the same people at once: no frequency cap here (tests of their own).
    settings = dataclasses.replace(settings, caps=Caps(0, 0, 0))
    deliver(db, [b for launch in launches for b in launch.batches], smtp_url=smtp_server.url,
            settings=settings)  # fmt: skip
    with db.unit_of_work() as s:
        rows = s.execute(select(Delivery.email, Contract.product, Delivery.contract_ids)
                         .join(Contract, Contract.id == Delivery.contract_id)).all()  # fmt: skip
        # One letter per contact per campaign, about the soonest-ending contract, naming all.
        assert sorted((email, product, len(ids.split(","))) for email, product, ids in rows) == [
            ("ada@example.com", "Gold Support", 2), ("ada@example.com", "Gold Support", 2),
            ("bob@example.com", "Premium Support", 1), ("bob@example.com", "Premium Support", 1),
        ]  # fmt: skip
    web = app.test_client(use_cookies=False)
    received = smtp_server.wait_for(4)
    assert len(received) == 4
    for letter in received:
        name = letter.recipients[0].partition("@")[0]
        product, days = covers[name][0]
        html, text = _parts(letter.message)
        ends = babel_date(today + timedelta(days), "long", locale="en")
        for part in (html, text):
            assert product in part and ends in part, (name, part)
            assert "{{" not in part and "None" not in part and "shop.example.com" not in part
        expiry = "Renew my cover" in html
        if expiry and name == "ada":  # the other matching contract is named too
            assert "Your other covers that end soon" in html and "Basic Support" in html
            assert babel_date(today + timedelta(25), "long", locale="en") in html
        assert "Old Plan" not in html  # not in the segment
        (renew,) = set(re.findall(rf'href="{re.escape(settings.public_url)}(/r/[^"]+)"', html))
        answer = web.get(renew, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
        assert answer.status_code in (302, 303)
        assert answer.headers["Location"].startswith(
            f"https://shop.example.com/renew/{name}/{days}"
        )
