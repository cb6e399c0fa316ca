"""A contact's service points: a ledger whose sum is the balance, never a counter that drifts.

Every change is an entry — grant, use, purchase, refund, expire, adjust — with its amount,
reason, source (campaign, API, admin, system), time and, when the caller gives one, an
idempotency key: a replay of the key returns the first entry and changes nothing.

Entries of one contact are written one at a time (the contact's row is locked on
PostgreSQL; SQLite's writers take turns), so the balance each entry records after itself
is exact and two help-desk debits at the same moment never overdraw past the floor
(`floor`, 0 by default: a use that would take the balance below it is refused).

Expiry: a credit (grant, purchase, refund) may carry an expiry date. Uses are taken from
the credits that expire first, so on a day D the points that expire are those of credits
expiring by D not covered by the uses so far: max(0, credits expiring by D − uses) − points
already expired. `expire_due` writes them as one `expire` entry per contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.db import checked_key, replayed, utcnow
from campaigns.errors import Conflict, NotFound, ValidationError
from campaigns.models import (
    CREDITS,
    DEBITS,
    DELIVERED_STATES,
    Campaign,
    Contact,
    Delivery,
    PointsEntry,
    PointsKind,
)

MAX_AMOUNT = 1_000_000
CLOCK_SKEW = timedelta(minutes=10)  # a time this far ahead of the clock is still taken
SOURCES = ("campaign", "api", "admin", "system")


@dataclass(frozen=True)
class Recorded:
    entry: PointsEntry
    created: bool


def balance(session: Session, contact_id: int) -> int:
    """The contact's points: the sum of its entries."""
    total = session.scalar(
        select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.contact_id == contact_id
        )
    )
    return int(total or 0)


def balances(session: Session, contact_ids: list[int]) -> dict[int, int]:
    """The balances of many contacts in one query (contacts with no entry: 0)."""
    rows = session.execute(
        select(PointsEntry.contact_id, func.sum(PointsEntry.amount))
        .where(PointsEntry.contact_id.in_(contact_ids))
        .group_by(PointsEntry.contact_id)
    )  # fmt: skip
    found = dict.fromkeys(contact_ids, 0)
    found.update({contact_id: int(total or 0) for contact_id, total in rows})
    return found


def signed(kind: PointsKind, amount: int) -> int:
    """The entry's effect on the balance: credits add, debits take, adjustments as given."""
    if kind in CREDITS:
        return abs(amount)
    if kind in DEBITS:
        return -abs(amount)
    return amount


