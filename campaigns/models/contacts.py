"""Contacts (a customer's person) and the contracts they hold."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaigns.db import Base, created_at, intpk, json_dict, str255, utcnow
from campaigns.errors import ValidationError

_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def normalise_email(raw: str) -> str:
    """Return the address trimmed and lower-cased, or raise ValidationError if it is not one.

    The one canonical form of an address, for contacts and admin users alike.
    """
    email = (raw or "").strip().lower()
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
