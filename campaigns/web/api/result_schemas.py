"""Request and response shapes of the API's conversions and reports (pydantic)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from campaigns.web.api.schemas import Amount, Currency, Money

MAX_ID = 2**31 - 1


class ConversionIn(BaseModel):
    """A renewal of a contract, as the CRM or the shop saw it."""

    model_config = ConfigDict(extra="forbid")

    contract_id: int = Field(ge=1, le=MAX_ID)
    amount: Amount
    currency: Currency
    occurred_at: datetime | None = Field(
        None, description="when the customer renewed (ISO 8601; no zone: UTC); default now"
    )
    detail: dict[str, str | int | float | bool | None] | None = Field(
        None, max_length=50, description="your own fields, kept with the conversion"
    )


class CreditOut(BaseModel):
    delivery_id: int
    campaign_id: int | None
    automation_step_id: int | None
    segment_id: int | None
    letter_version_id: int


class ConversionOut(BaseModel):
    id: int
    contract_id: int
    term: int | None = Field(description="the contract term renewed")
    amount: Money
    currency: str
    occurred_at: datetime
    recorded_at: datetime
    source: str = Field(description="api, or import/admin when detected from a moved end date")
    idempotency_key: str
    organic: bool = Field(description="true when no letter earned it (no touch in the window)")
    credited_to: CreditOut | None = Field(description="the last touch")
    first_touch_delivery_id: int | None
    touches: list[int] = Field(description="ledger ids of the letters in the window, oldest first")
    took_over_detected: bool = Field(
        False, description="true when it replaced a renewal detected from a moved end date"
    )
    detail: dict[str, Any]


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: date | None = Field(None, description="letters decided on or after this day (UTC)")
    until: date | None = Field(None, description="letters decided on or before this day (UTC)")
    segment_id: int | None = Field(None, ge=1, le=MAX_ID)
    campaign_id: int | None = Field(None, ge=1, le=MAX_ID)
    automation_id: int | None = Field(None, ge=1, le=MAX_ID)
    step_id: int | None = Field(None, ge=1, le=MAX_ID)


class FiguresOut(BaseModel):
    audience: int
    sent: int
    failed: int
    suppressed: int
    held_out: int
    deferred: int
    opened: int = Field(description="letters a person opened (machine opens apart)")
    opened_machine: int
    clicked: int
    clicked_machine: int
    renewal_clicks: int
    acknowledged: int
    unsubscribed: int
    bounced: int
    complained: int
    renewed: int = Field(description="renewals credited to these letters (last touch)")
    revenue: dict[str, Money] = Field(description="credited revenue per currency")
    revenue_total: Money | None = Field(
        description="revenue in the report currency; null when a rate is missing"
    )
    rates: dict[str, float] = Field(description="per letter sent")


class LineOut(BaseModel):
    key: str = Field(examples=["segment:4", "campaign:3", "automation:2", "step:7"])
    label: str
    detail: str
    figures: FiguresOut


class OrganicOut(BaseModel):
    renewed: int
    revenue: dict[str, Money]


class ReportOut(BaseModel):
    by: Literal["segment", "campaign", "step", "version"]
    currency: str
    refreshed_at: datetime | None = Field(description="when the figures were taken")
    lines: list[LineOut]
    total: FiguresOut
    organic: OrganicOut = Field(description="renewals in the range no letter earned")


class HoldoutOut(BaseModel):
    treated: int
    treated_renewed: int
    treated_rate: float
    held_out: int
    held_out_renewed: int
    held_out_rate: float
    uplift: float = Field(description="treated rate minus held-out rate (0.04: 4 points)")
    interval: list[float] | None = Field(description="95 % interval of the uplift")
    relative_uplift: float | None
    relative_interval: list[float] | None
    p_value: float | None
    significant: bool
    recipients_needed: int | None = Field(
        description="recipients in all a difference this size needs (95 %, power 80 %)"
    )
    treated_revenue_per_recipient: Money | None
    held_out_revenue_per_recipient: Money | None
    currency: str
    sentence: str
    refreshed_at: datetime | None


class HorizonOut(BaseModel):
    months: int
    group: Literal["recipients", "held_out"]
    measured: int
    renewed: int
    churned: int
    renewal_rate: float
    churn_rate: float


class RetentionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: int | None = Field(None, ge=1, le=MAX_ID)
    automation_id: int | None = Field(None, ge=1, le=MAX_ID)


class RetentionOut(BaseModel):
    sizes: dict[str, int]
    horizons: list[HorizonOut]
    curves: dict[str, list[float]] = Field(description="share renewed by day after the letter")
