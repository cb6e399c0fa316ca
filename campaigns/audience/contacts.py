"""Contacts and their contracts: creation, edits, status with history, look-ups, search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from campaigns.accounts import audit
from campaigns.audience.records import (
    CONTACT_FIELDS,
    FieldError,
    RecordError,
    check,
    contract_record,
)
from campaigns.db import require
from campaigns.errors import ValidationError
from campaigns.models import (
    Contact,
    ContactStatus,
    ContactStatusChange,
    Contract,
    ContractStatus,
    ContractTerm,
    Event,
    KindOptOut,
)
from campaigns.models.contacts import normalise_email

# What the contact form may change; the status has its own recorded path (set_status).
EDITABLE_CONTACT_FIELDS = ("email", "external_id", "first_name", "last_name", "locale",
                           "time_zone", "customer_since", "lifetime_spend")  # fmt: skip
CONTRACT_FORM_FIELDS = ("product", "plan", "starts_on", "ends_on", "price", "currency",
                        "renewal_url", "external_id", "service_points")  # fmt: skip


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


def update_contact(
    session: Session, contact_id: int, raw: dict[str, Any], *, user_id: int | None
) -> Contact:
    """Change a contact's fields from raw values (a form); raise RecordError naming each bad one.

    The status is not changed here: `set_status` records who changed it and why.
    """
    contact = get_contact(session, contact_id)
    fields = {k: v for k, v in raw.items() if k in EDITABLE_CONTACT_FIELDS}
    record, errors = check(fields, CONTACT_FIELDS, prefix="contact")
    for name in ("email", "external_id"):
        value = record.get(name)
        column = getattr(Contact, name)
        if value and session.scalar(
            select(Contact.id).where(column == value, Contact.id != contact_id)
        ):
            errors.append(FieldError(f"contact.{name}", str(value), "belongs to another contact"))
    if errors:
        raise RecordError(errors)
    changed = {k: v for k, v in record.items() if getattr(contact, k) != v}
    for name, value in changed.items():
        setattr(contact, name, value)
    if changed:
        audit.record(session, "contact.updated", user_id=user_id, target_type="contact",
                     target_id=contact_id, fields=", ".join(sorted(changed)))  # fmt: skip
    session.flush()
    return contact


def add_contract_from(
    session: Session, contact_id: int, raw: dict[str, Any], *, user_id: int | None
) -> Contract:
    """Add a contract from raw values (a form); raise RecordError naming each bad field."""
    get_contact(session, contact_id)
    fields = {k: v for k, v in raw.items() if k in CONTRACT_FORM_FIELDS and v not in (None, "")}
    record, errors = contract_record(fields)
    errors += [
        FieldError(f"contract.{name}", "", "is required")
        for name in ("product", "starts_on", "ends_on") if name not in record
    ]  # fmt: skip
    if errors:
        raise RecordError(errors)
    record.pop("status", None)
    record.pop("attributes", None)
    contract = add_contract(session, contact_id, **record)
    audit.record(session, "contract.added", user_id=user_id, target_type="contract",
                 target_id=contract.id, product=contract.product)  # fmt: skip
    return contract


def set_status(
    session: Session,
    contact_id: int,
    status: ContactStatus,
    *,
    reason: str,
    source: str,
    user_id: int | None = None,
) -> bool:
    """Move a contact to a status, recording when, why and by whom; say whether it moved."""
    contact = get_contact(session, contact_id)
    if contact.status == status:
        return False
    contact.status = ContactStatus(status)
    session.add(ContactStatusChange(contact_id=contact_id, status=status, reason=reason,
                                    source=source, user_id=user_id))  # fmt: skip
    session.flush()
    return True


def status_history(session: Session, contact_id: int) -> list[ContactStatusChange]:
    """Every status change of a contact, newest first."""
    query = (
        select(ContactStatusChange)
        .where(ContactStatusChange.contact_id == contact_id)
        .order_by(ContactStatusChange.occurred_at.desc(), ContactStatusChange.id.desc())
    )
    return list(session.scalars(query))


def end_contract(session: Session, contract_id: int, *, on: date, user_id: int | None) -> Contract:
    """End a contract early (cancelled) on a day no later than its current end."""
    contract = require(session, Contract, contract_id, what="contract")
    if on < contract.starts_on:
        raise ValidationError(
            f"a contract cannot end before it starts ({contract.starts_on})", field="ends_on"
        )
    contract.ends_on = min(on, contract.ends_on)
    contract.status = ContractStatus.CANCELLED
    audit.record(session, "contract.ended", user_id=user_id, target_type="contract",
                 target_id=contract_id, on=contract.ends_on)  # fmt: skip
    session.flush()
    return contract


def contract_terms(session: Session, contact_id: int) -> list[ContractTerm]:
    """The past terms of a contact's contracts (each a renewal), newest first."""
    query = (
        select(ContractTerm)
        .join(Contract, Contract.id == ContractTerm.contract_id)
        .where(Contract.contact_id == contact_id)
        .order_by(ContractTerm.recorded_at.desc(), ContractTerm.id.desc())
    )
    return list(session.scalars(query))


