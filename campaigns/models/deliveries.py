"""The delivery ledger: one row per (campaign or automation step, contact, contract term)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, JSONType, created_at, intpk


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    HELD_OUT = "held_out"
    # The SMTP server may or may not have taken the letter: the connection died mid-send.
    AMBIGUOUS = "ambiguous"
    # An automation's letter waiting for a free slot under the frequency caps (the reason
    # says which); the scheduler queues it when one opens, or suppresses it once too late.
    DEFERRED = "deferred"


DELIVERY_TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.QUEUED: frozenset(
        {DeliveryState.SENDING, DeliveryState.SUPPRESSED, DeliveryState.FAILED}
    ),
    DeliveryState.SENDING: frozenset(
        {
            DeliveryState.SENT,
            DeliveryState.FAILED,
            DeliveryState.SUPPRESSED,
            DeliveryState.QUEUED,  # released for retry (4xx, rate limit, shutdown)
            DeliveryState.AMBIGUOUS,
            DeliveryState.DEFERRED,  # a frequency cap stops it as it is sent (automations)
        }
    ),
    DeliveryState.SENT: frozenset(),
    DeliveryState.FAILED: frozenset({DeliveryState.QUEUED}),  # "resend to failed"
    DeliveryState.SUPPRESSED: frozenset(),
    DeliveryState.HELD_OUT: frozenset(),
    DeliveryState.AMBIGUOUS: frozenset(),
    DeliveryState.DEFERRED: frozenset({DeliveryState.QUEUED, DeliveryState.SUPPRESSED}),
}

OPEN_STATES = frozenset({DeliveryState.QUEUED, DeliveryState.SENDING})
# Letters that went out (an ambiguous one may have): they can be opened, clicked, bounced.
DELIVERED_STATES = (DeliveryState.SENT, DeliveryState.AMBIGUOUS)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        # One letter per contact per campaign; one per contract term per automation step.
        UniqueConstraint("campaign_id", "contact_id"),
        UniqueConstraint("automation_step_id", "contract_id", "term"),
        # A reminder to acknowledge goes once per step per letter it reminds of.
        Index("uq_deliveries_step_reminds", "automation_step_id", "reminds_id", unique=True),
        # A support-side step goes once per occasion ("points:ENTRY", "incident:ID"...).
        Index("uq_deliveries_step_occasion", "automation_step_id", "occasion", unique=True),
        Index("ix_deliveries_campaign_id_state", "campaign_id", "state"),
        Index("ix_deliveries_state_claimed_at", "state", "claimed_at"),
        Index("ix_deliveries_state_due_at", "state", "due_at"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    automation_step_id: Mapped[int | None] = mapped_column(ForeignKey("automation_steps.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"), index=True)
    term: Mapped[int | None]
    # A campaign to a contracts segment: every matching contract of the contact ("12,15"),
    # the letter's `contracts`; `contract_id` is the soonest-ending of them.
    contract_ids: Mapped[str | None] = mapped_column(Text)
    # A reminder to acknowledge: the ledger row of the policy letter it reminds of.
    reminds_id: Mapped[int | None]
    # A support-side automation letter: what it is about ("points:ENTRY" for the points
    # entry that crossed the threshold, "expiry:ENTRY" for the expiring grant,
    # "incident:ID" for the closed incident).
    occasion: Mapped[str | None] = mapped_column(String(40))
    # The segment the letter was sent for: reports stay stable when segments change later.
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"), index=True)
    letter_version_id: Mapped[int] = mapped_column(ForeignKey("letter_versions.id"))
    # The locale of the version's content that went out: a variant's, or the letter's default.
    locale: Mapped[str | None] = mapped_column(String(20))
    # What the letter was rendered from and computed, kept as sent: the recipient's values
    # ({"recipient": letters.context.snapshot(...)}), a hash of its HTML ("html_sha256") and
    # the renewal discount offered ({"discount": {"percent", "amount", "price", "code"}}).
    detail: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )
    email: Mapped[str] = mapped_column(String(320))
    state: Mapped[DeliveryState] = mapped_column(String(20), default=DeliveryState.QUEUED)
    reason: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(default=0)
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[created_at]
    claimed_at: Mapped[datetime | None]
    # The worker process that claimed the row (host:pid), so a reaper can tell whose it is.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    # Set in the same commit that hands the letter to SMTP: if the worker dies with this
    # set, the letter may have gone, so the row becomes `ambiguous`, never sent again.
    in_flight_at: Mapped[datetime | None]
    # When a queued row is next due to be worked on (its launch, or after a retry's
    # back-off); the reconciler re-enqueues queued rows that are overdue.
    due_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]


class WorkerHeartbeat(Base):
    """A worker process saying it is alive; rows it claimed are its own while it beats."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(100), primary_key=True)
    seen_at: Mapped[datetime]
