"""The support side after a letter: points, incidents and satisfaction of the customers who
were sent it against those held out — "does enforcing the terms lose customers?"

A report is about the customers of one campaign (typically the policy re-statement) or of
one segment: the contacts of the ledger rows written for it (`Delivery.segment_id`, kept
with each row, so the figures do not move when the segment's rules change later). A contact
with a delivered letter (sent, or ambiguous) is *sent the letter* from its first one; a
contact only ever held out is *held out* from the moment it was. Each figure is read in a
few set-based statements, whatever the number of customers:

- points: the balance each held when their letter came (sum of the entries before it), what
  came after it — granted (of which by this campaign's letters), purchased, refunded, used,
  expired, adjusted (signed) — and the balance now (`outstanding`): before + granted +
  purchased + refunded − used − expired + adjusted.
- incidents: opened in the days before each customer's letter and in as many days after it
  (up to `days`, 90; fewer for a letter younger than that, so both sides cover the same
  span), with the chargeable ones and the points they used.
- satisfaction: survey ratings the customers gave in the same two spans, as CSAT (4–5 of
  1–5) and NPS (`survey_results.Figures`).

Retention (renewed, churned) and the holdout comparison of renewals are tracking's; the web
page puts them beside these figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    distinct,
    extract,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from campaigns.db import UTCDateTime, utcnow
from campaigns.models import (
    DELIVERED_STATES,
    Campaign,
    Delivery,
    DeliveryState,
    Incident,
    Letter,
    LetterKind,
    LetterVersion,
    PointsEntry,
    PointsKind,
    SurveyResponse,
    SurveyScale,
)
from campaigns.service.survey_results import Figures

DAYS = 90
GROUPS = ("recipients", "held_out")  # as tracking.retention names them
_EPOCH_JULIAN_DAY = 2440587.5  # 1970-01-01 00:00 UTC as SQLite's julianday()


@dataclass(frozen=True)
class Scope:
    """What a report is about: one campaign, or one segment."""

    campaign_id: int | None = None
    segment_id: int | None = None

    def where(self) -> ColumnElement[bool]:
        if self.campaign_id is not None:
            return Delivery.campaign_id == self.campaign_id
        if self.segment_id is not None:
            return Delivery.segment_id == self.segment_id
        raise ValueError("a service report is about a campaign or a segment")


@dataclass(frozen=True)
class Points:
    """A group's points: before the letter, what moved after it, and the balance now."""

    before: int = 0
    granted: int = 0
    by_campaign: int = 0  # of `granted`: given with this campaign's letters
    purchased: int = 0
    refunded: int = 0
    used: int = 0  # positive: points taken
    expired: int = 0  # positive: points lost
    adjusted: int = 0  # signed
    outstanding: int = 0


@dataclass(frozen=True)
class Incidents:
    """A group's incidents in the span before each letter and the same span after it."""

    before: int = 0
    after: int = 0
    chargeable_before: int = 0
    chargeable_after: int = 0
    points_before: int = 0
    points_after: int = 0
    customers_before: int = 0  # customers with at least one incident
    customers_after: int = 0


@dataclass(frozen=True)
class Group:
    name: str  # recipients or held_out
    customers: int = 0
    days: float = 0.0  # the span compared each side of the letter, on average
    points: Points = field(default_factory=Points)
    incidents: Incidents = field(default_factory=Incidents)
    satisfaction_before: Figures = field(default_factory=Figures)
    satisfaction_after: Figures = field(default_factory=Figures)

    def per_customer(self, count: int) -> float | None:
        return count / self.customers if self.customers else None


@dataclass(frozen=True)
class Report:
    scope: Scope
    days: int
    groups: dict[str, Group]
    first: datetime | None = None  # the first letter (or holdout) of the scope
    last: datetime | None = None

    @property
    def customers(self) -> int:
        return sum(group.customers for group in self.groups.values())


def report(
    session: Session, scope: Scope, *, days: int = DAYS, now: datetime | None = None
) -> Report:
    """Points, incidents and satisfaction of a scope's customers, sent against held out."""
    now = now or utcnow()
    cohort = _cohort(scope)
    since, treated = _seconds(session, cohort.c.since), cohort.c.treated
    # The span each side of a customer's letter: `days`, or the time since a younger letter.
    age = literal(now.timestamp()) - since
    span = case((age < days * 86400, age), else_=days * 86400)
    sizes = session.execute(
        select(treated, func.count(), func.avg(span), func.min(cohort.c.since),
               func.max(cohort.c.since)).group_by(treated)
    ).all()  # fmt: skip
    if not sizes:
        return Report(scope, days, {name: Group(name) for name in GROUPS})
    points = {row[0]: Points(*map(int, row[1:])) for row in _points(session, scope, cohort)}
    incidents = {row[0]: Incidents(*map(int, row[1:]))
                 for row in _incidents(session, cohort, since, span)}  # fmt: skip
    ratings = _satisfaction(session, cohort, since, span)
    groups = {name: Group(name) for name in GROUPS}
    for key, customers, seconds, _first, _last in sizes:
        name = GROUPS[0] if key else GROUPS[1]
        groups[name] = Group(
            name, int(customers), float(seconds or 0) / 86400, points.get(key, Points()),
            incidents.get(key, Incidents()), *ratings.get(key, (Figures(), Figures())),
        )  # fmt: skip
    firsts = [row[3] for row in sizes if row[3] is not None]
    lasts = [row[4] for row in sizes if row[4] is not None]
    return Report(scope, days, groups, min(firsts, default=None), max(lasts, default=None))


