"""Retention after a letter: renewal and churn of recipients against the held out.

The policy re-statement question — does enforcing the support terms lose customers? — is
answered per campaign (or automation): of the contracts its letters were about, how many
renewed and how many ended without renewal within 1, 3 and 6 months of the letter, for the
recipients and for the held-out group. A letter about no contract in particular stands for
the contact's contract that came up for renewal next (the soonest end on or after the
letter).

- renewed by a horizon: a renewal of that contract after the letter, within the horizon;
- churned by a horizon: not renewed, and the term's end date passed within the horizon;
- a horizon counts only letters old enough to have reached it (`measured`).

The figures are read on demand (four queries for a campaign, whatever its size); the
curves give the share renewed by each day after the letter, for the report's chart.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from campaigns.db import utcnow
from campaigns.models import (
    DELIVERED_STATES,
    AutomationStep,
    Contract,
    ContractTerm,
    Conversion,
    Delivery,
    DeliveryState,
)

HORIZONS = ((1, 30), (3, 91), (6, 182))  # months, as days
GROUPS = ("recipients", "held_out")


@dataclass(frozen=True)
class Horizon:
    months: int
    group: str  # recipients or held_out
    measured: int  # letters at least this old
    renewed: int
    churned: int

    @property
    def renewal_rate(self) -> float:
        return self.renewed / self.measured if self.measured else 0.0

    @property
    def churn_rate(self) -> float:
        return self.churned / self.measured if self.measured else 0.0


@dataclass(frozen=True)
class Cohort:
    """One letter (or held-out row): when, its contract term's end, and its renewal."""

    group: str
    decided_at: datetime
    ends_on: date | None
    renewed_at: datetime | None


@dataclass(frozen=True)
class Retention:
    horizons: list[Horizon]
    # Per group, the share renewed by day 0, 1, … `days` after the letter.
    curves: dict[str, list[float]]
    sizes: dict[str, int]


def retention(
    session: Session, *, campaign_id: int | None = None, automation_id: int | None = None,
    segment_id: int | None = None, now: datetime | None = None, curve_days: int = 90,
) -> Retention:  # fmt: skip
    """Retention of a campaign's (or automation's, or a segment's: the letters written
    for it) recipients against its held out."""
    cohorts = _cohorts(session, _scope(campaign_id, automation_id, segment_id))
    now = now or utcnow()
    horizons = []
    for months, days in HORIZONS:
        for group in GROUPS:
            mine = [
                c for c in cohorts if c.group == group and c.decided_at + timedelta(days) <= now
            ]
            renewed = sum(1 for c in mine if _renewed_within(c, days))
            churned = sum(1 for c in mine if not _renewed_within(c, days) and c.ends_on is not None
                          and c.ends_on < (c.decided_at + timedelta(days)).date())  # fmt: skip
            horizons.append(Horizon(months, group, len(mine), renewed, churned))
    return Retention(horizons, _curves(cohorts, curve_days, now),
                     {g: sum(1 for c in cohorts if c.group == g) for g in GROUPS})  # fmt: skip


def _renewed_within(cohort: Cohort, days: int) -> bool:
    return cohort.renewed_at is not None and (
        cohort.renewed_at <= cohort.decided_at + timedelta(days)
    )


def _curves(cohorts: list[Cohort], days: int, now: datetime) -> dict[str, list[float]]:
    """The share of each group renewed by each day after its letter, of the letters at
    least that old. A renewal is never younger than its letter, so of the letters at least
    `day` old, those renewed by then are all renewed by `day` less the renewed younger ones."""
    curves: dict[str, list[float]] = {}
    for group in GROUPS:
        mine = [c for c in cohorts if c.group == group]
        ages = sorted((now - c.decided_at).days for c in mine)
        renewed = [c for c in mine if c.renewed_at is not None]
        on_day = sorted((cast(datetime, c.renewed_at) - c.decided_at).days for c in renewed)
        renewed_ages = sorted((now - c.decided_at).days for c in renewed)
        curve = []
        for day in range(days + 1):
            old_enough = len(ages) - bisect.bisect_left(ages, day)
            if not old_enough:
                break
            by_then = bisect.bisect_right(on_day, day) - bisect.bisect_left(renewed_ages, day)
            curve.append(by_then / old_enough)
        curves[group] = curve
    return curves


def _scope(
    campaign_id: int | None, automation_id: int | None, segment_id: int | None
) -> ColumnElement[bool]:
    if campaign_id is not None:
        return Delivery.campaign_id == campaign_id
    if automation_id is not None:
        steps = select(AutomationStep.id).where(AutomationStep.automation_id == automation_id)
        return Delivery.automation_step_id.in_(steps)
    if segment_id is not None:
        return Delivery.segment_id == segment_id
    raise ValueError("give a campaign, an automation or a segment")


def _cohorts(session: Session, scope: ColumnElement[bool]) -> list[Cohort]:
    rows = session.execute(
        select(Delivery.state, Delivery.created_at, Delivery.contact_id, Delivery.contract_id,
               Delivery.term)
        .where(scope, Delivery.state.in_((*DELIVERED_STATES, DeliveryState.HELD_OUT)))
    ).all()  # fmt: skip
    if not rows:
        return []
    holders = select(Delivery.contact_id).where(scope)
    contracts = session.execute(
        select(Contract.id, Contract.contact_id, Contract.ends_on, Contract.term)
        .where(Contract.contact_id.in_(holders))
    ).all()  # fmt: skip
    ends: dict[tuple[int, int], date] = {(k.id, k.term): k.ends_on for k in contracts}
    for contract_id, term, ends_on in session.execute(
        select(ContractTerm.contract_id, ContractTerm.term, ContractTerm.ends_on)
        .join(Contract, Contract.id == ContractTerm.contract_id)
        .where(Contract.contact_id.in_(holders))
    ):  # fmt: skip
        ends[(contract_id, term)] = ends_on
    renewals: dict[int, list[datetime]] = defaultdict(list)
    for contract_id, occurred_at in session.execute(
        select(Conversion.contract_id, Conversion.occurred_at)
        .join(Contract, Contract.id == Conversion.contract_id)
        .where(Contract.contact_id.in_(holders))
        .order_by(Conversion.occurred_at)
    ):  # fmt: skip
        renewals[contract_id].append(occurred_at)
    held: dict[int, list[Any]] = defaultdict(list)
    for k in contracts:
        held[k.contact_id].append(k)
    cohorts = []
    for state, decided_at, contact_id, about, about_term in rows:
        group = "held_out" if state == DeliveryState.HELD_OUT else "recipients"
        if about is None:  # the contact's contract that comes up next
            upcoming = sorted((k for k in held[contact_id] if k.ends_on >= decided_at.date()),
                              key=lambda k: k.ends_on)  # fmt: skip
            if not upcoming:
                continue
            about, about_term = upcoming[0].id, upcoming[0].term
        after = [at for at in renewals[about] if at > decided_at]
        cohorts.append(Cohort(group, decided_at, ends.get((about, about_term or 1)),
                              after[0] if after else None))  # fmt: skip
    return cohorts
