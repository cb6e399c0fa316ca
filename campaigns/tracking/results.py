"""Results per segment, campaign, automation step and letter version, over a date range.

`refresh` rebuilds the pre-aggregated cells (campaigns.models.results) from the ledger,
its events and the conversions in a fixed handful of set-based statements, whatever the
size of the ledger; the scheduler runs it every REPORT_SECONDS and the admin on demand.
`report` then sums cells — a few thousand rows however many letters went out — and says
when the figures were taken.

What the figures mean:
- audience: ledger rows (letters decided, whatever became of them); sent: delivered
  (sent, or ambiguous: may have gone); failed, suppressed, held out, deferred: as the ledger.
- opened, clicked, renewal clicks: letters a person opened (clicked in; used the renewal
  link of) — machine opens and clicks are counted apart (campaigns.tracking.machines).
- acknowledged, unsubscribed, bounced, complained: letters with such an event.
- renewed, revenue: conversions credited to the letters (last touch, campaigns.tracking
  .conversions), revenue per currency; organic renewals are reported beside, never credited.
- Rates are per letter sent.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Date,
    Integer,
    Interval,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    case,
    delete,
    distinct,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable, DropTable

from campaigns.db import UTCDateTime, utcnow
from campaigns.delivery.automations import step_label
from campaigns.models import (
    DELIVERED_STATES,
    Automation,
    AutomationStep,
    Campaign,
    Contract,
    Conversion,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    Letter,
    LetterVersion,
    ReportActivity,
    ReportCell,
    ReportRefresh,
    ReportRevenue,
    Segment,
)
from campaigns.models.results import COUNTS
from campaigns.tracking import conversions

REFRESH_LOCK = 0x5245504F5254  # the advisory lock key of refresh ("REPORT")
By = Literal["segment", "campaign", "step", "version"]
BY: tuple[By, ...] = ("segment", "campaign", "step", "version")

_META = MetaData()
# The dimensions of a report cell, day apart.
_DIMS = ("campaign_id", "automation_step_id", "segment_id", "letter_version_id")
# Per ledger row: which events it had (1, or 0 or NULL).
_FLAGS = ("opened", "opened_machine", "clicked", "clicked_machine", "renewal_clicks",
          "acknowledged", "unsubscribed", "bounced", "complained")  # fmt: skip
# Per ledger row, what the figures need of it: its dimensions and day, state, the days it
# was sent and first opened and clicked by a person, its events. The ledger (whose rows
# keep what each letter was rendered from) is read once, here; no keys or indexes: these
# working tables are only scanned.
LETTERS = Table(
    "report_letters", _META,
    Column("delivery_id", Integer), Column("contract_id", Integer),
    Column("created_at", UTCDateTime()),
    *(Column(name, Integer) for name in _DIMS), Column("day", Date),
    Column("state", String(20)), Column("sent_on", Date),
    *(Column(name, Integer) for name in _FLAGS),
    Column("opened_on", Date), Column("clicked_on", Date),
    prefixes=["TEMPORARY"],
)  # fmt: skip
# Letters (and held-out rows) whose contract renewed within the window after them.
MATCHES = Table(
    "report_matches", _META,
    Column("delivery_id", Integer),
    *(Column(name, Integer) for name in _DIMS), Column("day", Date),
    Column("held_out", Boolean), Column("currency", String(3)),
    Column("amount", Numeric(16, 2)),
    prefixes=["TEMPORARY"],
)  # fmt: skip
# Renewals credited to a letter, and the day each happened.
CREDITS = Table(
    "report_credits", _META,
    *(Column(name, Integer) for name in _DIMS), Column("day", Date),
    Column("renewed_on", Date), Column("currency", String(3)),
    Column("amount", Numeric(16, 2)),
    prefixes=["TEMPORARY"],
)  # fmt: skip
_WORK = (LETTERS, MATCHES, CREDITS)


@dataclass(frozen=True)
class Refreshed:
    refreshed_at: datetime
    seconds: float
    ledger_rows: int
    detected: int  # renewals found in moved end dates on the way


def refresh(session: Session, *, window: timedelta, now: datetime | None = None) -> Refreshed:
    """Rebuild every report cell from the ledger (one transaction: readers see the old
    figures until it commits). Renewals detected in moved end dates are recorded first."""
    if session.get_bind().dialect.name == "postgresql":
        # One refresh at a time (the scheduler's worker, the admin's button): two that
        # overlap would each delete the old cells and insert their own, doubling every
        # figure. SQLite's write lock already makes them wait for each other.
        session.execute(select(func.pg_advisory_xact_lock(REFRESH_LOCK)))
    started, now = time.perf_counter(), now or utcnow()
    detected = conversions.detect(session, window=window, now=now)
    bind = session.connection()
    for table in _WORK:
        table.drop(bind, checkfirst=True)
        session.execute(CreateTable(table))
    session.execute(insert(LETTERS).from_select(LETTERS.c.keys(), _letters(session)))
    for matches in _matches(session, window):
        session.execute(insert(MATCHES).from_select(MATCHES.c.keys(), matches))
    session.execute(insert(CREDITS).from_select(CREDITS.c.keys(), _credits(session)))
    for model in (ReportCell, ReportRevenue, ReportActivity):
        session.execute(delete(model))
    session.execute(_cells())
    session.execute(_revenue())
    session.execute(_activity())
    for table in _WORK:
        session.execute(DropTable(table))
    rows = session.scalar(select(func.coalesce(func.sum(ReportCell.audience), 0))) or 0
    seconds = time.perf_counter() - started
    state = session.get(ReportRefresh, 1)
    if state is None:
        session.add(ReportRefresh(id=1, refreshed_at=now, seconds=seconds, ledger_rows=rows))
    else:
        state.refreshed_at, state.seconds, state.ledger_rows = now, seconds, rows
    session.flush()
    return Refreshed(now, seconds, rows, detected)


def last_refresh(session: Session) -> ReportRefresh | None:
    return session.get(ReportRefresh, 1)


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _plus(session: Session, column: Any, delta: timedelta) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(ColumnElement[Any], column + literal(delta, Interval()))
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff": strftime gives the same shape back.
    return func.strftime("%Y-%m-%d %H:%M:%f000", column, f"+{delta.total_seconds()} seconds")


def _letters(session: Session) -> Any:
    """Every ledger row with what the figures need of it, and its events."""
    human, machine = Event.is_machine.is_(False), Event.is_machine.is_(True)
    clicks = Event.kind.in_((EventKind.CLICK, EventKind.RENEWAL_CLICK))

    def has(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
        return func.max(case((and_(*conditions), 1), else_=0))

    def first(*conditions: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.min(case((and_(*conditions), Event.occurred_at)))

    opens = Event.kind == EventKind.OPEN
    # Opened and clicked (by a person) are known from the first such event: two aggregates
    # over every event fewer (a quarter of this statement's time).
    had = {
        "opened_machine": has(opens, machine),
        "clicked_machine": has(clicks, machine),
        "renewal_clicks": has(Event.kind == EventKind.RENEWAL_CLICK, human),
        "acknowledged": has(Event.kind == EventKind.ACKNOWLEDGMENT),
        "unsubscribed": has(Event.kind == EventKind.UNSUBSCRIBE),
        "bounced": has(Event.kind == EventKind.BOUNCE),
        "complained": has(Event.kind == EventKind.COMPLAINT),
    }
    flags = (
        select(
            Event.delivery_id,
            *(flag.label(name) for name, flag in had.items()),
            first(opens, human).label("first_open"),
            first(clicks, human).label("first_click"),
        )
        .where(Event.delivery_id.is_not(None))
        .group_by(Event.delivery_id)
        .subquery()
    )
    firsts = {"opened": flags.c.first_open, "clicked": flags.c.first_click}
    events = [case((firsts[name].is_not(None), 1), else_=0) if name in firsts
              else flags.c[name] for name in _FLAGS]  # fmt: skip
    d = Delivery
    dims, day = _dimensions(session)
    sent_on = case((d.state.in_(DELIVERED_STATES), _day(session, d.sent_at)))
    return (
        select(d.id, d.contract_id, d.created_at, *dims, day, d.state, sent_on, *events,
               _day(session, flags.c.first_open), _day(session, flags.c.first_click))
        .outerjoin(flags, flags.c.delivery_id == d.id)
    )  # fmt: skip


def _matches(session: Session, window: timedelta) -> list[Any]:
    """Letters and held-out rows about a contract (or, about none, to its holder) that
    renewed within the window after the row was decided; one row per renewal."""
    c, held_out = Conversion, DeliveryState.HELD_OUT
    counted = (*DELIVERED_STATES, held_out)
    lt = LETTERS.c
    about_contract = (
        select(lt.delivery_id, *(lt[name] for name in (*_DIMS, "day")), lt.state == held_out,
               c.currency, c.amount)
        .select_from(LETTERS)
        .join(c, c.contract_id == lt.contract_id)
        .where(lt.state.in_(counted), c.occurred_at > lt.created_at,
               c.occurred_at <= _plus(session, lt.created_at, window))
    )  # fmt: skip
    # Few rows are about no contract: found through the ledger's index on contract_id.
    d = Delivery
    dims, day = _dimensions(session)
    about_holder = (
        select(d.id, *dims, day, d.state == held_out, c.currency, c.amount)
        .join(Contract, Contract.contact_id == d.contact_id)
        .join(c, c.contract_id == Contract.id)
        .where(d.contract_id.is_(None), d.state.in_(counted), c.occurred_at > d.created_at,
               c.occurred_at <= _plus(session, d.created_at, window))
    )  # fmt: skip
    return [about_contract, about_holder]


def _credits(session: Session) -> Any:
    """Renewals credited to a letter: the letter's dimensions and day, the renewal's day."""
    c, lt = Conversion, LETTERS.c
    return (
        select(*(lt[name] for name in (*_DIMS, "day")), _day(session, c.occurred_at),
               c.currency, c.amount)
        .select_from(c)
        .join(LETTERS, lt.delivery_id == c.delivery_id)
    )  # fmt: skip


def _dimensions(session: Session) -> tuple[list[Any], ColumnElement[Any]]:
    d = Delivery
    day = _day(session, d.created_at)
    return [d.campaign_id, d.automation_step_id, d.segment_id, d.letter_version_id], day


def _cells() -> Any:
    """Ledger rows per cell and state, letters with each event, and letters (held-out rows)
    whose contract renewed: a sum over each working table, added up."""
    lt, m = LETTERS.c, MATCHES.c
    zero = literal(0)

    def rows(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.sum(case((condition, 1), else_=0))

    cell = [lt[name] for name in (*_DIMS, "day")]
    letters = select(
        *cell,
        func.count().label("audience"),
        rows(lt.state.in_(DELIVERED_STATES)).label("sent"),
        rows(lt.state == DeliveryState.FAILED).label("failed"),
        rows(lt.state == DeliveryState.SUPPRESSED).label("suppressed"),
        rows(lt.state == DeliveryState.HELD_OUT).label("held_out"),
        rows(lt.state == DeliveryState.DEFERRED).label("deferred"),
        *(func.coalesce(func.sum(lt[name]), 0).label(name) for name in _FLAGS),
        zero.label("renewed_sent"), zero.label("renewed_held_out"),
    ).group_by(*cell)  # fmt: skip
    cell = [m[name] for name in (*_DIMS, "day")]
    # A letter renewed twice within the window counts once.
    renewals = select(
        *cell, *(zero.label(name) for name in COUNTS[:-2]),
        func.count(distinct(case((m.held_out, None), else_=m.delivery_id))),
        func.count(distinct(case((m.held_out, m.delivery_id)))),
    ).group_by(*cell)  # fmt: skip
    parts = union_all(letters, renewals).subquery()
    totals = [parts.c[name] for name in (*_DIMS, "day")]
    query = select(*totals, *(func.sum(parts.c[name]) for name in COUNTS)).group_by(*totals)
    return insert(ReportCell).from_select([*_DIMS, "day", *COUNTS], query)


def _revenue() -> Any:
    r, m = CREDITS, MATCHES
    zero = literal(Decimal(0), Numeric(16, 2))
    credited = select(
        *(r.c[name] for name in (*_DIMS, "day")), literal(False).label("held_out"),
        r.c.currency, literal(1).label("renewed"), r.c.amount.label("revenue"),
        zero.label("outcome_revenue"),
    )  # fmt: skip
    outcome = select(
        *(m.c[name] for name in (*_DIMS, "day")), m.c.held_out, m.c.currency, literal(0), zero,
        m.c.amount,
    )  # fmt: skip
    both = union_all(credited, outcome).subquery()
    keys = [both.c[name] for name in (*_DIMS, "day", "held_out", "currency")]
    query = select(
        *keys,
        func.sum(both.c.renewed),
        func.sum(both.c.revenue),
        func.sum(both.c.outcome_revenue),
    ).group_by(*keys)
    columns = [*_DIMS, "day", "held_out", "currency", "renewed", "revenue", "outcome_revenue"]
    return insert(ReportRevenue).from_select(columns, query)


def _activity() -> Any:
    lt, r = LETTERS.c, CREDITS.c
    one, none = literal(1), literal(0)
    names = ("campaign_id", "automation_step_id", "segment_id")

    def on(table: Any, day: Any, sent: Any, opened: Any, clicked: Any, renewed: Any) -> Any:
        return (
            select(*(table[name] for name in names), day.label("day"), sent.label("sent"),
                   opened.label("opened"), clicked.label("clicked"), renewed.label("renewed"))
            .where(day.is_not(None))
        )  # fmt: skip

    parts = union_all(
        on(lt, lt.sent_on, one, none, none, none),
        on(lt, lt.opened_on, none, one, none, none),
        on(lt, lt.clicked_on, none, none, one, none),
        on(r, r.renewed_on, none, none, none, one),
    ).subquery()
    keys = [parts.c.campaign_id, parts.c.automation_step_id, parts.c.segment_id, parts.c.day]
    query = select(
        *keys,
        func.sum(parts.c.sent),
        func.sum(parts.c.opened),
        func.sum(parts.c.clicked),
        func.sum(parts.c.renewed),
    ).group_by(*keys)
    columns = ["campaign_id", "automation_step_id", "segment_id", "day", "sent", "opened",
               "clicked", "renewed"]  # fmt: skip
    return insert(ReportActivity).from_select(columns, query)


# ---------------------------------------------------------------------------- reading


@dataclass
class Figures:
    """The counts of a report line, its renewals and revenue (per currency)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    renewed: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)
    # The renewals behind renewed_sent / renewed_held_out, per currency (the holdout's).
    outcome_revenue: dict[str, Decimal] = field(default_factory=dict)
    held_out_revenue: dict[str, Decimal] = field(default_factory=dict)

    def rate(self, count: str) -> float:
        """A count (or `renewed`) per letter sent."""
        sent = self.counts["sent"]
        value = self.renewed if count == "renewed" else self.counts[count]
        return value / sent if sent else 0.0

    def add(self, other: Figures) -> None:
        for name, value in other.counts.items():
            self.counts[name] += value
        self.renewed += other.renewed
        for mine, theirs in ((self.revenue, other.revenue),
                             (self.outcome_revenue, other.outcome_revenue),
                             (self.held_out_revenue, other.held_out_revenue)):  # fmt: skip
            for currency, amount in theirs.items():
                mine[currency] = mine.get(currency, Decimal(0)) + amount


