"""Webhooks out: subscribers (a URL and a secret) and the signed letters queued for them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, JSONType, created_at, intpk


class WebhookType(StrEnum):
    """What a webhook tells its subscriber (the `type` of its JSON)."""

    RENEWAL_CLICKED = "renewal.clicked"
    CONVERSION_RECORDED = "conversion.recorded"
    LETTER_ACKNOWLEDGED = "letter.acknowledged"
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed"
    LETTER_BOUNCED = "letter.bounced"
    LETTER_COMPLAINED = "letter.complained"
    SURVEY_DETRACTOR = "survey.detractor"
    PING = "ping"  # a test an admin sent; not subscribable


SUBSCRIBABLE = [t for t in WebhookType if t != WebhookType.PING]


class WebhookState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# A pending letter is delivered, or failed once its attempts are spent; an admin may send a
# failed or a delivered one again (subscribers recognise a repeat by its `webhook-id`).
WEBHOOK_TRANSITIONS = {
    WebhookState.PENDING: {WebhookState.DELIVERED, WebhookState.FAILED},
    WebhookState.FAILED: {WebhookState.PENDING},
    WebhookState.DELIVERED: {WebhookState.PENDING},
}


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[intpk]
    url: Mapped[str] = mapped_column(Text)
    # Kept in clear: every letter is signed with it (HMAC). The admin shows it masked.
    secret: Mapped[str] = mapped_column(String(200))
    # The `type`s subscribed to (WebhookType values).
    kinds: Mapped[list[str]] = mapped_column(JSONType)
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    # Nothing that happened before this is sent: its creation, or when it was last enabled.
    enabled_at: Mapped[datetime]
    # Events up to this time have been collected into letters (less a lag: see collect).
    collected_until: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One letter to one subscriber about one event; never two for the same event."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_key"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[intpk]
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    # What it is about: "event:123", "conversion:45", "ping:…"; also its `webhook-id`.
    event_key: Mapped[str] = mapped_column(String(64))
    type: Mapped[WebhookType] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    state: Mapped[WebhookState] = mapped_column(String(20), default=WebhookState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # When it may be tried (next); while a worker holds it, when its hold runs out.
    next_attempt_at: Mapped[datetime]
    last_status: Mapped[int | None]  # the subscriber's HTTP status, None if none came
    last_error: Mapped[str] = mapped_column(String(500), default="")
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[created_at]
