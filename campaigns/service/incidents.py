"""Support incidents the help desk records: once per idempotency key, points taken with them.

An incident that uses points takes them from the contact's ledger in the same transaction
(a `use` entry naming the incident): when there are not enough points, neither is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.db import checked_key, replayed, utcnow
from campaigns.errors import NotFound, ValidationError
from campaigns.models import Contact, Contract, Incident, IncidentChannel, PointsKind
from campaigns.service import points

MAX_SUMMARY = 2000


@dataclass(frozen=True)
class Recorded:
    incident: Incident
    created: bool


def record(
    session: Session, *, contact_id: int, channel: str, idempotency_key: str,
    contract_id: int | None = None, chargeable: bool = False, points_used: int = 0,
    summary: str = "", opened_at: datetime | None = None, closed_at: datetime | None = None,
    source: str = "api", floor: int = 0, now: datetime | None = None,
) -> Recorded:  # fmt: skip
    """Record an incident (a replay of its key returns the first and changes nothing)."""
    now = now or utcnow()
    key = checked_key(idempotency_key)
    kind = _channel(channel)
    opened = opened_at or now
    _check(points_used, summary, opened, closed_at, now)
    replay = _replay(session, key, contact_id)
    if replay is not None:
        return replay
    if session.get(Contact, contact_id) is None:
        raise NotFound(f"there is no contact #{contact_id}")
    if contract_id is not None:
        holder = session.scalar(select(Contract.contact_id).where(Contract.id == contract_id))
        if holder != contact_id:
            raise ValidationError(f"contract #{contract_id} is not one of this contact's",
                                  field="contract_id")  # fmt: skip
    incident = Incident(
        contact_id=contact_id, contract_id=contract_id, channel=kind, chargeable=chargeable,
        points_used=points_used, summary=summary.strip(), opened_at=opened,
        closed_at=closed_at, idempotency_key=key, source=source,
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(incident)
    except IntegrityError:
        replay = _replay(session, key, contact_id)
        if replay is not None:
            return replay
        raise
    if points_used:
        points.record(
            session, contact_id, PointsKind.USE, points_used, source=source,
            reason=f"incident #{incident.id} ({kind})", contract_id=contract_id,
            incident_id=incident.id, idempotency_key=f"incident:{key}", floor=floor, now=now,
        )  # fmt: skip
    return Recorded(incident, created=True)


def close(session: Session, incident_id: int, *, closed_at: datetime | None = None) -> Incident:
    """Close an incident (closing it again keeps the first time)."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"there is no incident #{incident_id}")
    when = closed_at or utcnow()
    if when < incident.opened_at:
        raise ValidationError("closed_at is before the incident was opened", field="closed_at")
    if incident.closed_at is None:
        incident.closed_at = when
    return incident


def of_contact(session: Session, contact_id: int, *, limit: int = 100) -> list[Incident]:
    query = (
        select(Incident).where(Incident.contact_id == contact_id)
        .order_by(Incident.opened_at.desc(), Incident.id.desc()).limit(limit)
    )  # fmt: skip
    return list(session.scalars(query))


def _channel(raw: str) -> IncidentChannel:
    try:
        return IncidentChannel(raw)
    except ValueError:
        choices = ", ".join(c.value for c in IncidentChannel)
        raise ValidationError(f"the channel must be one of {choices}", field="channel") from None


def _check(points_used: int, summary: str, opened: datetime, closed: datetime | None,
           now: datetime) -> None:  # fmt: skip
    if isinstance(points_used, bool) or not isinstance(points_used, int):
        raise ValidationError("points_used must be a whole number", field="points_used")
    if not 0 <= points_used <= points.MAX_AMOUNT:
        raise ValidationError(f"points_used must be 0 to {points.MAX_AMOUNT:,}",
                              field="points_used")  # fmt: skip
    if len(summary) > MAX_SUMMARY:
        raise ValidationError(f"the summary is longer than {MAX_SUMMARY:,} characters",
                              field="summary")  # fmt: skip
    if opened.tzinfo is None or (closed is not None and closed.tzinfo is None):
        raise ValidationError("give times with a time zone", field="opened_at")
    if opened > now + points.CLOCK_SKEW:
        raise ValidationError("opened_at is in the future", field="opened_at")
    if closed is not None and closed < opened:
        raise ValidationError("closed_at is before opened_at", field="closed_at")


def _replay(session: Session, key: str, contact_id: int) -> Recorded | None:
    found = replayed(
        session,
        Incident,
        key,
        same=lambda i: i.contact_id == contact_id,
        used_for=lambda i: f"incident #{i.id} of contact #{i.contact_id}",
    )
    return None if found is None else Recorded(found, created=False)
