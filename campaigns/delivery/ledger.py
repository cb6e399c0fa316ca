"""Materialise a campaign's audience into the delivery ledger with one INSERT … SELECT."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    String,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import Select, Subquery

from campaigns.audience import segments
from campaigns.config import Caps
from campaigns.db import Base, UTCDateTime, require
from campaigns.delivery import caps as capping
from campaigns.models import (
    OPEN_STATES,
    Campaign,
    CampaignStatus,
    Contact,
    ContactStatus,
    Contract,
    Delivery,
    DeliveryState,
    KindOptOut,
    Segment,
    Suppression,
)
from campaigns.models import LetterCategory as Category

# Which contact statuses stop a letter, by category: legal notices still reach people who
# unsubscribed from marketing, but nothing goes to an address that bounced.
SUPPRESSED_STATUSES: dict[Category, tuple[ContactStatus, ...]] = {
    Category.LEGAL: (ContactStatus.BOUNCED,),
    Category.SERVICE: (ContactStatus.BOUNCED, ContactStatus.COMPLAINED),
    Category.MARKETING: (
        ContactStatus.BOUNCED,
        ContactStatus.COMPLAINED,
        ContactStatus.UNSUBSCRIBED,
    ),  # fmt: skip
}


# A column of a table or of a subquery, as the conditions below take them.
SQLColumn = ColumnElement[Any] | InstrumentedAttribute[Any]


def opted_out(
    category: Category, kind: str, contact_id: SQLColumn | None = None
) -> ColumnElement[bool]:
    """Whether the contact (`contact_id`, by default `Contact.id`) turned this kind of letter
    off in the preference centre; legal letters cannot be turned off."""
    if category == Category.LEGAL:
        return false()
    owner = Contact.id if contact_id is None else contact_id
    return exists().where(KindOptOut.contact_id == owner, KindOptOut.kind == kind)


def opted_out_reason(kind: str) -> str:
    return f"contact turned off {kind} letters"


def insert_ignoring_duplicates(session: Session, table: type[Base]) -> Insert:
    """An INSERT that skips rows whose unique key already exists, on SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


def holdout_bucket(seed: int, subject: SQLColumn | None = None) -> ColumnElement[int]:
    """A stable pseudo-random bucket 0..99 per (seed, subject), computed in SQL: per
    (campaign, contact) for a broadcast, per (automation, contract) for an automation."""
    member = Contact.id if subject is None else subject
    # In 64 bits, and the seed's part reduced here: in PostgreSQL's 32-bit integers the
    # product overflowed past id ~270,000 (and seed ~20,500). The buckets are the same.
    return (cast(member, BigInteger) * 7919 + (seed * 104729) % 100) % 100


@dataclass(frozen=True)
class Check:
    """One reason a ledger row is not simply queued: when it holds, the state and why."""

    when: ColumnElement[bool]
    state: DeliveryState
    reason: ColumnElement[str] | str


def verdict(checks: list[Check]) -> tuple[ColumnElement[str], ColumnElement[str]]:
    """The state and the reason of a row, in SQL: the first check that holds decides."""
    state = case(*((c.when, literal(c.state.value)) for c in checks),
                 else_=literal(DeliveryState.QUEUED.value))  # fmt: skip
    reason = case(
        *((c.when, literal(c.reason) if isinstance(c.reason, str) else c.reason)
          for c in checks),
        else_=literal(""),
    )  # fmt: skip
    return state, reason


def reachable_checks(
    category: Category, kind: str, *, email: SQLColumn, status: SQLColumn, contact_id: SQLColumn,
) -> list[Check]:  # fmt: skip
    """Whether the contact may get this letter at all: the suppression list, the contact's
    status, the kinds of letter they turned off."""
    listed = exists().where(Suppression.email == email)
    blocked = status.in_(SUPPRESSED_STATUSES[category])
    return [
        Check(listed, DeliveryState.SUPPRESSED, "address is on the suppression list"),
        Check(blocked, DeliveryState.SUPPRESSED, "contact is " + status),
        Check(opted_out(category, kind, contact_id), DeliveryState.SUPPRESSED,
              opted_out_reason(kind)),
    ]  # fmt: skip