def _cohort(scope: Scope) -> Any:
    """One row per customer of the scope: sent the letter (1) or held out (0), and since
    when (their first delivered letter's sending, else their first holdout)."""
    d = Delivery
    delivered = d.state.in_(DELIVERED_STATES)
    rows = (
        select(d.contact_id.label("contact_id"),
               func.max(case((delivered, 1), else_=0)).label("treated"),
               func.min(case((delivered, func.coalesce(d.sent_at, d.created_at)))).label("sent"),
               func.min(case((d.state == DeliveryState.HELD_OUT, d.created_at))).label("held"))
        .where(scope.where(), d.state.in_((*DELIVERED_STATES, DeliveryState.HELD_OUT)))
        .group_by(d.contact_id)
        .subquery()
    )  # fmt: skip
    since = type_coerce(func.coalesce(rows.c.sent, rows.c.held), UTCDateTime())
    return select(rows.c.contact_id, rows.c.treated, since.label("since")).subquery("cohort")


def _seconds(session: Session, column: Any) -> ColumnElement[Any]:
    """A timestamp column as seconds since 1970 (UTC), to add spans to on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return extract("epoch", column)
    return (func.julianday(column) - _EPOCH_JULIAN_DAY) * 86400.0


def _sum(value: Any, *conditions: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((and_(*conditions), value), else_=0)), 0)


def _points(session: Session, scope: Scope, cohort: Any) -> Any:
    e = PointsEntry
    after, kind = e.occurred_at >= cohort.c.since, e.kind
    mine = e.campaign_id == scope.campaign_id if scope.campaign_id is not None else literal(False)
    return session.execute(
        select(cohort.c.treated, _sum(e.amount, e.occurred_at < cohort.c.since),
               _sum(e.amount, after, kind == PointsKind.GRANT),
               _sum(e.amount, after, kind == PointsKind.GRANT, mine),
               _sum(e.amount, after, kind == PointsKind.PURCHASE),
               _sum(e.amount, after, kind == PointsKind.REFUND),
               _sum(-e.amount, after, kind == PointsKind.USE),
               _sum(-e.amount, after, kind == PointsKind.EXPIRE),
               _sum(e.amount, after, kind == PointsKind.ADJUST),
               func.coalesce(func.sum(e.amount), 0))
        .join(e, e.contact_id == cohort.c.contact_id)
        .group_by(cohort.c.treated)
    )  # fmt: skip


def _windows(
    session: Session, column: Any, since: Any, span: Any
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Whether a timestamp falls in the span before the letter, and in the span after it."""
    at = _seconds(session, column)
    return and_(at >= since - span, at < since), and_(at >= since, at < since + span)


def _incidents(session: Session, cohort: Any, since: Any, span: Any) -> Any:
    i = Incident
    before, after = _windows(session, i.opened_at, since, span)
    chargeable = i.chargeable.is_(True)

    def customers(window: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.count(distinct(case((window, i.contact_id))))

    return session.execute(
        select(cohort.c.treated, _sum(1, before), _sum(1, after), _sum(1, before, chargeable),
               _sum(1, after, chargeable), _sum(i.points_used, before),
               _sum(i.points_used, after), customers(before), customers(after))
        .join(i, i.contact_id == cohort.c.contact_id)
        .group_by(cohort.c.treated)
    )  # fmt: skip


def _satisfaction(
    session: Session, cohort: Any, since: Any, span: Any
) -> dict[int, tuple[Figures, Figures]]:
    """Survey ratings before and after the letter, per group, as survey results count them."""
    r = SurveyResponse
    csat, nps = r.scale == SurveyScale.CSAT.value, r.scale == SurveyScale.NPS.value
    found: dict[int, tuple[Figures, Figures]] = {}
    windows = _windows(session, r.responded_at, since, span)

    def counts(window: ColumnElement[bool]) -> list[ColumnElement[Any]]:
        return [_sum(1, window), _sum(1, window, csat), _sum(1, window, csat, r.score >= 4),
                _sum(1, window, csat, r.score <= 2), _sum(1, window, nps),
                _sum(1, window, nps, r.score >= 9), _sum(1, window, nps, r.score <= 6)]  # fmt: skip

    query = (select(cohort.c.treated, *counts(windows[0]), *counts(windows[1]))
             .join(r, r.contact_id == cohort.c.contact_id).group_by(cohort.c.treated))  # fmt: skip
    names = ("responses", "csat_responses", "satisfied", "unsatisfied", "nps_responses",
             "promoters", "detractors")  # fmt: skip
    for row in session.execute(query):
        values = [int(v) for v in row[1:]]
        found[row[0]] = (Figures(**dict(zip(names, values[:7], strict=True))),
                         Figures(**dict(zip(names, values[7:], strict=True))))  # fmt: skip
    return found


def latest_policy_campaign(session: Session) -> int | None:
    """The newest campaign that sent a policy re-statement: the report's first choice."""
    return session.scalar(
        select(Campaign.id)
        .join(LetterVersion, LetterVersion.id == Campaign.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .where(Letter.kind == LetterKind.POLICY,
               select(Delivery.id).where(Delivery.campaign_id == Campaign.id).exists())
        .order_by(Campaign.id.desc())
        .limit(1)
    )  # fmt: skip
