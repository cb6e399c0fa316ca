"""Ledger rows, events and customers written straight into the database, for report tests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from campaigns.audience import contacts
from campaigns.models import Delivery, DeliveryState, Event, EventKind, LetterKind
from tests.factories import BODY, make_version

RENEWAL_BODY = BODY + '<a href="{{ renewal_url }}">Renew</a>'


def customer(
    s: Session, email: str, *, price: str = "120", currency: str = "EUR"
) -> tuple[int, int]:
    """A contact with one contract ending 2026-12-01; their ids."""
    contact = contacts.create_contact(s, email, first_name=email.partition("@")[0].title())
    contract = contacts.add_contract(
        s, contact.id, product="Gold Support", external_id=f"K-{email}", price=Decimal(price),
        currency=currency, starts_on=date(2025, 12, 1), ends_on=date(2026, 12, 1),
    )  # fmt: skip
    return contact.id, contract.id


def version(s: Session, kind: LetterKind = LetterKind.RENEWAL, name: str | None = None) -> int:
    return make_version(s, name=name or f"{kind} letter", kind=kind, html=RENEWAL_BODY).id


def letter(
    s: Session, contact_id: int, contract_id: int | None, version_id: int, at: datetime,
    state: DeliveryState = DeliveryState.SENT, **fields: Any,
) -> int:  # fmt: skip
    """A ledger row decided (and, when sent, sent) at `at`."""
    row = Delivery(contact_id=contact_id, contract_id=contract_id, term=1, email="x@example.com",
                   letter_version_id=version_id, state=state, created_at=at,
                   sent_at=at if state == DeliveryState.SENT else None, **fields)  # fmt: skip
    s.add(row)
    s.flush()
    return row.id


def event(s: Session, delivery_id: int, contact_id: int, kind: EventKind, at: datetime,
          *, machine: bool = False) -> None:  # fmt: skip
    s.add(Event(kind=kind, delivery_id=delivery_id, contact_id=contact_id, occurred_at=at,
                is_machine=machine))  # fmt: skip
    s.flush()
