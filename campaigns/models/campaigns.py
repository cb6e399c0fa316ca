"""Campaigns (broadcasts) and automations (lifecycle rules per contract) with their states."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaigns.db import Base, created_at, intpk
from campaigns.models.letters import LetterVersion
from campaigns.models.segments import Segment


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


CAMPAIGN_TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.CANCELLED}),
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.RUNNING, CampaignStatus.DRAFT, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.RUNNING: frozenset(
        {CampaignStatus.PAUSED, CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.RUNNING, CampaignStatus.CANCELLED}),
    CampaignStatus.COMPLETED: frozenset({CampaignStatus.RUNNING}),  # resend to failed
    CampaignStatus.CANCELLED: frozenset(),
}


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("holdout_percent >= 0 AND holdout_percent <= 50", name="holdout_range"),
        Index("ix_campaigns_status_send_at", "status", "send_at"),
    )

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200))
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"))
    letter_version_id: Mapped[int] = mapped_column(ForeignKey("letter_versions.id"))
    status: Mapped[CampaignStatus] = mapped_column(String(20), default=CampaignStatus.DRAFT)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    send_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    holdout_percent: Mapped[int] = mapped_column(default=0)
    priority: Mapped[int] = mapped_column(default=0)
    rate_per_minute: Mapped[int | None]
    # The campaign's own marketing caps (letters in 7 days; hours after another letter);
    # None: the settings' (CAP_MARKETING_PER_WEEK, CAP_MARKETING_GAP_HOURS).
    cap_per_week: Mapped[int | None]
    cap_gap_hours: Mapped[int | None]
    # A service-points gift to each recipient, applied once per letter sent (held-out
    # contacts get none): `grant_points`, or `grant_loyal_points` for customers of more
    # than `grant_loyal_years` years; the points expire `grant_expires_days` after.
    grant_points: Mapped[int | None]
    grant_loyal_points: Mapped[int | None]
    grant_loyal_years: Mapped[int | None]
    grant_expires_days: Mapped[int | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    segment: Mapped[Segment] = relationship()
    letter_version: Mapped[LetterVersion] = relationship()

    def grant_for(self, customer_since: date | None, today: date) -> int:
        """The service points this campaign's letter gives a customer (since that date)."""
        if not self.grant_points:
            return 0
        loyal, years = self.grant_loyal_points, self.grant_loyal_years
        if loyal is not None and years and customer_since is not None:
            anniversary = (today.month, today.day) < (customer_since.month, customer_since.day)
            if today.year - customer_since.year - anniversary >= years:
                return loyal
        return self.grant_points


class AutomationTrigger(StrEnum):
    ON_START = "on_start"
    BEFORE_END = "before_end"
    ON_END = "on_end"
    AFTER_END = "after_end"
    # N days after a policy letter went out and was not acknowledged: a reminder to do so.
    UNACKNOWLEDGED = "unacknowledged"
    # The support side, per occasion (a ledger row's `occasion`): N days after the points
    # balance dropped to `threshold` or below (once per crossing), N days before a grant's
    # points expire, N days after an incident was closed (the satisfaction survey).
    POINTS_LOW = "points_low"
    POINTS_EXPIRING = "points_expiring"
    INCIDENT_CLOSED = "incident_closed"


class Automation(Base):
    """A lifecycle rule per contract; fires once per contract term and re-arms on renewal."""

    __tablename__ = "automations"
    __table_args__ = (
        CheckConstraint("holdout_percent >= 0 AND holdout_percent <= 50",
                        name="holdout_range"),
        CheckConstraint("window_start_hour >= 0 AND window_start_hour < window_end_hour "
                        "AND window_end_hour <= 24", name="window_hours"),
    )  # fmt: skip

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200), unique=True)
    trigger: Mapped[AutomationTrigger] = mapped_column(String(20))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    # The policy letter whose acknowledgment is awaited (trigger "unacknowledged").
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id"))
    # The balance at or below which "points_low" fires.
    threshold: Mapped[int | None]
    enabled: Mapped[bool] = mapped_column(default=False)
    holdout_percent: Mapped[int] = mapped_column(default=0, server_default="0")
    # A step is sent on its day or up to this many days later (a send window, a frequency
    # cap, a contract that came in late), never once the next step is due.
    max_late_days: Mapped[int] = mapped_column(default=3, server_default="3")
    # The send window, in each contact's own time zone: ISO weekdays (1 = Monday) and hours.
    window_days: Mapped[str] = mapped_column(String(7), default="1234567",
                                             server_default="1234567")  # fmt: skip
    window_start_hour: Mapped[int] = mapped_column(default=0, server_default="0")
    window_end_hour: Mapped[int] = mapped_column(default=24, server_default="24")
    created_at: Mapped[created_at]

    segment: Mapped[Segment | None] = relationship()
    steps: Mapped[list[AutomationStep]] = relationship(
        order_by="AutomationStep.offset_days", cascade="all, delete-orphan",
        back_populates="automation",
    )  # fmt: skip


class AutomationStep(Base):
    """One letter of an automation, `offset_days` from the trigger date (e.g. 60/30/7)."""

    __tablename__ = "automation_steps"
    __table_args__ = (UniqueConstraint("automation_id", "offset_days"),)

    id: Mapped[intpk]
    automation_id: Mapped[int] = mapped_column(ForeignKey("automations.id", ondelete="CASCADE"))
    offset_days: Mapped[int]
    letter_version_id: Mapped[int] = mapped_column(ForeignKey("letter_versions.id"))

    automation: Mapped[Automation] = relationship(back_populates="steps")
    letter_version: Mapped[LetterVersion] = relationship()
