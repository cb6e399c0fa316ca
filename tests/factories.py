"""Small factories that build test data through the domain functions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.audience import contacts, segments, upserts
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.letters import approvals, authoring
from campaigns.models import (
    Contact,
    ContactStatus,
    Delivery,
    LetterCategory,
    LetterKind,
    LetterVersion,
    Role,
    Segment,
)
from campaigns.models.contacts import normalise_email

BODY = (
    "<style>p { color: #123456; }</style>"
    "<p>Dear {{ contact.first_name }}, your cover ends on {{ contract.ends_on if contract }}.</p>"
    '<p><a href="https://shop.example.com/renew?plan=gold&amp;src=mail">Renew</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


def make_contact(
    session: Session, email: str, *, status: ContactStatus = ContactStatus.ACTIVE, **fields: Any
) -> Contact:
    contact = contacts.create_contact(session, email, status=status, **fields)
    contacts.add_contract(
        session, contact.id, product="Premium Support", starts_on=date(2026, 1, 1),
        ends_on=date(2026, 1, 1) + timedelta(days=365),
        renewal_url=f"https://shop.example.com/renew/{contact.id}",
    )  # fmt: skip
    return contact


def make_segment(session: Session, name: str = "Everyone", **rules: Any) -> Segment:
    return segments.create_segment(session, name, rules=rules or {"match": "all", "conditions": []})


def make_version(
    session: Session,
    *,
    name: str = "Offer",
    kind: LetterKind = LetterKind.OTHER,
    category: LetterCategory = LetterCategory.MARKETING,
    subject: str = "Hello {{ contact.first_name }}",
    html: str = BODY,
    text: str | None = None,
) -> LetterVersion:
    letter = authoring.create_letter(session, name, kind=kind, category=category)
    return authoring.add_version(session, letter.id, subject=subject, html=html, text=text)


def approve_legal(session: Session, version: LetterVersion) -> LetterVersion:
    """A legal letter needs a second person's approval before a campaign may use it."""
    if version.requires_approval:
        checker = users.create_user(session, f"legal-{version.id}@example.com",
                                    "a long password 123", role=Role.EDITOR)  # fmt: skip
        approvals.approve(session, version.id, user_id=checker.id)
    return version


def make_unchecked_version(
    session: Session, *, html: str, name: str = "Unchecked", subject: str = "Hello"
) -> LetterVersion:
    """Store a version as given, skipping add_version's checks (one saved before they existed)."""
    letter = authoring.create_letter(
        session, name, kind=LetterKind.OTHER, category=LetterCategory.SERVICE
    )
    version = LetterVersion(
        letter_id=letter.id, number=1, subject=subject, html_source=html, text_source=None,
        compiled_html=html, compiled_text="Hello\n",
    )  # fmt: skip
    session.add(version)
    session.flush()
    return version


def schedule_campaign(db: Database, name: str, emails: list[str]) -> int:
    """A campaign of a new letter to these addresses (contacts made as needed), due now."""
    with db.unit_of_work() as s:
        # One bulk upsert however many addresses (the chaos test has 20,000); known ones stay.
        contract = {"product": "Premium Support", "starts_on": date(2026, 1, 1),
                    "ends_on": date(2027, 1, 1)}  # fmt: skip
        # A first name each: the letter greets by it, and a blank merge field fails the row.
        people = [{"email": normalise_email(e), "first_name": e.partition("@")[0].title(),
                   "contracts": [contract]} for e in emails]  # fmt: skip
        upserts.upsert(s, people, source="test")
        campaign = scheduling.create_campaign(
            s, name, segment_id=make_segment(s, name).id,
            letter_version_id=make_version(s, name=name).id,
        )  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        return campaign.id


def launch_now(db: Database, size: int = 200) -> list[list[int]]:
    """Launch the one due campaign; return its batches of ledger ids."""
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow(), batch_size=size)
    return launch.batches


def ledger_rows(db: Database, campaign_id: int) -> dict[str, Delivery]:
    """The campaign's ledger rows by address."""
    with db.unit_of_work() as s:
        query = select(Delivery).where(Delivery.campaign_id == campaign_id)
        return {d.email: d for d in s.scalars(query)}


def deliver(db: Database, batches: list[list[int]], *, smtp_url: str, settings: Settings) -> None:
    """Send these batches of ledger rows through the real send path to this SMTP server."""
    mailer = SMTPMailer(smtp_url)
    try:
        for batch in batches:
            sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    finally:
        mailer.close()