def audience(
    campaign: Campaign, *, now: datetime, caps: Caps | None = None
) -> tuple[Select[*tuple[Any, ...]], list[str]]:
    """The campaign's ledger rows as a SELECT, and the ledger columns it fills.

    Suppression, holdout and the frequency caps are decided in it, so every member ends in
    a state with a reason (a capped broadcast letter is suppressed, not deferred: a
    broadcast is of its moment).
    """
    version = campaign.letter_version
    category = version.letter.category
    checks = reachable_checks(category, version.letter.kind, email=Contact.email,
                              status=Contact.status, contact_id=Contact.id)  # fmt: skip
    checks.append(Check(holdout_bucket(campaign.id) < campaign.holdout_percent,
                        DeliveryState.HELD_OUT, "holdout group"))  # fmt: skip
    own = capping.for_campaign(caps, campaign) if caps else None
    capped = capping.rules(own, category, Contact.id, now=now) if own else []
    checks += [Check(rule.blocked, DeliveryState.SUPPRESSED, rule.reason) for rule in capped]
    state, reason = verdict(checks)
    rows: Select[*tuple[Any, ...]] = select(
        literal(campaign.id),
        Contact.id,
        literal(campaign.segment_id),
        literal(version.id),
        Contact.email,
        state,
        reason,
        literal(0),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    ).where(Contact.erased_at.is_(None))  # erased people are never mailed, whatever a rule says
    columns = ["campaign_id", "contact_id", "segment_id", "letter_version_id", "email", "state",
               "reason", "attempts", "created_at", "due_at"]  # fmt: skip
    if segments.targets_pairs(campaign.segment):
        # One letter per contact, about the soonest-ending of their matching contracts.
        chosen = soonest_contract(campaign.segment, today=now.date())
        rows = (
            rows.add_columns(chosen.c.contract_id, Contract.term, chosen.c.contract_ids)
            .join(chosen, chosen.c.contact_id == Contact.id)
            .join(Contract, Contract.id == chosen.c.contract_id)
        )
        columns += ["contract_id", "term", "contract_ids"]
    else:
        rows = rows.where(segments.membership(campaign.segment, today=now.date()))
    return rows, columns


def materialise(
    session: Session, campaign: Campaign, *, now: datetime, caps: Caps | None = None
) -> int:
    """Write one ledger row per audience member (see `audience`); return how many rows
    were added. Running it twice adds nothing (the unique key campaign × contact)."""
    rows, columns = audience(campaign, now=now, caps=caps)
    stmt = insert_ignoring_duplicates(session, Delivery).from_select(columns, rows)
    # SQLAlchemy keeps an INSERT's row count only when asked (PostgreSQL answered -1).
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Forecast:
    """What launching a campaign now would write: rows by state, and the reasons why not."""

    counts: dict[DeliveryState, int]
    reasons: list[tuple[DeliveryState, str, int]]  # the most frequent first

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def forecast(session: Session, campaign: Campaign, *, now: datetime, caps: Caps) -> Forecast:
    """Count the ledger rows the campaign would get if it launched now, writing nothing."""
    rows = audience(campaign, now=now, caps=caps)[0].subquery()
    state, reason = rows.c[5], rows.c[6]
    found = session.execute(select(state, reason, func.count()).group_by(state, reason)).all()
    counts = {s: 0 for s in (DeliveryState.QUEUED, DeliveryState.SUPPRESSED,
                             DeliveryState.HELD_OUT)}  # fmt: skip
    for row_state, _why, n in found:
        counts[DeliveryState(row_state)] = counts.get(DeliveryState(row_state), 0) + n
    reasons = sorted(((DeliveryState(st), why, n) for st, why, n in found if why),
                     key=lambda r: -r[2])  # fmt: skip
    return Forecast(counts, reasons)


