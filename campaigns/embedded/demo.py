"""Demo data: a few customers with contracts, the stock letters, and a campaign to send."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from campaigns.audience import contacts, segments
from campaigns.delivery import scheduling
from campaigns.letters import stock
from campaigns.models import (
    Approval,
    Campaign,
    Decision,
    LetterKind,
    SegmentTarget,
)
from campaigns.service import settings

PEOPLE = [
    ("ada.lovelace@example.com", "Ada", "Lovelace", "Premium Support", 20),
    ("alan.turing@example.com", "Alan", "Turing", "Extended Warranty", 45),
    ("grace.hopper@example.com", "Grace", "Hopper", "Premium Support", 7),
    ("edsger.dijkstra@example.com", "Edsger", "Dijkstra", "Service Plan Basic", 200),
    ("barbara.liskov@example.com", "Barbara", "Liskov", "Extended Warranty", 90),
    ("ken.thompson@example.com", "Ken", "Thompson", "Premium Support", 31),
]
# The service settings the policy re-statement quotes and the "Points running low" letter offers.
POLICY_TEXT = """Email support stays free: write to us about anything, as often as you need to.

Priority phone support is charged per incident. An incident is one problem, however many \
calls it takes to solve it.

Service points pay for phone incidents instead of money: each incident takes one point."""
POLICY_TEXT_DE = """Der E-Mail-Support bleibt kostenlos: Schreiben Sie uns zu allem, so oft Sie \
möchten.

Priorisierter Telefon-Support wird pro Vorfall berechnet. Ein Vorfall ist ein Problem, \
gleich wie viele Anrufe seine Lösung braucht.

Servicepunkte bezahlen Telefon-Vorfälle statt Geld: Jeder Vorfall kostet einen Punkt."""
PACKAGES = [{"name": "Buy 5, get 6", "points": "6", "price": "250.00"},
            {"name": "Single incident", "points": "1", "price": "49.00"}]  # fmt: skip


def load(session: Session, *, today: date, now: datetime) -> Campaign:
    """Create the demo data and schedule its first campaign for `now`; return it."""
    versions = stock.load(session)
    settings.update(session, incident_fee="59.00", currency="EUR", packages=PACKAGES,
                    policy_text=POLICY_TEXT, user_id=None, now=now,
                    policy_translations=[{"locale": "de", "text": POLICY_TEXT_DE}])  # fmt: skip
    # The demo sends its policy re-statement at once, but a legal letter needs a second
    # user's approval and a new database has no users yet: the demo records it as its own.
    policy = versions[LetterKind.POLICY]
    session.add(Approval(version_id=policy.id, user_id=None, decision=Decision.APPROVED,
                         comment="Stock letter, approved as the demo was loaded"))  # fmt: skip
    session.flush()
    session.expire(policy, ["decisions"])
    for email, first, last, product, days_left in PEOPLE:
        contact = contacts.create_contact(
            session, email, first_name=first, last_name=last,
            customer_since=today - timedelta(days=400 + 10 * days_left),
        )  # fmt: skip
        contacts.add_contract(
            session, contact.id, product=product, plan="Annual",
            starts_on=today - timedelta(days=365 - days_left),
            ends_on=today + timedelta(days=days_left), price=Decimal("480.00"),
            renewal_url=f"https://shop.example.com/renew/{contact.id}",
            service_points=days_left // 10,
        )  # fmt: skip
    everyone = segments.create_segment(
        session, "All active contacts", rules=segments.ALL_ACTIVE_CONTACTS,
        description="Every contact who has not unsubscribed, bounced or complained.",
    )  # fmt: skip
    segments.create_segment(
        session, "Cover ending within 60 days", target=SegmentTarget.CONTRACTS,
        description="Active contracts that end in the next 60 days, one row per contract.",
        rules={"match": "all", "conditions": [
            {"field": "contact.status", "op": "eq", "value": "active"},
            {"field": "contract.status", "op": "eq", "value": "active"},
            {"field": "contract.ends_on", "op": "in_next_days", "value": 60},
        ]},
    )  # fmt: skip
    campaign = scheduling.create_campaign(
        session, "Policy re-statement (demo)", segment_id=everyone.id,
        letter_version_id=versions[LetterKind.POLICY].id,
        # The gift that makes the terms read kindly: each letter shows the new balance.
        grant=scheduling.Grant(3, loyal_points=5, loyal_years=5, expires_days=365),
    )  # fmt: skip
    scheduling.schedule(session, campaign.id, send_at=now)
    return campaign
