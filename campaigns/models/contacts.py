"""Contacts (a customer's person) and the contracts they hold."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaigns.db import Base, created_at, intpk, json_dict, str255, utcnow
from campaigns.errors import ValidationError

_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def normalise_email(raw: str) -> str:
    """Return the address in canonical form, or raise ValidationError if it is not one.

    NFKC-normalised (full-width and composed characters fold to one spelling), trimmed of
    every kind of Unicode space, lower-cased: the one canonical form of an address, for
    contacts, suppressions and admin users alike.
    """
    email = unicodedata.normalize("NFKC", raw or "").strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise ValidationError(f"{raw!r} is not a valid e-mail address", field="email")
    return email


class ContactStatus(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class ContractStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    locale: Mapped[str] = mapped_column(String(20), default="en")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[ContactStatus] = mapped_column(String(20), default=ContactStatus.ACTIVE)
    attributes: Mapped[json_dict]
    customer_since: Mapped[date | None]
    lifetime_spend: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # GDPR erasure keeps the row (ledger counts stay right) with its personal data removed.
    erased_at: Mapped[datetime | None]

    contracts: Mapped[list[Contract]] = relationship(back_populates="contact")

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.email


class Contract(Base):
    __tablename__ = "contracts"
    __table_args__ = (Index("ix_contracts_ends_on_status", "ends_on", "status"),)

    id: Mapped[intpk]
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    product: Mapped[str255]
    plan: Mapped[str] = mapped_column(String(100), default="")
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    term: Mapped[int] = mapped_column(default=1)
    status: Mapped[ContractStatus] = mapped_column(String(20), default=ContractStatus.ACTIVE)
    price: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    renewal_url: Mapped[str | None] = mapped_column(Text)
    service_points: Mapped[int] = mapped_column(default=0)
    attributes: Mapped[json_dict]
    created_at: Mapped[created_at]

    contact: Mapped[Contact] = relationship(back_populates="contracts")


class ContactStatusChange(Base):
    """One change of a contact's status: when, to what, why, and who or what did it."""

    __tablename__ = "contact_status_changes"
    __table_args__ = (Index("ix_contact_status_changes_contact", "contact_id", "occurred_at"),)

    id: Mapped[intpk]
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    status: Mapped[ContactStatus] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    # admin, import, api, bounce, complaint, unsubscribe
    source: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    """An address that must never be mailed, whether or not a contact holds it."""

    __tablename__ = "suppressions"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]


class ContractTerm(Base):
    """A past period of a contract, kept when its end date moved forward (a renewal)."""

    __tablename__ = "contract_terms"
    __table_args__ = (UniqueConstraint("contract_id", "term"),)

    id: Mapped[intpk]
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    term: Mapped[int]
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    price: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    # import, api, admin: what moved the end date forward
    source: Mapped[str] = mapped_column(String(20))
    recorded_at: Mapped[created_at]


class KindOptOut(Base):
    """A contact who turned off one kind of letter (in the preference centre, or with the
    unsubscribe link of a service letter). Legal letters cannot be turned off."""

    __tablename__ = "kind_opt_outs"
    __table_args__ = (UniqueConstraint("contact_id", "kind"),)

    id: Mapped[intpk]
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # a LetterKind
    # preferences, unsubscribe, admin, api
    source: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[created_at]
