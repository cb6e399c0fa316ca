"""Reading contacts for the API: one contact with its contracts and terms, and keyset pages.

Erased contacts (GDPR) are never read here: they are gone as far as any caller can tell.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from campaigns.errors import NotFound
from campaigns.models import Contact, ContactStatus, Contract, ContractTerm

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """What a list of contacts is narrowed to; every field left None is not a condition."""

    status: ContactStatus | None = None
    email_contains: str | None = None
    updated_since: datetime | None = None
    external_id: str | None = None


@dataclass(slots=True)
class ContactView:
    """A live contact, its contracts, and the past terms of each contract by contract id."""

    contact: Contact
    terms: dict[int, list[ContractTerm]] = field(default_factory=dict)


def live_contacts() -> Select[Contact]:
    """Contacts that were not erased."""
    return select(Contact).where(Contact.erased_at.is_(None))


def get_contact(session: Session, contact_id: int) -> ContactView:
    """Return a live contact with its contracts and their past terms, or raise NotFound."""
    contact = session.scalar(
        live_contacts().where(Contact.id == contact_id).options(selectinload(Contact.contracts))
    )
    if contact is None:
        raise NotFound(f"no contact #{contact_id}")
    return ContactView(contact, terms_of(session, [c.id for c in contact.contracts]))


def get_contract(session: Session, contact_id: int, contract_id: int) -> Contract:
    """Return a contract of a live contact, or raise NotFound."""
    contract = session.scalar(
        select(Contract)
        .join(Contact, Contact.id == Contract.contact_id)
        .where(Contract.id == contract_id, Contract.contact_id == contact_id)
        .where(Contact.erased_at.is_(None))
    )
    if contract is None:
        raise NotFound(f"no contract #{contract_id} of contact #{contact_id}")
    return contract


def terms_of(session: Session, contract_ids: list[int]) -> dict[int, list[ContractTerm]]:
    """Past terms of the given contracts, oldest first, by contract id."""
    found: dict[int, list[ContractTerm]] = defaultdict(list)
    if contract_ids:
        query = (
            select(ContractTerm)
            .where(ContractTerm.contract_id.in_(contract_ids))
            .order_by(ContractTerm.contract_id, ContractTerm.term)
        )
        for term in session.scalars(query):
            found[term.contract_id].append(term)
    return dict(found)


def page_of_contacts(
    session: Session, filters: ContactFilter, *, after_id: int | None, limit: int
) -> tuple[list[Contact], int | None]:
    """One page of live contacts in id order after `after_id`; and the id to go on after.

    Keyset, not offset: a page starts after the last id seen, so rows inserted while a
    client pages (new ids are higher) are neither skipped nor shown twice, and page 1,000
    costs what page 1 costs.
    """
    limit = max(1, min(limit, MAX_PAGE))
    query = live_contacts()
    if filters.status is not None:
        query = query.where(Contact.status == filters.status)
    if filters.email_contains:
        needle = filters.email_contains.strip().lower()
        query = query.where(Contact.email.contains(needle, autoescape=True))
    if filters.updated_since is not None:
        query = query.where(Contact.updated_at >= filters.updated_since)
    if filters.external_id is not None:
        query = query.where(Contact.external_id == filters.external_id)
    if after_id is not None:
        query = query.where(Contact.id > after_id)
    rows = list(session.scalars(query.order_by(Contact.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