@dataclass(frozen=True)
class Line:
    """One line of a report: what it is about, and its figures."""

    key: str  # "campaign:3", "automation:2", "step:7", "segment:4", "version:9", "segment:none"
    label: str
    detail: str
    figures: Figures


@dataclass(frozen=True)
class Organic:
    """Renewals in the range that no letter earned."""

    renewed: int
    revenue: dict[str, Decimal]


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None
    segment_id: int | None = None
    campaign_id: int | None = None
    automation_id: int | None = None
    step_id: int | None = None


@dataclass(frozen=True)
class Report:
    by: By
    filters: Filters
    lines: list[Line]
    total: Figures
    organic: Organic
    refreshed_at: datetime | None
    refresh_seconds: float | None


def where(model: Any, filters: Filters, *, decided_at: Any = None) -> list[ColumnElement[bool]]:
    """The filters as conditions on a model with `segment_id`, `campaign_id` and
    `automation_step_id`: on its `day`, or, given `decided_at` (a ledger row's
    `created_at`), on the UTC days of that timestamp."""
    conditions: list[ColumnElement[bool]] = []
    if decided_at is None:
        if filters.since is not None:
            conditions.append(model.day >= filters.since)
        if filters.until is not None:
            conditions.append(model.day <= filters.until)
    else:
        if filters.since is not None:
            conditions.append(
                decided_at >= datetime.combine(filters.since, datetime.min.time(), UTC)
            )
        if filters.until is not None:
            end = datetime.combine(filters.until + timedelta(days=1), datetime.min.time(), UTC)
            conditions.append(decided_at < end)
    if filters.segment_id is not None:
        conditions.append(model.segment_id == filters.segment_id)
    if filters.campaign_id is not None:
        conditions.append(model.campaign_id == filters.campaign_id)
    if filters.step_id is not None:
        conditions.append(model.automation_step_id == filters.step_id)
    if filters.automation_id is not None:
        steps = select(AutomationStep.id).where(
            AutomationStep.automation_id == filters.automation_id
        )
        conditions.append(model.automation_step_id.in_(steps))
    return conditions


