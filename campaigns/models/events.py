"""What customers did with their letters (events) and the renewals they made (conversions)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, intpk, json_dict, utcnow


class EventKind(StrEnum):
    OPEN = "open"
    CLICK = "click"
    RENEWAL_CLICK = "renewal_click"
    ACKNOWLEDGMENT = "acknowledgment"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    # A click on a survey letter's rating link (detail: score); machines' are discarded.
    RATING = "rating"


FEEDBACK_KINDS = "kind IN ('bounce', 'complaint')"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_delivery_id_kind", "delivery_id", "kind"),
        # A letter bounces, or is complained about, once: two receivers reading the same
        # report at the same moment cannot both record it (tracking.bounces.record).
        Index("uq_events_delivery_feedback", "delivery_id", "kind", unique=True,
              sqlite_where=text(FEEDBACK_KINDS), postgresql_where=text(FEEDBACK_KINDS)),
    )  # fmt: skip

    id: Mapped[intpk]
    kind: Mapped[EventKind] = mapped_column(String(20))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_agent: Mapped[str] = mapped_column(Text, default="")
    # True when a proxy or scanner (not a person) most likely caused the event.
    is_machine: Mapped[bool] = mapped_column(default=False)
    detail: Mapped[json_dict]


class Acknowledgment(Base):
    """Evidence that a customer read and accepted a policy letter: which version and locale
    variant they received, a hash of the text they were shown, when, and from what client."""

    __tablename__ = "acknowledgments"

    id: Mapped[intpk]
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), unique=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    letter_version_id: Mapped[int] = mapped_column(ForeignKey("letter_versions.id"))
    locale: Mapped[str] = mapped_column(String(20), default="")
    text_sha256: Mapped[str] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime] = mapped_column(default=utcnow)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")


class Conversion(Base):
    """A renewal of one contract term, attributed to the delivery that earned it.

    One per contract term: the CRM's conversion (API) and the end date an import moved
    forward are the same renewal, recorded once (campaigns.tracking.conversions).
    """

    __tablename__ = "conversions"
    __table_args__ = (
        Index("uq_conversions_contract_term", "contract_id", "term", unique=True),
    )  # fmt: skip

    id: Mapped[intpk]
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), index=True)
    # The term renewed (the one whose end was moved forward); None only for old rows.
    term: Mapped[int | None]
    # Last touch: the last renewal-related letter delivered for the contract within the
    # attribution window; None is an organic renewal. `first_delivery_id` is the first touch,
    # `touches` how many letters were in the window (their ids in detail["touches"]).
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"), index=True)
    first_delivery_id: Mapped[int | None]
    touches: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # api (the CRM told us), import / admin (an end date moved forward there)
    source: Mapped[str] = mapped_column(String(20), default="api")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    recorded_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.current_timestamp()
    )