def record(
    session: Session, contact_id: int, kind: PointsKind | str, amount: int, *, source: str,
    reason: str = "", idempotency_key: str | None = None, expires_on: date | None = None,
    contract_id: int | None = None, user_id: int | None = None, campaign_id: int | None = None,
    delivery_id: int | None = None, incident_id: int | None = None, floor: int = 0,
    now: datetime | None = None,
) -> Recorded:  # fmt: skip
    """Add one entry to a contact's ledger (once per idempotency key); return it.

    `amount` is a number of points: positive for every kind except an adjustment, which is
    signed (−2 takes two points away). A use (or a negative adjustment) that would take the
    balance below `floor` is refused and nothing is written.
    """
    now = now or utcnow()
    kind = _kind(kind)
    _check(kind, amount, source=source, reason=reason, expires_on=expires_on, today=now.date())
    key = checked_key(idempotency_key) if idempotency_key and idempotency_key.strip() else None
    change = signed(kind, amount)
    if key is not None:
        replay = _replay(session, key, contact_id, kind, change)
        if replay is not None:
            return replay
    _lock(session, contact_id)
    if key is not None:  # a concurrent call with the key may have written it meanwhile
        replay = _replay(session, key, contact_id, kind, change)
        if replay is not None:
            return replay
    before = balance(session, contact_id)
    if change < 0 and kind != PointsKind.EXPIRE and before + change < floor:
        raise Conflict(
            f"not enough points: the balance is {before}, {abs(change)} asked"
            + (f" (the balance may not go below {floor})" if floor else "")
        )
    entry = PointsEntry(
        contact_id=contact_id, contract_id=contract_id, kind=kind, amount=change,
        balance_after=before + change, reason=reason.strip(), source=source,
        campaign_id=campaign_id, delivery_id=delivery_id, incident_id=incident_id,
        user_id=user_id, idempotency_key=key, expires_on=expires_on, occurred_at=now,
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(entry)
    except IntegrityError:
        if key is not None:
            replay = _replay(session, key, contact_id, kind, change)
            if replay is not None:
                return replay
        raise
    return Recorded(entry, created=True)


def _kind(raw: PointsKind | str) -> PointsKind:
    try:
        return PointsKind(raw)
    except ValueError:
        kinds = ", ".join(k.value for k in PointsKind)
        raise ValidationError(f"the kind must be one of {kinds}", field="kind") from None


def _check(kind: PointsKind, amount: int, *, source: str, reason: str,
           expires_on: date | None, today: date) -> None:  # fmt: skip
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationError("the amount must be a whole number of points", field="amount")
    if kind == PointsKind.ADJUST:
        if amount == 0 or abs(amount) > MAX_AMOUNT:
            raise ValidationError(f"an adjustment is between -{MAX_AMOUNT:,} and {MAX_AMOUNT:,}, "
                                  "not 0", field="amount")  # fmt: skip
    elif not 0 < amount <= MAX_AMOUNT:
        raise ValidationError(f"the amount must be 1 to {MAX_AMOUNT:,} points", field="amount")
    if source not in SOURCES:
        raise ValidationError(f"the source must be one of {', '.join(SOURCES)}", field="source")
    if kind in (PointsKind.ADJUST, PointsKind.REFUND) and not reason.strip():
        raise ValidationError(f"say why: a {kind} needs a reason", field="reason")
    if len(reason) > 1000:
        raise ValidationError("the reason is longer than 1,000 characters", field="reason")
    if expires_on is not None:
        if kind not in CREDITS:
            raise ValidationError(f"only credits expire, not a {kind}", field="expires_on")
        if expires_on <= today:
            raise ValidationError("the expiry date must be after today", field="expires_on")


def _replay(
    session: Session, key: str, contact_id: int, kind: PointsKind, change: int
) -> Recorded | None:
    found = replayed(
        session, PointsEntry, key,
        same=lambda e: (e.contact_id, e.kind, e.amount) == (contact_id, kind, change),
        used_for=lambda e: f"points entry #{e.id} (contact #{e.contact_id}, {e.kind} "
                           f"{e.amount:+d})",
    )  # fmt: skip
    return None if found is None else Recorded(found, created=False)


def apply_grants(
    session: Session, delivery_ids: list[int] | None = None, *, limit: int = 5_000
) -> int:
    """Write the points that sent campaign letters gave their recipients: one grant entry
    per letter, once (the ledger's unique delivery_id), worth what the letter said
    (`Delivery.detail["points_granted"]`); return how many were written.

    With `delivery_ids`, only those rows (a send batch just done); without, every letter
    still owed its grant (the scheduler's sweep after a worker died between the send and
    this). Held-out, suppressed and failed rows were never sent: they get nothing. A letter
    whose fate is unknown (`ambiguous`) may have been read, so it gets its points too.
    """
    granted = Delivery.detail["points_granted"].as_integer()
    owed = (
        select(Delivery.id, Delivery.contact_id, Delivery.contract_id, Delivery.campaign_id,
               granted.label("amount"), Delivery.sent_at, Campaign.grant_expires_days,
               Campaign.name)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Campaign.grant_points.is_not(None), Delivery.state.in_(DELIVERED_STATES),
               granted > 0, ~exists().where(PointsEntry.delivery_id == Delivery.id))
        .order_by(Delivery.id)
        .limit(limit)
    )  # fmt: skip
    if delivery_ids is not None:
        owed = owed.where(Delivery.id.in_(delivery_ids))
    rows = session.execute(owed).all()
    if not rows:
        return 0
    contact_ids = sorted({row.contact_id for row in rows})
    # One writer per contact at a time (as `record`), in id order so two sweeps never
    # deadlock; then only what is still owed: another sweep may have written it meanwhile.
    session.execute(select(Contact.id).where(Contact.id.in_(contact_ids))
                    .order_by(Contact.id).with_for_update())  # fmt: skip
    done = set(session.scalars(select(PointsEntry.delivery_id).where(
        PointsEntry.delivery_id.in_([row.id for row in rows]))))  # fmt: skip
    running = balances(session, contact_ids)
    entries = []
    for row in rows:
        if row.id in done:
            continue
        running[row.contact_id] += row.amount
        at = row.sent_at or utcnow()
        expires = (at.date() + timedelta(days=row.grant_expires_days)
                   if row.grant_expires_days else None)  # fmt: skip
        entries.append({
            "contact_id": row.contact_id, "contract_id": row.contract_id,
            "kind": PointsKind.GRANT, "amount": row.amount,
            "balance_after": running[row.contact_id],
            "reason": f"given with the letter of campaign {row.name!r}", "source": "campaign",
            "campaign_id": row.campaign_id, "delivery_id": row.id,
            "idempotency_key": f"grant:{row.id}", "expires_on": expires, "occurred_at": at,
        })  # fmt: skip
    if entries:
        session.execute(insert(PointsEntry), entries)
    return len(entries)


