"""Acknowledgments of policy letters: the evidence that a customer read and accepted them.

Each keeps the exact version and locale variant the customer received, a SHA-256 of the
text they were shown when they accepted (the letter rendered again exactly as sent:
`delivery.copies`), the time, and the client's address and user agent. Accepting twice
keeps the first acknowledgment.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.audience.csvfiles import neutral
from campaigns.db import utcnow
from campaigns.delivery.copies import Copy
from campaigns.delivery.ledger import insert_ignoring_duplicates
from campaigns.models import (
    Acknowledgment,
    Contact,
    Delivery,
    Event,
    EventKind,
    Letter,
    LetterVersion,
)


def text_hash(copy: Copy) -> str:
    """The SHA-256 of what the customer was shown: the letter's subject and text."""
    return hashlib.sha256(f"{copy.subject}\n\n{copy.text}".encode()).hexdigest()


def of_delivery(session: Session, delivery_id: int) -> Acknowledgment | None:
    """The acknowledgment of a letter, if its recipient gave one."""
    return session.scalar(select(Acknowledgment).where(Acknowledgment.delivery_id == delivery_id))


def acknowledge(
    session: Session, copy: Copy, *, remote_addr: str = "", user_agent: str = "",
    now: datetime | None = None,
) -> tuple[Acknowledgment, bool]:  # fmt: skip
    """Record that the recipient accepted the letter `copy` shows; return the acknowledgment
    and whether it is new (a second acceptance keeps the first)."""
    sent, at = copy.sent, now or utcnow()
    values = {
        "delivery_id": sent.draft.delivery_id, "contact_id": sent.contact_id,
        "letter_version_id": sent.version_id, "locale": sent.draft.locale,
        "text_sha256": text_hash(copy), "acknowledged_at": at,
        "remote_addr": remote_addr[:64], "user_agent": user_agent[:500],
    }  # fmt: skip
    stmt = insert_ignoring_duplicates(session, Acknowledgment).values(values)
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    created = bool(getattr(result, "rowcount", 0))
    if created:
        session.add(Event(
            kind=EventKind.ACKNOWLEDGMENT, delivery_id=sent.draft.delivery_id,
            contact_id=sent.contact_id, occurred_at=at, user_agent=user_agent[:500],
            detail={"version": sent.version_number, "locale": sent.draft.locale},
        ))  # fmt: skip
    found = of_delivery(session, sent.draft.delivery_id)
    assert found is not None  # inserted now, or by the first acceptance
    return found, created


EVIDENCE_HEADER = ("email", "name", "delivery", "letter", "version", "locale", "sent_at",
                   "acknowledged_at", "text_sha256", "remote_addr", "user_agent")  # fmt: skip


def evidence_csv(session: Session, campaign_id: int) -> Iterator[str]:
    """Who acknowledged which version of a campaign's letter, when, from where — as CSV,
    a few hundred rows at a time."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(EVIDENCE_HEADER)
    last_id = 0
    while True:
        query = (
            select(Acknowledgment, Contact.email, Contact.first_name, Contact.last_name,
                   Letter.name, LetterVersion.number, Delivery.sent_at)
            .join(Delivery, Delivery.id == Acknowledgment.delivery_id)
            .join(Contact, Contact.id == Acknowledgment.contact_id)
            .join(LetterVersion, LetterVersion.id == Acknowledgment.letter_version_id)
            .join(Letter, Letter.id == LetterVersion.letter_id)
            .where(Delivery.campaign_id == campaign_id, Acknowledgment.id > last_id)
            .order_by(Acknowledgment.id)
            .limit(500)
        )  # fmt: skip
        rows = session.execute(query).all()
        for ack, email, first, last, letter, number, sent_at in rows:
            name = " ".join(p for p in (first, last) if p)
            out.writerow([neutral(str(v)) for v in (
                email, name, ack.delivery_id, letter, number, ack.locale,
                sent_at.isoformat() if sent_at else "", ack.acknowledged_at.isoformat(),
                ack.text_sha256, ack.remote_addr, ack.user_agent,
            )])  # fmt: skip
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < 500:
            return
        last_id = rows[-1][0].id