def _key(model: Any, by: By) -> tuple[list[Any], list[ColumnElement[bool]]]:
    """The columns a report groups cells by, and the rows it leaves out."""
    if by == "segment":
        return [model.segment_id], []
    if by == "version":
        return [model.letter_version_id], []
    if by == "step":
        return [model.automation_step_id], [model.automation_step_id.is_not(None)]
    automation = (
        select(AutomationStep.automation_id)
        .where(AutomationStep.id == model.automation_step_id)
        .scalar_subquery()
    )
    return [model.campaign_id, automation.label("automation_id")], []


def report(session: Session, by: By = "segment", filters: Filters | None = None) -> Report:
    """The report `by` one dimension, from the cells of the last refresh."""
    filters = filters or Filters()
    lines: dict[tuple[Any, ...], Figures] = defaultdict(Figures)
    keys, only = _key(ReportCell, by)
    cells = (
        select(*keys, *(func.sum(ReportCell.__table__.c[name]) for name in COUNTS))
        .where(*where(ReportCell, filters), *only)
        .group_by(*keys)
    )
    width = len(keys)
    for row in session.execute(cells):
        lines[tuple(row[:width])].counts = {name: int(v or 0) for name, v in
                                            zip(COUNTS, row[width:], strict=True)}  # fmt: skip
    keys, only = _key(ReportRevenue, by)
    revenue = select(
        *keys, ReportRevenue.held_out, ReportRevenue.currency, func.sum(ReportRevenue.renewed),
        func.sum(ReportRevenue.revenue), func.sum(ReportRevenue.outcome_revenue),
    ).where(*where(ReportRevenue, filters), *only).group_by(
        *keys, ReportRevenue.held_out, ReportRevenue.currency
    )  # fmt: skip
    for row in session.execute(revenue):
        figures = lines[tuple(row[:width])]
        held_out, currency, renewed, amount, outcome = row[width:]
        figures.renewed += int(renewed or 0)
        _plus_money(figures.revenue, currency, amount)
        _plus_money(figures.held_out_revenue if held_out else figures.outcome_revenue,
                    currency, outcome)  # fmt: skip
    labelled = _labels(session, by, list(lines))
    total = Figures()
    result = []
    for key, figures in lines.items():
        total.add(figures)
        name, label, detail = labelled[key]
        result.append(Line(name, label, detail, figures))
    result.sort(key=lambda line: (-line.figures.counts["sent"], line.label))
    state = last_refresh(session)
    return Report(
        by, filters, result, total, organic(session, filters),
        state.refreshed_at if state else None, state.seconds if state else None,
    )  # fmt: skip


