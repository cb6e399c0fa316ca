"""What the mail servers' answers teach: hard bounces suppress, error storms pause, and so
do too many bounces or complaints (campaigns.tracking.bounces records them)."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.audience import contacts, suppressions
from campaigns.config import Bounces
from campaigns.delivery import scheduling
from campaigns.errors import InvalidTransition
from campaigns.models import (
    DELIVERED_STATES,
    Campaign,
    CampaignStatus,
    ContactStatus,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
)

# RFC 3463: 5.1.x is a bad destination address (no such user, bad domain, moved): permanent.
HARD_BOUNCE = re.compile(r"^5\d\d\b.*\b5\.1\.\d{1,3}\b", re.DOTALL)
STORM_WINDOW = 200  # the last this many letters of a campaign that reached an outcome
STORM_MIN = 20  # fewer outcomes than this are too few to judge
STORM_RATE = 0.20  # more failures than this share of them pauses the campaign
HARD, SOFT = "hard", "soft"  # a bounce event's detail["severity"]


def is_hard_bounce(reply: str) -> bool:
    """Whether an SMTP reply says the address itself is bad (5xx with 5.1.x)."""
    return bool(HARD_BOUNCE.match(reply))


def suppress_if_hard_bounce(session: Session, delivery_id: int, reply: str) -> bool:
    """On a hard bounce, mark the contact bounced and suppress the address; say whether it was.

    The status change keeps the time and the server's reply, so the contact page says why.
    """
    if not is_hard_bounce(reply):
        return False
    suppress_recipient(session, delivery_id, ContactStatus.BOUNCED,
                       reason=f"hard bounce: {reply[:300]}", source="bounce")  # fmt: skip
    return True


def suppress_recipient(
    session: Session, delivery_id: int, status: ContactStatus, *, reason: str, source: str
) -> None:
    """Move the contact a letter went to to `status` and put its address on the list."""
    contact_id, email = session.execute(
        select(Delivery.contact_id, Delivery.email).where(Delivery.id == delivery_id)
    ).one()
    contacts.set_status(session, contact_id, status, reason=reason, source=source)
    suppressions.suppress(session, email, reason=reason, source=source)


def pause_on_error_storm(session: Session, campaign_id: int) -> str | None:
    """Pause a running campaign whose recent letters mostly fail; return the reason if so."""
    recent = (
        select(Delivery.state, Delivery.reason)
        .where(Delivery.campaign_id == campaign_id,
               Delivery.state.in_((DeliveryState.SENT, DeliveryState.FAILED)))
        .order_by(Delivery.id.desc())
        .limit(STORM_WINDOW)
        .subquery()
    )  # fmt: skip
    total, failed, example = session.execute(
        select(
            func.count(),
            func.count().filter(recent.c.state == DeliveryState.FAILED),
            func.max(recent.c.reason).filter(recent.c.state == DeliveryState.FAILED),
        ).select_from(recent)
    ).one()
    if total < STORM_MIN or failed <= STORM_RATE * total:
        return None
    reason = (
        f"paused automatically: {failed} of the last {total} letters failed "
        f"(for example: {example[:200]}). Check the failed rows and the mail server, "
        "then resume."
    )
    try:
        scheduling.pause(session, campaign_id, reason=reason)
    except InvalidTransition:
        return None  # not running any more (paused, cancelled, completed meanwhile)
    return reason


def pause_on_bad_feedback(session: Session, campaign_id: int, *, rules: Bounces) -> str | None:
    """Pause a running campaign whose letters bounce hard or draw complaints too often
    (RELIABILITY.md 22); return the reason if so.

    Judged once at least `rules.pause_min_sent` of its letters went out: more than
    `pause_hard_percent` of them bounced hard, or more than `pause_complaint_percent`
    drew a complaint (the mailbox providers' 0.3 % ceiling by default).
    """
    status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    if status != CampaignStatus.RUNNING:
        return None  # most bounces come back after the campaign has completed
    sent = session.scalar(
        select(func.count()).where(Delivery.campaign_id == campaign_id,
                                   Delivery.state.in_(DELIVERED_STATES))
    ) or 0  # fmt: skip
    if sent < rules.pause_min_sent:
        return None
    hard_bounce = (Event.kind == EventKind.BOUNCE) & (Event.detail["severity"].as_string() == HARD)
    hard, complaints = session.execute(
        select(func.count().filter(hard_bounce),
               func.count().filter(Event.kind == EventKind.COMPLAINT))
        .join(Delivery, Delivery.id == Event.delivery_id)
        .where(Delivery.campaign_id == campaign_id)
    ).one()  # fmt: skip
    if hard * 100 > rules.pause_hard_percent * sent:
        what = (
            f"{hard} of {sent} letters sent bounced hard ({100 * hard / sent:.1f} %, over "
            f"the {rules.pause_hard_percent:g} % limit). Check where the list came from"
        )
    elif complaints * 100 > rules.pause_complaint_percent * sent:
        what = (
            f"{complaints} of {sent} recipients complained ({100 * complaints / sent:.2f} %, "
            f"over the {rules.pause_complaint_percent:g} % limit). Check who the campaign "
            "goes to and what it says"
        )
    else:
        return None
    reason = f"paused automatically: {what}, then resume."
    try:
        scheduling.pause(session, campaign_id, reason=reason)
    except InvalidTransition:
        return None  # not running any more (paused, cancelled, completed meanwhile)
    return reason
