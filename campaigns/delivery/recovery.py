"""Heal the ledger after faults: rows of dead workers, and work orders Redis lost.

The database is the source of truth and Redis only carries work orders, so both repairs
read the ledger and nothing else. Neither can cause a letter to go twice: the atomic claim
(`UPDATE … WHERE state = 'queued'`) stays the only way to send a row, and a letter that was
in flight when its worker died becomes `ambiguous`, never `queued`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from campaigns.delivery import scheduling
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryState, WorkerHeartbeat

AMBIGUOUS_REASON = (
    "its worker stopped while the letter was being handed to the mail server: it may or may "
    "not have gone, so it is not sent again"
)


def beat(session: Session, worker: str, *, now: datetime) -> None:
    """Record that `worker` (host:pid) is alive; its claimed rows stay its own."""
    updated = session.execute(
        update(WorkerHeartbeat).where(WorkerHeartbeat.worker == worker).values(seen_at=now)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    if not getattr(updated, "rowcount", 0):
        session.add(WorkerHeartbeat(worker=worker, seen_at=now))


def forget(session: Session, worker: str) -> None:
    """A worker that stops cleanly says so; rows it still held become reapable at once."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker == worker))


@dataclass
class Reaped:
    """What the reaper did: rows handed back for sending, rows made ambiguous."""

    requeued: list[int] = field(default_factory=list)
    ambiguous: list[int] = field(default_factory=list)
    campaigns: set[int] = field(default_factory=set)


def reap(session: Session, *, now: datetime, stale_after: timedelta) -> Reaped:
    """Resolve `sending` rows whose worker is gone (no heartbeat for `stale_after`).

    The row that was in flight becomes `ambiguous` with the reason; the others go back to
    `queued` without counting the attempt, due now.
    """
    cutoff = now - stale_after
    alive = exists().where(
        WorkerHeartbeat.worker == Delivery.claimed_by, WorkerHeartbeat.seen_at > cutoff
    )
    orphans = session.execute(
        select(Delivery.id, Delivery.campaign_id, Delivery.in_flight_at).where(
            Delivery.state == DeliveryState.SENDING,
            or_(Delivery.claimed_at.is_(None), Delivery.claimed_at <= cutoff),
            ~alive,
        )
    ).all()
    reaped = Reaped()
    for delivery_id, campaign_id, in_flight_at in orphans:
        (reaped.ambiguous if in_flight_at is not None else reaped.requeued).append(delivery_id)
        if campaign_id is not None:
            reaped.campaigns.add(campaign_id)
    guard = and_(Delivery.state == DeliveryState.SENDING, ~alive)  # unchanged since the read
    if reaped.ambiguous:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(reaped.ambiguous), guard)
            .values(state=DeliveryState.AMBIGUOUS, reason=AMBIGUOUS_REASON, in_flight_at=None)
            .execution_options(synchronize_session=False)
        )
    if reaped.requeued:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(reaped.requeued), guard)
            .values(
                state=DeliveryState.QUEUED,
                claimed_at=None,
                claimed_by=None,
                due_at=now,
                attempts=Delivery.attempts - 1,
            )  # fmt: skip
            .execution_options(synchronize_session=False)
        )
    for campaign_id in reaped.campaigns:
        scheduling.complete_if_done(session, campaign_id, now=now)
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at <= cutoff))
    return reaped


def overdue_batches(
    session: Session, *, now: datetime, grace: timedelta, size: int = 200
) -> list[list[int]]:
    """Queued rows of running campaigns (and of automations) overdue by more than `grace`,
    in batches to enqueue.

    Their work order was lost (Redis flushed, restarted or evicting; an enqueue that failed
    after its commit) or is merely late; sending a second order is harmless, as the claim
    lets only one through. A campaign whose rows are still being claimed has its orders in
    Redis (a long backlog is not lost), so it is left alone until it stalls for `grace`.
    Each row picked is marked due now, so it is picked again only after another `grace`.
    """
    cutoff = now - grace
    # An uncorrelated subquery, computed once: correlated per queued row, SQLite re-scanned
    # the campaign's rows for each one (20,000 rows held the write lock for over 30 s).
    progressing = (
        select(Delivery.campaign_id)
        .where(Delivery.claimed_at > cutoff, Delivery.campaign_id.is_not(None))
        .distinct()
    )
    overdue = and_(Delivery.state == DeliveryState.QUEUED,
                   or_(Delivery.due_at.is_(None), Delivery.due_at <= cutoff))  # fmt: skip
    ids = list(session.scalars(
        select(Delivery.id)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(overdue, Campaign.status == CampaignStatus.RUNNING,
               Delivery.campaign_id.not_in(progressing))
        .union_all(select(Delivery.id).where(overdue, Delivery.campaign_id.is_(None)))
        .order_by("id")
    ))  # fmt: skip
    for start in range(0, len(ids), 1000):
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids[start : start + 1000])).values(due_at=now)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    return [ids[i : i + size] for i in range(0, len(ids), size)]
