"""Pre-aggregated results: the ledger, its events and conversions summed per report cell.

Rebuilt as a whole by campaigns.tracking.results.refresh (a set-based pass over the ledger),
so a report over millions of ledger rows reads a few thousand rows; `ReportRefresh` says how
fresh the figures are.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, intpk

# The dimensions every report cell carries: what sent the letter (a campaign or an
# automation step), for which segment, which letter version, and on which day (UTC).
DIMENSIONS = ("campaign_id", "automation_step_id", "segment_id", "letter_version_id", "day")

# The counts of a cell, in the order results.refresh computes them.
COUNTS = (
    "audience", "sent", "failed", "suppressed", "held_out", "deferred",
    "opened", "opened_machine", "clicked", "clicked_machine", "renewal_clicks",
    "acknowledged", "unsubscribed", "bounced", "complained", "renewed_sent", "renewed_held_out",
)  # fmt: skip


class ReportCell(Base):
    """Ledger rows decided on one day for one campaign or step, segment and version."""

    __tablename__ = "report_cells"
    __table_args__ = (Index("ix_report_cells_day", "day"),)

    id: Mapped[intpk]
    campaign_id: Mapped[int | None] = mapped_column(index=True)
    automation_step_id: Mapped[int | None] = mapped_column(index=True)
    segment_id: Mapped[int | None]
    letter_version_id: Mapped[int]
    day: Mapped[date]
    audience: Mapped[int] = mapped_column(default=0)
    sent: Mapped[int] = mapped_column(default=0)  # delivered: sent, or ambiguous
    failed: Mapped[int] = mapped_column(default=0)
    suppressed: Mapped[int] = mapped_column(default=0)
    held_out: Mapped[int] = mapped_column(default=0)
    deferred: Mapped[int] = mapped_column(default=0)
    opened: Mapped[int] = mapped_column(default=0)  # letters a person opened
    opened_machine: Mapped[int] = mapped_column(default=0)
    clicked: Mapped[int] = mapped_column(default=0)  # letters a person clicked in
    clicked_machine: Mapped[int] = mapped_column(default=0)
    renewal_clicks: Mapped[int] = mapped_column(
        default=0
    )  # letters whose renewal link a person used
    acknowledged: Mapped[int] = mapped_column(default=0)
    unsubscribed: Mapped[int] = mapped_column(default=0)
    bounced: Mapped[int] = mapped_column(default=0)
    complained: Mapped[int] = mapped_column(default=0)
    # Delivered letters (held-out rows) whose contract renewed within the attribution window
    # after the letter was decided, credited to them or not: the figure the holdout
    # comparison sets treated against held out.
    renewed_sent: Mapped[int] = mapped_column(default=0)
    renewed_held_out: Mapped[int] = mapped_column(default=0)


class ReportRevenue(Base):
    """Renewals of one cell in one currency.

    `renewed`/`revenue`: conversions credited to the cell's letters (last touch).
    `outcome_revenue`: the revenue of the renewals behind ReportCell.renewed_sent (or
    renewed_held_out, on the row with `held_out`), credited or not.
    """

    __tablename__ = "report_revenue"

    id: Mapped[intpk]
    campaign_id: Mapped[int | None] = mapped_column(index=True)
    automation_step_id: Mapped[int | None] = mapped_column(index=True)
    segment_id: Mapped[int | None]
    letter_version_id: Mapped[int]
    day: Mapped[date]
    held_out: Mapped[bool] = mapped_column(default=False)
    currency: Mapped[str] = mapped_column(String(3))
    renewed: Mapped[int] = mapped_column(default=0)
    revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=Decimal(0))
    outcome_revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=Decimal(0))


class ReportActivity(Base):
    """What happened on one day: letters sent, first human opens and clicks, renewals."""

    __tablename__ = "report_activity"
    __table_args__ = (Index("ix_report_activity_day", "day"),)

    id: Mapped[intpk]
    campaign_id: Mapped[int | None] = mapped_column(index=True)
    automation_step_id: Mapped[int | None] = mapped_column(index=True)
    segment_id: Mapped[int | None]
    day: Mapped[date]
    sent: Mapped[int] = mapped_column(default=0)
    opened: Mapped[int] = mapped_column(default=0)
    clicked: Mapped[int] = mapped_column(default=0)
    renewed: Mapped[int] = mapped_column(default=0)


class ReportRefresh(Base):
    """When the cells were last rebuilt, and how long it took (one row)."""

    __tablename__ = "report_refreshes"

    id: Mapped[intpk]
    refreshed_at: Mapped[datetime]
    seconds: Mapped[float]
    ledger_rows: Mapped[int] = mapped_column(default=0)