@dataclass(frozen=True, slots=True)
class ContactPage:
    """A page of the contacts list and the cursor of the next one (None at the end)."""

    contacts: list[Contact]
    next_cursor: int | None


def search_contacts(
    session: Session,
    *,
    query: str = "",
    status: ContactStatus | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> ContactPage:
    """Contacts newest first, matching a search on address, name or external id.

    Keyset pagination on the primary key (`before_id`) keeps every page as fast as the
    first at a million contacts; OFFSET would read and drop all the rows before it.
    """
    stmt = select(Contact).where(Contact.erased_at.is_(None))
    text = query.strip()
    if text:
        lowered = text.lower()
        stmt = stmt.where(or_(
            Contact.email.startswith(lowered, autoescape=True),
            Contact.external_id == text,
            func.lower(Contact.first_name).startswith(lowered, autoescape=True),
            func.lower(Contact.last_name).startswith(lowered, autoescape=True),
        ))  # fmt: skip
    if status is not None:
        stmt = stmt.where(Contact.status == status)
    if before_id is not None:
        stmt = stmt.where(Contact.id < before_id)
    rows = list(session.scalars(stmt.order_by(Contact.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return ContactPage(rows[:limit], rows[limit - 1].id if more else None)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened to a contact, for the contact page."""

    at: datetime
    kind: str  # status, renewal, open, click, … (an event kind)
    text: str


def turned_off_kinds(session: Session, contact_id: int) -> list[str]:
    """The kinds of letter the contact turned off (preference centre, a letter's link)."""
    query = select(KindOptOut.kind).where(KindOptOut.contact_id == contact_id)
    return sorted(session.scalars(query))


def timeline(session: Session, contact_id: int, *, limit: int = 100) -> list[TimelineEntry]:
    """What happened to a contact, newest first: status changes, renewals, letter events."""
    entries = [
        TimelineEntry(c.occurred_at, "status",
                      f"{c.status} ({c.source}){': ' + c.reason if c.reason else ''}")
        for c in status_history(session, contact_id)[:limit]
    ]  # fmt: skip
    entries += [
        TimelineEntry(t.recorded_at, "renewal",
                      f"renewed ({t.source}); term {t.term} ran {t.starts_on} to {t.ends_on}")
        for t in contract_terms(session, contact_id)[:limit]
    ]  # fmt: skip
    events = session.execute(
        select(Event.occurred_at, Event.kind, Event.is_machine)
        .where(Event.contact_id == contact_id)
        .order_by(Event.occurred_at.desc())
        .limit(limit)
    )
    entries += [
        TimelineEntry(at, kind, f"{kind}{' (by a machine, not counted)' if machine else ''}")
        for at, kind, machine in events
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]
