"""Materialise a campaign's audience into the delivery ledger with one INSERT … SELECT."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
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
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

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


def opted_out(
    category: Category, kind: str, contact_id: ColumnElement[int] | None = None
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


def holdout_bucket(seed: int, subject: ColumnElement[int] | None = None) -> ColumnElement[int]:
    """A stable pseudo-random bucket 0..99 per (seed, subject), computed in SQL: per
    (campaign, contact) for a broadcast, per (automation, contract) for an automation."""
    member = Contact.id if subject is None else subject
    return (cast(member, Integer) * 7919 + seed * 104729) % 100


def materialise(
    session: Session, campaign: Campaign, *, now: datetime, caps: Caps | None = None
) -> int:
    """Write one ledger row per audience member; return how many rows were added.

    Suppression, holdout and the frequency caps are decided here, in SQL, so every member
    ends in a state with a reason (a capped broadcast letter is suppressed, not deferred:
    a broadcast is of its moment). Running it twice adds nothing (the unique key campaign ×
    contact).
    """
    version = campaign.letter_version
    suppressed = SUPPRESSED_STATUSES[version.letter.category]
    bucket = holdout_bucket(campaign.id)
    listed = exists(select(Suppression.id).where(Suppression.email == Contact.email))
    turned_off = opted_out(version.letter.category, version.letter.kind)
    capped = capping.rules(caps, version.letter.category, Contact.id, now=now) if caps else []
    state = case(
        (listed, literal(DeliveryState.SUPPRESSED.value)),
        (Contact.status.in_(suppressed), literal(DeliveryState.SUPPRESSED.value)),
        (turned_off, literal(DeliveryState.SUPPRESSED.value)),
        (bucket < campaign.holdout_percent, literal(DeliveryState.HELD_OUT.value)),
        *((rule.blocked, literal(DeliveryState.SUPPRESSED.value)) for rule in capped),
        else_=literal(DeliveryState.QUEUED.value),
    )
    reason = case(
        (listed, literal("address is on the suppression list")),
        (Contact.status.in_(suppressed), "contact is " + Contact.status),
        (turned_off, literal(opted_out_reason(version.letter.kind))),
        (bucket < campaign.holdout_percent, literal("holdout group")),
        *((rule.blocked, literal(rule.reason)) for rule in capped),
        else_=literal(""),
    )
    audience = select(
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
        audience = (
            audience.add_columns(chosen.c.contract_id, Contract.term, chosen.c.contract_ids)
            .join(chosen, chosen.c.contact_id == Contact.id)
            .join(Contract, Contract.id == chosen.c.contract_id)
        )
        columns += ["contract_id", "term", "contract_ids"]
    else:
        audience = audience.where(segments.membership(campaign.segment, today=now.date()))
    stmt = insert_ignoring_duplicates(session, Delivery).from_select(columns, audience)
    # SQLAlchemy keeps an INSERT's row count only when asked (PostgreSQL answered -1).
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return int(getattr(result, "rowcount", 0) or 0)


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
    """How many of the campaign's ledger rows are in each state (every state, zeros too)."""
    rows = session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.state)
    )
    counts = {state: 0 for state in DeliveryState}
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
