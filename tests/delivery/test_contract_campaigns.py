"""A campaign to a segment of contracts: one letter per contact, about the soonest-ending one."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from campaigns.audience import contacts, segments
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Delivery, LetterCategory, LetterKind, SegmentTarget
from tests.factories import launch_now, make_version

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
