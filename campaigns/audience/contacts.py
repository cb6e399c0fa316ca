"""Contacts and their contracts: creation with validation, look-ups, counts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.db import require
from campaigns.errors import ValidationError
from campaigns.models import Contact, ContactStatus, Contract, ContractStatus
from campaigns.models.contacts import normalise_email


def create_contact(
    session: Session,
    email: str,
    *,
    first_name: str = "",
    last_name: str = "",
    locale: str = "en",
    time_zone: str = "UTC",
    status: ContactStatus = ContactStatus.ACTIVE,
    attributes: dict[str, Any] | None = None,
    customer_since: date | None = None,
    external_id: str | None = None,
) -> Contact:
    """Add a contact; the e-mail address is normalised and must be new."""
    email = normalise_email(email)
    if session.scalar(select(Contact.id).where(Contact.email == email)) is not None:
        raise ValidationError(f"a contact with e-mail {email} already exists", field="email")
    contact = Contact(
        email=email,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        locale=locale,
        time_zone=time_zone,
        status=ContactStatus(status),
        attributes=attributes or {},
        customer_since=customer_since,
        external_id=external_id,
    )
    session.add(contact)
    session.flush()
    return contact


def add_contract(
    session: Session,
    contact_id: int,
    *,
    product: str,
    starts_on: date,
    ends_on: date,
    plan: str = "",
    price: Decimal = Decimal("0"),
    currency: str = "EUR",
    renewal_url: str | None = None,
    service_points: int = 0,
    external_id: str | None = None,
) -> Contract:
    """Attach a contract to a contact."""
    if not product.strip():
        raise ValidationError("a contract needs a product name", field="product")
    if ends_on < starts_on:
        raise ValidationError("the contract must end on or after its start", field="ends_on")
    if renewal_url and not renewal_url.startswith(("https://", "http://")):
        raise ValidationError("the renewal URL must start with https://", field="renewal_url")
    contract = Contract(
        contact_id=contact_id,
        product=product.strip(),
        plan=plan,
        starts_on=starts_on,
        ends_on=ends_on,
        price=price,
        currency=currency.upper(),
        renewal_url=renewal_url,
        service_points=service_points,
        external_id=external_id,
        status=ContractStatus.ACTIVE,
    )
    session.add(contract)
    session.flush()
    return contract


def list_contacts(session: Session, *, limit: int = 100, offset: int = 0) -> list[Contact]:
    query = select(Contact).order_by(Contact.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def count_contacts(session: Session) -> int:
    return session.scalar(select(func.count(Contact.id))) or 0


def get_contact(session: Session, contact_id: int) -> Contact:
    return require(session, Contact, contact_id, what="contact")
