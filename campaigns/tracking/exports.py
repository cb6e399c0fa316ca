"""Reports and the ledger as CSV, every cell safe to open in a spreadsheet.

A report's columns (`COLUMNS`) are the ones the admin's table shows, in the same order; a
ledger export streams the rows a few hundred at a time (keyset pages on the row id), so a
million-row campaign never sits in memory. Every cell goes through `neutral`: a name a
customer or a colleague typed that starts with `=`, `+`, `-`, `@`, a tab or a carriage
return is not run as a formula (RELIABILITY.md 29).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from campaigns.audience.csvfiles import neutral
from campaigns.delivery.automations import step_label
from campaigns.models import (
    Automation,
    AutomationStep,
    Campaign,
    Contract,
    Delivery,
    Event,
    EventKind,
    Segment,
)
from campaigns.tracking import results
from campaigns.tracking.results import Figures, Filters, Report, in_currency

LEDGER_PAGE = 500


@dataclass(frozen=True)
class Column:
    """One figure of a report line: its count (or `renewed`), its title, whether its rate
    per letter sent is shown beside it, and what it means."""

    name: str
    title: str
    rate: bool = False
    hint: str = ""

    def value(self, figures: Figures) -> int:
        return figures.renewed if self.name == "renewed" else figures.counts[self.name]


COLUMNS = (
    Column("audience", "Audience", hint="ledger rows: every recipient decided, whatever "
           "became of the letter"),
    Column("sent", "Sent", hint="delivered (or may have been: ambiguous)"),
    Column("failed", "Failed", rate=True),
    Column("suppressed", "Suppressed", hint="not sent: unsubscribed, bounced, capped"),
    Column("held_out", "Held out", hint="the control group: recorded, never sent"),
    Column("opened", "Opened", rate=True, hint="letters a person opened"),
    Column("opened_machine", "Machine opens", rate=True,
           hint="letters a privacy proxy or a scanner opened: recorded, not counted as people"),
    Column("clicked", "Clicked", rate=True, hint="letters a person clicked in"),
    Column("clicked_machine", "Machine clicks", rate=True,
           hint="letters whose links a scanner followed"),
    Column("renewal_clicks", "Renewal clicks", rate=True,
           hint="letters whose renewal link a person used"),
    Column("renewed", "Renewed", rate=True,
           hint="renewals credited to the letters (last touch within the attribution window)"),
    Column("acknowledged", "Acknowledged", rate=True),
    Column("unsubscribed", "Unsubscribed", rate=True),
    Column("bounced", "Bounced", rate=True),
    Column("complained", "Complained", rate=True),
)  # fmt: skip

LEDGER_HEADER = (
    "delivery_id", "campaign", "automation", "step", "segment", "email", "contract_id",
    "contract_external_id", "term", "state", "reason", "created_at", "sent_at", "opened",
    "clicked", "renewal_clicked",
)  # fmt: skip


def currencies(report: Report) -> list[str]:
    """The currencies of a report's revenue, in code order."""
    return sorted(report.total.revenue)


def report_rows(
    report: Report, *, currency: str, rates: Iterable[tuple[str, Decimal]]
) -> Iterator[list[str]]:
    """A report as rows of text: a header, one row a line, the total, the organic renewals."""
    rates = tuple(rates)
    codes = currencies(report)
    convert = bool(codes) and codes != [currency]
    header = ["line", "detail"]
    for column in COLUMNS:
        header += [column.title] + ([f"{column.title} rate"] if column.rate else [])
    header += [f"Revenue {code}" for code in codes]
    header += [f"Revenue in {currency}"] if convert else []
    yield header

    def row(label: str, kind: str, figures: Figures) -> list[str]:
        cells = [label, kind]
        for column in COLUMNS:
            cells.append(str(column.value(figures)))
            if column.rate:
                cells.append(f"{figures.rate(column.name):.4f}")
        cells += [str(figures.revenue.get(code, "")) for code in codes]
        if convert:
            total = in_currency(figures.revenue, currency, rates)
            cells.append("" if total is None else str(total))
        return cells

    for line in report.lines:
        yield row(line.label, line.detail, line.figures)
    yield row("Total", "", report.total)
    # Organic renewals have a count and revenue, and no letters: the other cells stay empty.
    organic = Figures(renewed=report.organic.renewed, revenue=dict(report.organic.revenue))
    cells = row("Organic renewals (no letter earned them)", "organic", organic)
    yield [cell if i < 2 or title == "Renewed" or title.startswith("Revenue ") else ""
           for i, (title, cell) in enumerate(zip(header, cells, strict=True))]  # fmt: skip