def _plus_money(into: dict[str, Decimal], currency: str, amount: Any) -> None:
    value = Decimal(amount or 0)
    if value or currency in into:
        into[currency] = into.get(currency, Decimal(0)) + value


def organic(session: Session, filters: Filters) -> Organic:
    """Renewals in the range no letter earned (a segment or campaign filter: none)."""
    if any((filters.segment_id, filters.campaign_id, filters.automation_id, filters.step_id)):
        return Organic(0, {})
    conditions: list[ColumnElement[bool]] = [Conversion.delivery_id.is_(None)]
    day = _day(session, Conversion.occurred_at)
    if filters.since is not None:
        conditions.append(day >= filters.since)
    if filters.until is not None:
        conditions.append(day <= filters.until)
    rows = session.execute(
        select(Conversion.currency, func.count(), func.sum(Conversion.amount))
        .where(*conditions).group_by(Conversion.currency)
    ).all()  # fmt: skip
    return Organic(sum(r[1] for r in rows), {r[0]: Decimal(r[2] or 0) for r in rows})


def _labels(
    session: Session, by: By, keys: Iterable[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[str, str, str]]:
    """For each key: its stable name, a label and a detail line."""
    keys = list(keys)
    if by == "segment":
        ids = [k[0] for k in keys if k[0] is not None]
        names = _names(session, Segment, ids)
        return {k: (f"segment:{k[0] if k[0] is not None else 'none'}",
                    names.get(k[0], f"segment #{k[0]}") if k[0] is not None
                    else "No segment (automations for every contract)", "")
                for k in keys}  # fmt: skip
    if by == "version":
        ids = [k[0] for k in keys]
        rows = session.execute(
            select(LetterVersion.id, Letter.name, LetterVersion.number, Letter.kind)
            .join(Letter, Letter.id == LetterVersion.letter_id)
            .where(LetterVersion.id.in_(ids))
        ).all()  # fmt: skip
        found = {r[0]: (f"{r[1]} v{r[2]}", str(r[3])) for r in rows}
        return {k: (f"version:{k[0]}", *found.get(k[0], (f"version #{k[0]}", ""))) for k in keys}
    steps = _steps(session, [k[0] for k in keys] if by == "step" else [])
    if by == "step":
        return {k: (f"step:{k[0]}", *steps.get(k[0], (f"step #{k[0]}", ""))) for k in keys}
    campaign_ids = [k[0] for k in keys if k[0] is not None]
    automation_ids = [k[1] for k in keys if k[1] is not None]
    campaigns = _names(session, Campaign, campaign_ids)
    automations = _names(session, Automation, automation_ids)
    labels: dict[tuple[Any, ...], tuple[str, str, str]] = {}
    for key in keys:
        campaign_id, automation_id = key
        if campaign_id is not None:
            labels[key] = (
                f"campaign:{campaign_id}",
                campaigns.get(campaign_id, f"campaign #{campaign_id}"),
                "campaign",
            )
        else:
            labels[key] = (f"automation:{automation_id}",
                           automations.get(automation_id, f"automation #{automation_id}"),
                           "automation")  # fmt: skip
    return labels


def _names(session: Session, model: Any, ids: list[int]) -> dict[int, str]:
    rows = session.execute(select(model.id, model.name).where(model.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


def _steps(session: Session, ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = session.execute(
        select(AutomationStep.id, AutomationStep.offset_days, Automation.trigger, Automation.name)
        .join(Automation, Automation.id == AutomationStep.automation_id)
        .where(AutomationStep.id.in_(ids))
    ).all()  # fmt: skip
    return {step_id: (step_label(trigger, days), name) for step_id, days, trigger, name in rows}


def in_currency(amounts: Mapping[str, Decimal], currency: str,
                rates: Iterable[tuple[str, Decimal]]) -> Decimal | None:  # fmt: skip
    """The amounts converted to one currency, or None when a rate is missing."""
    known = {**dict(rates), currency: Decimal(1)}
    if any(code not in known for code in amounts):
        return None
    total = sum((amount * known[code] for code, amount in amounts.items()), Decimal(0))
    return total.quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Day:
    """What happened on one day: letters sent, first human opens and clicks, renewals."""

    day: date
    sent: int
    opened: int
    clicked: int
    renewed: int


def activity(session: Session, filters: Filters | None = None) -> list[Day]:
    """The report's days from the first to the last with activity (quiet days as zeros,
    so a chart's time axis stays even), from the daily rows of the last refresh."""
    filters = filters or Filters()
    a = ReportActivity
    rows = session.execute(
        select(a.day, func.sum(a.sent), func.sum(a.opened), func.sum(a.clicked),
               func.sum(a.renewed))
        .where(*where(a, filters)).group_by(a.day).order_by(a.day)
    ).all()  # fmt: skip
    found = {row[0]: Day(row[0], *(int(v or 0) for v in row[1:])) for row in rows}
    if not found:
        return []
    first, last = rows[0][0], rows[-1][0]
    return [found.get(first + timedelta(n)) or Day(first + timedelta(n), 0, 0, 0, 0)
            for n in range((last - first).days + 1)]  # fmt: skip