def granted_by_campaign(session: Session, campaign_id: int) -> tuple[int, int]:
    """The points a campaign's letters gave: (entries, points)."""
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.campaign_id == campaign_id, PointsEntry.kind == PointsKind.GRANT
        )
    ).one()
    return int(count), int(total)


def _lock(session: Session, contact_id: int) -> None:
    """Take the contact's row for this transaction: its entries are written one at a time."""
    locked = session.scalar(select(Contact.id).where(Contact.id == contact_id).with_for_update())
    if locked is None:
        raise NotFound(f"there is no contact #{contact_id}")


def history(session: Session, contact_id: int, *, limit: int = 200) -> list[PointsEntry]:
    """The contact's entries, newest first."""
    query = (
        select(PointsEntry).where(PointsEntry.contact_id == contact_id)
        .order_by(PointsEntry.id.desc()).limit(limit)
    )  # fmt: skip
    return list(session.scalars(query))


def expire_due(session: Session, *, today: date, now: datetime | None = None) -> int:
    """Write the expiry of every contact's points that expired by `today`; return how many
    contacts lost points. Safe to run any number of times a day (one key per contact-day)."""
    now = now or utcnow()
    e = PointsEntry
    expiring = func.sum(
        func.coalesce(_when(e.kind.in_(CREDITS) & (e.expires_on <= today), e.amount), 0)
    )
    used = -func.sum(func.coalesce(
        _when((e.kind == PointsKind.USE) | ((e.kind == PointsKind.ADJUST) & (e.amount < 0)),
              e.amount), 0))  # fmt: skip
    expired = -func.sum(func.coalesce(_when(e.kind == PointsKind.EXPIRE, e.amount), 0))
    due = (
        select(e.contact_id, expiring.label("expiring"), used.label("used"),
               expired.label("expired"))
        .group_by(e.contact_id)
        .having(func.sum(_when(e.expires_on <= today, 1)) > 0)
    )  # fmt: skip
    count = 0
    for contact_id, credits, uses, gone in session.execute(due).all():
        lost = max(0, int(credits) - int(uses)) - int(gone)
        if lost > 0:
            made = record(session, contact_id, PointsKind.EXPIRE, lost, source="system",
                          reason=f"unused points past their expiry date (as of {today:%Y-%m-%d})",
                          idempotency_key=f"expire:{contact_id}:{today}", now=now)  # fmt: skip
            count += made.created
    return count


def _when(condition: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
    return case((condition, value))
