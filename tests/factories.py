"""Small factories that build test data through the domain functions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from campaigns.audience import contacts, segments
from campaigns.letters import authoring
from campaigns.models import (
    Contact,
    ContactStatus,
    LetterCategory,
    LetterKind,
    LetterVersion,
    Segment,
)

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
