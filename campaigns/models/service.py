"""The support side: a contact's service-points ledger and the help desk's incidents."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, JSONType, UTCDateTime, created_at, intpk, utcnow


class PointsKind(StrEnum):
    GRANT = "grant"  # a gift: from a campaign, or an admin
    USE = "use"  # spent on an incident
    PURCHASE = "purchase"  # bought (a package: buy 5, get 6)
    REFUND = "refund"  # given back: the problem was ours
    EXPIRE = "expire"  # a grant's unused points, past its expiry date
    ADJUST = "adjust"  # a correction, up or down, with a reason


# Kinds whose amount adds to the balance, and kinds whose amount takes from it.
CREDITS = frozenset({PointsKind.GRANT, PointsKind.PURCHASE, PointsKind.REFUND})
DEBITS = frozenset({PointsKind.USE, PointsKind.EXPIRE})

# A letter's grant is applied once: one grant entry per ledger row.
_LETTER_GRANT = "delivery_id IS NOT NULL"


class PointsEntry(Base):
    """One line of a contact's points ledger; the balance is the sum of `amount`."""

    __tablename__ = "points_entries"
    __table_args__ = (
        Index("ix_points_entries_contact_id_id", "contact_id", "id"),
        Index("uq_points_entries_delivery", "delivery_id", unique=True,
              sqlite_where=text(_LETTER_GRANT), postgresql_where=text(_LETTER_GRANT)),
    )  # fmt: skip

    id: Mapped[intpk]
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id", ondelete="SET NULL"))
    kind: Mapped[PointsKind] = mapped_column(String(20))
    amount: Mapped[int]  # signed: credits positive, debits negative, adjustments either
    # The balance right after this entry (written under the contact's lock, so exact).
    balance_after: Mapped[int]
    reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20))  # campaign, api, admin, system
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # A credit's points not used by then expire. Indexed, with `occurred_at`, for the
    # support-side automations, which look for entries by date each tick.
    expires_on: Mapped[date | None] = mapped_column(index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class IncidentChannel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"


class Incident(Base):
    """A support case the help desk logged for a contact (and maybe one of its contracts)."""

    __tablename__ = "incidents"

    id: Mapped[intpk]
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id", ondelete="SET NULL"))
    channel: Mapped[IncidentChannel] = mapped_column(String(10))
    chargeable: Mapped[bool] = mapped_column(default=False)
    points_used: Mapped[int] = mapped_column(default=0)
    summary: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(20), default="api")
    created_at: Mapped[created_at]


class SurveyScale(StrEnum):
    """How a survey letter asks: five stars (CSAT: 4–5 satisfied) or 0–10 (NPS)."""

    CSAT = "csat"
    NPS = "nps"


# The scores of each scale, lowest first (a letter's rating links; the rating page).
SURVEY_SCORES = {SurveyScale.CSAT: range(1, 6), SurveyScale.NPS: range(0, 11)}


class SurveyResponse(Base):
    """A customer's rating of the support they had: one per survey letter (ledger row);
    a later click on another rating changes it within the change window."""

    __tablename__ = "survey_responses"

    id: Mapped[intpk]
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), unique=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    scale: Mapped[SurveyScale] = mapped_column(String(10))
    score: Mapped[int]
    comment: Mapped[str] = mapped_column(Text, default="")
    responded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    # When it last became a detractor (CSAT 1–2, NPS 0–6); kept when it changes away, so
    # the `survey.detractor` webhook, collected from it, goes once per response.
    detractor_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # The rating click (events.id) whose GET set the score; None: set on the page (a POST).
    # A scanner's click judged a person's at first is undone when its next click shows it.
    click_event_id: Mapped[int | None]


class ServiceSettings(Base):
    """The support terms the stock letters quote and the help desk charges: one row."""

    __tablename__ = "service_settings"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    # What a chargeable (phone) incident costs when no points are left.
    incident_fee: Mapped[Decimal | None]
    currency: Mapped[str] = mapped_column(String(3), default="EUR", server_default="EUR")
    # Points packages offered: [{"name": "Buy 5, get 6", "points": 6, "price": "250.00"}].
    packages: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list, server_default=text("'[]'")
    )
    # The terms as the policy letters quote them ({{ service.policy_text }}), and in other
    # languages: {"de": "…"} (a contact gets their locale's, else their language's, else this).
    policy_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    policy_translations: Mapped[dict[str, str]] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
