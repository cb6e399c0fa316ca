"""The compliance watch: complaint rate against the ceiling, and unsubscribes honoured."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from campaigns.audience import contacts
from campaigns.db import Database, utcnow
from campaigns.models import (
    ContactStatus,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    LetterCategory,
    Role,
)
from campaigns.tracking import compliance
from tests.factories import make_contact, make_version
from tests.web.conftest import app, login

__all__ = ["app"]  # the admin app fixture, shared with the web tests


def _sent(db: Database, count: int, domain: str, *, complaints: int = 0) -> list[int]:
    """`count` marketing letters delivered to `domain` yesterday; the first few complained."""
    now = utcnow()
    with db.unit_of_work() as s:
        version = make_version(s, name=f"Offer {domain}", category=LetterCategory.MARKETING)
        rows = []
        for n in range(count):
            contact = make_contact(s, f"p{n}@{domain}")
            rows.append(Delivery(contact_id=contact.id, email=contact.email,
                                 letter_version_id=version.id, state=DeliveryState.SENT,
                                 sent_at=now - timedelta(days=1)))  # fmt: skip
        s.add_all(rows)
        s.flush()
        complained = now - timedelta(hours=20)
        s.add_all(Event(kind=EventKind.COMPLAINT, delivery_id=d.id, contact_id=d.contact_id,
                        occurred_at=complained) for d in rows[:complaints])  # fmt: skip
        return [d.id for d in rows]


def test_the_watch_counts_complaints_per_domain_against_the_ceiling(db: Database) -> None:
    _sent(db, 400, "gmail.com", complaints=2)  # 0.5 %: over
    _sent(db, 300, "example.org")
    with db.unit_of_work() as s:
        total, first, second = compliance.watch(s, sender_domain="acme.test", now=utcnow())
    assert (total.domain, total.sent, total.complaints) == ("acme.test", 700, 2)
    assert total.level == "warn"  # 2 of 700: 0.29 %, past Google's advice, under the ceiling
    assert (first.domain, first.sent, first.complaints, first.level) == ("gmail.com", 400, 2,
                                                                         "over")  # fmt: skip
    assert (second.domain, second.level) == ("example.org", "ok")


def test_a_marketing_letter_sent_after_an_unsubscribe_is_counted_until_resubscribed(
    db: Database,
) -> None:
    (before, after, back) = _sent(db, 3, "example.net")
    now = utcnow()
    with db.unit_of_work() as s:
        for delivery_id in (before, after, back):
            row = s.get_one(Delivery, delivery_id)
            contacts.set_status(s, row.contact_id, ContactStatus.UNSUBSCRIBED, reason="test",
                                source="unsubscribe")  # fmt: skip
        # Unsubscribed after the letter went: fine. Before it went: a letter too many.
        s.get_one(Delivery, before).sent_at = now - timedelta(hours=1)
        s.get_one(Delivery, after).sent_at = now + timedelta(seconds=5)
        # Subscribed again before the letter went: fine.
        contacts.set_status(s, s.get_one(Delivery, back).contact_id, ContactStatus.ACTIVE,
                            reason="came back", source="unsubscribe")  # fmt: skip
        s.get_one(Delivery, back).sent_at = now + timedelta(seconds=10)
    with db.unit_of_work() as s:
        total, _ = compliance.watch(s, sender_domain="acme.test", now=now + timedelta(minutes=1))
    assert total.sent_after_unsubscribe == 1


def test_the_dashboard_warns_before_the_ceiling(app: Flask, db: Database) -> None:
    _sent(db, 500, "gmail.com", complaints=1)  # 0.2 %
    staff = app.test_client()
    login(staff, Role.VIEWER)
    page = staff.get("/").get_data(as_text=True)
    assert "Compliance watch" in page
    assert "Complaints are at 0.20 % of delivered letters: past Google" in page
