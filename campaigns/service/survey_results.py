"""Survey results: CSAT and NPS per segment, campaign (and automation), automation step and
over time; response rates; the rating clicks discarded as machines'; the detractors.

Read from the ledger rows of survey letters (`LetterKind.SURVEY`) and their responses in a
few set-based statements: survey letters are a small part of the ledger, so nothing is
pre-aggregated. What the figures mean:
- sent: survey letters delivered (sent, or ambiguous) — in a date range, on the days they
  were sent (UTC); responses count with their letter, whenever they came.
- responses, and the response rate per letter sent.
- CSAT: the share of CSAT responses that are 4 or 5. NPS: the percentage of promoters (9–10)
  minus that of detractors (0–6) among NPS responses, from -100 to 100.
- detractors to follow up: CSAT 1–2 and NPS 0–6.
- discarded: clicks on rating links the machine-traffic rules took for a machine's (link
  scanners follow every link of a letter); they recorded nothing.
Over time, responses are counted on the day (or week) they were given.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.orm import Session

from campaigns.audience.csvfiles import neutral
from campaigns.delivery.automations import step_label
from campaigns.models import (
    DELIVERED_STATES,
    Automation,
    AutomationStep,
    Campaign,
    Contact,
    Delivery,
    Event,
    EventKind,
    Letter,
    LetterKind,
    LetterVersion,
    Segment,
    SurveyResponse,
    SurveyScale,
)

By = Literal["segment", "campaign", "step"]
BY: tuple[By, ...] = ("segment", "campaign", "step")
CSV_PAGE = 500


@dataclass(frozen=True)
class Filters:
    since: date | None = None  # letters sent on or after this day (UTC)
    until: date | None = None  # … on or before this one
    segment_id: int | None = None
    campaign_id: int | None = None
    automation_id: int | None = None


@dataclass
class Figures:
    """The counts behind a line: letters, responses by scale and class, machine clicks."""

    sent: int = 0
    responses: int = 0
    csat_responses: int = 0
    satisfied: int = 0  # CSAT 4–5
    unsatisfied: int = 0  # CSAT 1–2
    nps_responses: int = 0
    promoters: int = 0  # NPS 9–10
    detractors: int = 0  # NPS 0–6
    discarded: int = 0

    @property
    def csat(self) -> float | None:
        """The share of CSAT responses that are 4 or 5 (0 to 1); None without any."""
        return self.satisfied / self.csat_responses if self.csat_responses else None

    @property
    def nps(self) -> float | None:
        """% promoters − % detractors (−100 to 100); None without NPS responses."""
        if not self.nps_responses:
            return None
        return 100 * (self.promoters - self.detractors) / self.nps_responses

    @property
    def response_rate(self) -> float:
        return self.responses / self.sent if self.sent else 0.0

    @property
    def to_follow_up(self) -> int:
        return self.unsatisfied + self.detractors

    def add(self, other: Figures) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_COUNTS = ("sent", "responses", "csat_responses", "satisfied", "unsatisfied", "nps_responses",
           "promoters", "detractors", "discarded")  # fmt: skip


@dataclass(frozen=True)
class Line:
    key: str  # "segment:4", "segment:none", "campaign:3", "automation:2", "step:7"
    label: str
    detail: str
    figures: Figures


@dataclass(frozen=True)
class Period:
    """Responses given in one day or week (its first day)."""

    start: date
    figures: Figures


@dataclass(frozen=True)
class Results:
    by: By
    filters: Filters
    lines: list[Line]
    total: Figures = field(default_factory=Figures)


def _letters(filters: Filters) -> Any:
    """One row per delivered survey letter in scope: its dimensions, its response (if any)
    and how many of its rating clicks were machines'."""
    d = Delivery
    discarded = (
        select(func.count())
        .where(Event.delivery_id == d.id, Event.kind == EventKind.RATING,
               Event.is_machine.is_(True))
        .correlate(d).scalar_subquery()
    )  # fmt: skip
    query = (
        select(d.id.label("delivery_id"), d.segment_id, d.campaign_id, d.automation_step_id,
               AutomationStep.automation_id, SurveyResponse.scale, SurveyResponse.score,
               SurveyResponse.responded_at, discarded.label("discarded"))
        .join(LetterVersion, LetterVersion.id == d.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .outerjoin(AutomationStep, AutomationStep.id == d.automation_step_id)
        .outerjoin(SurveyResponse, SurveyResponse.delivery_id == d.id)
        .where(Letter.kind == LetterKind.SURVEY, d.state.in_(DELIVERED_STATES), *_where(filters))
    )  # fmt: skip
    return query.subquery()


def _where(filters: Filters) -> list[ColumnElement[bool]]:
    d, conditions = Delivery, []
    if filters.since is not None:
        conditions.append(d.sent_at >= datetime.combine(filters.since, time(), UTC))
    if filters.until is not None:
        conditions.append(d.sent_at < datetime.combine(filters.until + timedelta(1), time(), UTC))
    if filters.segment_id is not None:
        conditions.append(d.segment_id == filters.segment_id)
    if filters.campaign_id is not None:
        conditions.append(d.campaign_id == filters.campaign_id)
    if filters.automation_id is not None:
        steps = select(AutomationStep.id).where(
            AutomationStep.automation_id == filters.automation_id
        )
        conditions.append(d.automation_step_id.in_(steps))
    return conditions


def _counts(rows: Any, *, letters: bool = True) -> list[Any]:
    """The aggregates of Figures over `rows` (a `_letters` subquery), in _COUNTS order."""
    csat, nps = rows.c.scale == SurveyScale.CSAT.value, rows.c.scale == SurveyScale.NPS.value

    def count(*conditions: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

    return [
        func.count() if letters else func.count(rows.c.scale), count(rows.c.scale.is_not(None)),
        count(csat), count(csat, rows.c.score >= 4), count(csat, rows.c.score <= 2),
        count(nps), count(nps, rows.c.score >= 9), count(nps, rows.c.score <= 6),
        func.coalesce(func.sum(rows.c.discarded), 0),
    ]  # fmt: skip


def _figures(values: Any) -> Figures:
    return Figures(**{name: int(v or 0) for name, v in zip(_COUNTS, values, strict=True)})


def results(session: Session, by: By = "segment", filters: Filters | None = None) -> Results:
    """CSAT, NPS, responses and discarded clicks by segment, campaign or automation step."""
    filters = filters or Filters()
    rows = _letters(filters)
    keys = {"segment": [rows.c.segment_id], "step": [rows.c.automation_step_id],
            "campaign": [rows.c.campaign_id, rows.c.automation_id]}[by]  # fmt: skip
    query: Select[Any] = select(*keys, *_counts(rows)).group_by(*keys)
    if by == "step":
        query = query.where(rows.c.automation_step_id.is_not(None))
    found = {tuple(row[: len(keys)]): _figures(row[len(keys) :]) for row in session.execute(query)}
    labels = _labels(session, by, list(found))
    lines = [Line(*labels[key], figures) for key, figures in found.items()]
    lines.sort(key=lambda line: (-line.figures.sent, line.label))
    total = Figures()
    for line in lines:
        total.add(line.figures)
    return Results(by, filters, lines, total)


def over_time(session: Session, filters: Filters | None = None) -> list[Period]:
    """Responses per day they were given, from the first to the last (quiet days as zeros);
    per week (from Monday) when that spans more than 62 days."""
    rows = _letters(filters or Filters())
    day = _day(session, rows.c.responded_at)
    query = (select(day, *_counts(rows, letters=False)).where(rows.c.scale.is_not(None))
             .group_by(day).order_by(day))  # fmt: skip
    days = {_as_date(row[0]): _figures(row[1:]) for row in session.execute(query)}
    if not days:
        return []
    first, last = min(days), max(days)
    weekly = (last - first).days > 62
    start = first - timedelta(first.weekday()) if weekly else first
    periods: dict[date, Figures] = {}
    step = timedelta(7 if weekly else 1)
    while start <= last:
        periods[start] = Figures()
        start += step
    for when, figures in days.items():
        bucket = when - timedelta(when.weekday()) if weekly else when
        periods[bucket].add(figures)
    return [Period(when, figures) for when, figures in periods.items()]


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _labels(
    session: Session, by: By, keys: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[str, str, str]]:
    """For each key: its stable name, a label and a detail line."""
    if by == "segment":
        names = _names(session, Segment, [k[0] for k in keys])
        return {k: (f"segment:{k[0] if k[0] is not None else 'none'}",
                    names.get(k[0], "No segment (automations for every contract)"), "")
                for k in keys}  # fmt: skip
    if by == "step":
        rows = session.execute(
            select(AutomationStep.id, Automation.trigger, AutomationStep.offset_days,
                   Automation.name)
            .join(Automation, Automation.id == AutomationStep.automation_id)
            .where(AutomationStep.id.in_([k[0] for k in keys]))
        ).all()  # fmt: skip
        steps = {r[0]: (step_label(r[1], r[2]), r[3]) for r in rows}
        return {k: (f"step:{k[0]}", *steps.get(k[0], (f"step #{k[0]}", ""))) for k in keys}
    campaigns = _names(session, Campaign, [k[0] for k in keys])
    automations = _names(session, Automation, [k[1] for k in keys])
    return {(c, a): (f"campaign:{c}", campaigns.get(c, f"campaign #{c}"), "campaign")
            if c is not None else (f"automation:{a}", automations.get(a, f"automation #{a}"),
                                   "automation")
            for c, a in keys}  # fmt: skip


def _names(session: Session, model: Any, ids: list[Any]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    rows = session.execute(select(model.id, model.name).where(model.id.in_(wanted)))
    return {row[0]: row[1] for row in rows}


@dataclass(frozen=True)
class Detractor:
    """A response to follow up: CSAT 1–2 or NPS 0–6, with who gave it, and on which letter."""

    response_id: int
    delivery_id: int
    contact_id: int
    email: str
    name: str
    scale: str
    score: int
    comment: str
    responded_at: datetime
    changed_at: datetime | None
    letter: str
    sent_by: str  # the campaign's name, or the automation's and its step


def _detractors(filters: Filters) -> Any:
    r, d = SurveyResponse, Delivery
    unhappy = ((r.scale == SurveyScale.CSAT.value) & (r.score <= 2)) | (
        (r.scale == SurveyScale.NPS.value) & (r.score <= 6))  # fmt: skip
    return (
        select(r.id, r.delivery_id, r.contact_id, Contact.email, Contact.first_name,
               Contact.last_name, r.scale, r.score, r.comment, r.responded_at, r.changed_at,
               Letter.name, Campaign.name, Automation.name, Automation.trigger,
               AutomationStep.offset_days)
        .join(d, d.id == r.delivery_id)
        .join(Contact, Contact.id == r.contact_id)
        .join(LetterVersion, LetterVersion.id == d.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .outerjoin(Campaign, Campaign.id == d.campaign_id)
        .outerjoin(AutomationStep, AutomationStep.id == d.automation_step_id)
        .outerjoin(Automation, Automation.id == AutomationStep.automation_id)
        .where(unhappy, Letter.kind == LetterKind.SURVEY, *_where(filters))
    )  # fmt: skip


def _detractor(row: Any) -> Detractor:
    (response_id, delivery_id, contact_id, email, first, last, scale, score, comment,
     responded_at, changed_at, letter, campaign, automation, trigger, days) = row  # fmt: skip
    sent_by = campaign or (f"{automation}: {step_label(trigger, days)}" if automation else "")
    return Detractor(response_id, delivery_id, contact_id, email,
                     " ".join(p for p in (first, last) if p), scale, score, comment,
                     responded_at, changed_at, letter, sent_by)  # fmt: skip


def detractors(
    session: Session, filters: Filters | None = None, *, limit: int = 200
) -> list[Detractor]:
    """The detractors to follow up, newest response first (at most `limit`)."""
    query = _detractors(filters or Filters()).order_by(SurveyResponse.responded_at.desc(),
                                                        SurveyResponse.id.desc())  # fmt: skip
    return [_detractor(row) for row in session.execute(query.limit(limit))]


CSV_HEADER = ("responded_at", "email", "name", "scale", "score", "comment", "letter", "sent_by",
              "changed_at", "contact_id", "delivery_id")  # fmt: skip


def detractors_csv(session: Session, filters: Filters | None = None) -> Iterator[str]:
    """Every detractor in scope as CSV (oldest first), a page of rows at a time; every cell
    neutralised for spreadsheets."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(CSV_HEADER)
    query, last_id = _detractors(filters or Filters()).order_by(SurveyResponse.id), 0
    while True:
        page = [_detractor(row) for row in session.execute(
            query.where(SurveyResponse.id > last_id).limit(CSV_PAGE))]  # fmt: skip
        for one in page:
            out.writerow([neutral(str(v)) for v in (
                one.responded_at.isoformat(), one.email, one.name, one.scale, one.score,
                one.comment, one.letter, one.sent_by,
                one.changed_at.isoformat() if one.changed_at else "", one.contact_id,
                one.delivery_id,
            )])  # fmt: skip
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < CSV_PAGE:
            return
        last_id = page[-1].response_id