def report_csv(
    report: Report, *, currency: str, rates: Iterable[tuple[str, Decimal]]
) -> Iterator[str]:
    """A report as CSV text, every cell neutralised."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    for cells in report_rows(report, currency=currency, rates=rates):
        out.writerow([neutral(cell) for cell in cells])
    yield buffer.getvalue()


def ledger_csv(session: Session, filters: Filters) -> Iterator[str]:
    """The ledger rows in a report's scope as CSV, a page at a time: what was decided for
    whom, what became of it, and whether a person opened or clicked."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(LEDGER_HEADER)
    last_id = 0
    while True:
        rows = session.execute(_ledger_page(filters, after=last_id)).all()
        flags = _flags(session, [row[0] for row in rows])
        for row in rows:
            (delivery_id, campaign, automation, trigger, offset, segment, email, contract_id,
             external_id, term, state, reason, created_at, sent_at) = row  # fmt: skip
            step = step_label(trigger, offset) if trigger is not None else ""
            opened, clicked, renewal = flags.get(delivery_id, (0, 0, 0))
            out.writerow([neutral(_text(v)) for v in (
                delivery_id, campaign, automation, step, segment, email, contract_id,
                external_id, term, state, reason, created_at, sent_at,
                opened, clicked, renewal,
            )])  # fmt: skip
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < LEDGER_PAGE:
            return
        last_id = rows[-1][0]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _ledger_page(filters: Filters, *, after: int) -> Any:
    d = Delivery
    return (
        select(d.id, Campaign.name, Automation.name, Automation.trigger,
               AutomationStep.offset_days, Segment.name, d.email, d.contract_id,
               Contract.external_id, d.term, d.state, d.reason, d.created_at, d.sent_at)
        .outerjoin(Campaign, Campaign.id == d.campaign_id)
        .outerjoin(AutomationStep, AutomationStep.id == d.automation_step_id)
        .outerjoin(Automation, Automation.id == AutomationStep.automation_id)
        .outerjoin(Segment, Segment.id == d.segment_id)
        .outerjoin(Contract, Contract.id == d.contract_id)
        .where(d.id > after, *results.where(d, filters, decided_at=d.created_at))
        .order_by(d.id)
        .limit(LEDGER_PAGE)
    )  # fmt: skip


def _flags(session: Session, ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """Per ledger row of a page: whether a person opened it, clicked in it, used its
    renewal link (machine opens and clicks are left out, as in the reports)."""
    if not ids:
        return {}
    human = Event.is_machine.is_(False)

    def has(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.max(case((and_(condition, human), 1), else_=0))

    clicks = Event.kind.in_((EventKind.CLICK, EventKind.RENEWAL_CLICK))
    rows = session.execute(
        select(Event.delivery_id, has(Event.kind == EventKind.OPEN), has(clicks),
               has(Event.kind == EventKind.RENEWAL_CLICK))
        .where(Event.delivery_id.in_(ids),
               Event.kind.in_((EventKind.OPEN, EventKind.CLICK, EventKind.RENEWAL_CLICK)))
        .group_by(Event.delivery_id)
    ).all()  # fmt: skip
    return {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in rows if row[0]}
