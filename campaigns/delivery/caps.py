"""Frequency caps: how many letters one customer may get, as SQL conditions with reasons.

Legal letters are never capped; service letters only by a daily ceiling; marketing letters
by a weekly count and a gap after any other letter. A letter counts from the moment its
ledger row is queued (so two sources deciding in one tick see each other) until it is
settled: sent and in-flight letters count, failed, suppressed, held-out and deferred do not.

Each rule is a condition over the candidate's contact, evaluated in the same statement that
writes the ledger rows (materialisation, an automation step) and again when a deferred
letter is reconsidered. `earlier` is how many letters of the same statement go to the same
contact ahead of this one (a contact with two contracts due for the same step): they are
not in the table yet, so they are counted here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, false, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from campaigns.config import Caps
from campaigns.models import Campaign, Delivery, DeliveryState, Letter, LetterCategory, LetterKind
from campaigns.models import LetterVersion as Version

COUNTED = (DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.SENT,
           DeliveryState.AMBIGUOUS)  # fmt: skip

# Who wins a contested slot: a higher rank decides first (legal > renewal/expiry > welcome
# > other marketing), then the campaign's own priority.
KIND_RANK = {LetterKind.RENEWAL: 2, LetterKind.EXPIRY: 2, LetterKind.WELCOME: 1}


def for_campaign(caps: Caps, campaign: Campaign | None) -> Caps:
    """The caps a campaign's letters go by: the settings', with the campaign's own marketing
    limits where it has them."""
    if campaign is None:
        return caps
    return replace(
        caps,
        marketing_per_week=caps.marketing_per_week if campaign.cap_per_week is None
        else campaign.cap_per_week,
        marketing_gap_hours=caps.marketing_gap_hours if campaign.cap_gap_hours is None
        else campaign.cap_gap_hours,
    )  # fmt: skip


def rank(category: LetterCategory, kind: LetterKind) -> int:
    """The priority of a letter's kind: 3 legal, 2 renewal and expiry, 1 welcome, 0 others."""
    return 3 if category == LetterCategory.LEGAL else KIND_RANK.get(kind, 0)


@dataclass(frozen=True)
class Rule:
    """One cap: the condition that stops a letter, and the reason its row keeps."""

    blocked: ColumnElement[bool]
    reason: str


# At send time a letter is checked again against the letters that went out meanwhile
# (not those being sent with it: they were weighed together when they were decided).
GONE = (DeliveryState.SENT, DeliveryState.AMBIGUOUS)


# The other letters a cap counts. Made once: an alias builds its column collection anew
# each time (~3 ms a batch on the send path, a cap check per category and batch).
_OTHER = aliased(Delivery, name="capped_other")


def letters_since(
    contact_id: InstrumentedAttribute[int] | ColumnElement[int],
    since: datetime,
    category: LetterCategory | None = None,
    *,
    sending: InstrumentedAttribute[int] | None = None,
) -> ColumnElement[int]:
    """How many letters (of `category`, or any) the contact got or is about to get since;
    for the row being `sending`, how many others went out (queued ones were weighed when
    it was decided)."""
    other = _OTHER
    query = (
        select(func.count())
        .select_from(other)
        .where(
            other.contact_id == contact_id,
            other.state.in_(COUNTED if sending is None else GONE),
            func.coalesce(other.sent_at, other.due_at, other.created_at) > since,
        )
    )
    if sending is not None:
        query = query.where(other.id != sending)
    if category is not None:
        query = (
            query.join(Version, Version.id == other.letter_version_id)
            .join(Letter, Letter.id == Version.letter_id)
            .where(Letter.category == category)
        )
    return query.scalar_subquery()


def rules(
    caps: Caps,
    category: LetterCategory,
    contact_id: InstrumentedAttribute[int] | ColumnElement[int],
    *,
    now: datetime,
    earlier: ColumnElement[int] | None = None,
    sending: InstrumentedAttribute[int] | None = None,
) -> list[Rule]:
    """The caps a letter of `category` to this contact must pass now, most telling first
    (`sending`: checked again as it is sent, see `letters_since`)."""
    ahead: ColumnElement[int] = earlier if earlier is not None else literal(0)
    found: list[Rule] = []
    if category == LetterCategory.SERVICE and caps.service_per_day:
        day = letters_since(
            contact_id, now - timedelta(days=1), LetterCategory.SERVICE, sending=sending
        )
        found.append(
            Rule(
                day + ahead >= caps.service_per_day,
                f"frequency cap: {caps.service_per_day} service letters in a day",
            )
        )
    if category == LetterCategory.MARKETING:
        if caps.marketing_per_week:
            week = letters_since(
                contact_id, now - timedelta(days=7), LetterCategory.MARKETING, sending=sending
            )
            found.append(Rule(
                week + ahead >= caps.marketing_per_week,
                f"frequency cap: {caps.marketing_per_week} marketing letters in 7 days",
            ))  # fmt: skip
        if caps.marketing_gap_hours:
            recent = letters_since(
                contact_id, now - timedelta(hours=caps.marketing_gap_hours), sending=sending
            )
            found.append(Rule(
                or_(recent > 0, ahead > 0),
                f"frequency cap: another letter within {caps.marketing_gap_hours} hours",
            ))  # fmt: skip
    return found


def any_blocked(found: list[Rule]) -> ColumnElement[bool]:
    return or_(*(rule.blocked for rule in found)) if found else false()


def blocked_now(
    session: Session, rows: list[tuple[int, LetterCategory, Caps]], *, now: datetime
) -> dict[int, str]:
    """Of these `sending` ledger rows (id, category, the caps they go by), those a cap stops
    now, with the reason: checked again as they are sent, against the letters that went out
    since they were decided (one statement per category and caps)."""
    found: dict[int, str] = {}
    for category, caps in {(category, caps) for _id, category, caps in rows}:
        ids = [i for i, row_category, row_caps in rows
               if (row_category, row_caps) == (category, caps)]  # fmt: skip
        checks = rules(caps, category, Delivery.contact_id, now=now, sending=Delivery.id)
        if not checks:
            continue
        reason = case(*((rule.blocked, literal(rule.reason)) for rule in checks),
                      else_=literal(""))  # fmt: skip
        query = select(Delivery.id, reason).where(Delivery.id.in_(ids), any_blocked(checks))
        found.update({row_id: why for row_id, why in session.execute(query)})
    return found