def soonest_contract(segment: Segment, *, today: date) -> Subquery:
    """`(contact_id, contract_id, contract_ids)`: each member's soonest-ending contract
    matching a contracts segment (ties: the lowest id), and all its matching ones ("3,8")."""
    pairs = segments.pairs(segment, today=today).subquery()
    rank = func.row_number().over(partition_by=pairs.c.contact_id,
                                  order_by=(Contract.ends_on, Contract.id))  # fmt: skip
    every = func.aggregate_strings(cast(pairs.c.contract_id, String), ",").over(
        partition_by=pairs.c.contact_id
    )
    ranked = (
        select(pairs.c.contact_id, pairs.c.contract_id, rank.label("rank"),
               every.label("contract_ids"))
        .join(Contract, Contract.id == pairs.c.contract_id)
        .subquery()
    )  # fmt: skip
    return (
        select(ranked.c.contact_id, ranked.c.contract_id, ranked.c.contract_ids)
        .where(ranked.c.rank == 1)
        .subquery()
    )


def counts_by_state(session: Session, campaign_id: int) -> dict[DeliveryState, int]:
    """How many of the campaign's ledger rows are in each state (zeros too)."""
    rows = session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.state)
    )
    # Every state a campaign's row can be in (only automation letters are ever deferred).
    counts: dict[DeliveryState, int] = {
        state: 0 for state in DeliveryState if state != DeliveryState.DEFERRED
    }
    counts.update({DeliveryState(state): n for state, n in rows})
    return counts


def list_rows(
    session: Session, campaign_id: int, *, state: DeliveryState | None = None, limit: int = 100
) -> list[Delivery]:
    """The campaign's ledger rows (of one state, if given), the ones needing a look first."""
    query = select(Delivery).where(Delivery.campaign_id == campaign_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    else:
        query = query.where(Delivery.state != DeliveryState.SENT)
    return list(session.scalars(query.order_by(Delivery.id).limit(limit)))


# The pace is measured over the last minute: long enough to smooth a batch's burst, short
# enough that a pause or a saturated rate shows within a few polls.
RATE_WINDOW = timedelta(seconds=60)


@dataclass(frozen=True)
class Progress:
    """Where a campaign's sending stands: its status, the ledger's counts, pace and time left."""

    status: CampaignStatus
    status_reason: str
    started_at: datetime | None
    completed_at: datetime | None
    counts: dict[DeliveryState, int]
    total: int
    done: int  # rows no longer queued or sending, whatever became of them
    rate_per_second: float  # letters sent per second over the last minute
    eta_seconds: float | None  # None when nothing remains or nothing is moving


def progress(session: Session, campaign_id: int, *, now: datetime) -> Progress:
    """Count the campaign's ledger by state and measure its recent pace, in SQL."""
    # Not scheduling.get_campaign: scheduling imports this module; it is the same lookup.
    campaign = require(session, Campaign, campaign_id, what="campaign")
    counts = counts_by_state(session, campaign_id)
    total = sum(counts.values())
    remaining = sum(counts[state] for state in OPEN_STATES)
    # A campaign launched 10 s ago has had 10 s to send, not a minute.
    since = max(now - RATE_WINDOW, campaign.started_at or now - RATE_WINDOW)
    recent = session.scalar(
        select(func.count()).where(
            Delivery.campaign_id == campaign_id,
            Delivery.state == DeliveryState.SENT,
            Delivery.sent_at > since,
            Delivery.sent_at <= now,
        )
    )
    seconds = max((now - since).total_seconds(), 1.0)
    rate = (recent or 0) / seconds
    return Progress(
        status=CampaignStatus(campaign.status), status_reason=campaign.status_reason,
        started_at=campaign.started_at, completed_at=campaign.completed_at,
        counts=counts, total=total, done=total - remaining, rate_per_second=rate,
        eta_seconds=remaining / rate if remaining and rate else None,
    )  # fmt: skip
