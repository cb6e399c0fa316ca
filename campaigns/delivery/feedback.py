"""What the mail server's answers teach: hard bounces suppress, error storms pause."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.audience import contacts, suppressions
from campaigns.delivery import scheduling
from campaigns.errors import InvalidTransition
from campaigns.models import ContactStatus, Delivery, DeliveryState

# RFC 3463: 5.1.x is a bad destination address (no such user, bad domain, moved): permanent.
HARD_BOUNCE = re.compile(r"^5\d\d\b.*\b5\.1\.\d{1,3}\b", re.DOTALL)
STORM_WINDOW = 200  # the last this many letters of a campaign that reached an outcome
STORM_MIN = 20  # fewer outcomes than this are too few to judge
STORM_RATE = 0.20  # more failures than this share of them pauses the campaign


def is_hard_bounce(reply: str) -> bool:
    """Whether an SMTP reply says the address itself is bad (5xx with 5.1.x)."""
    return bool(HARD_BOUNCE.match(reply))


def suppress_if_hard_bounce(session: Session, delivery_id: int, reply: str) -> bool:
    """On a hard bounce, mark the contact bounced and suppress the address; say whether it was.

    The status change keeps the time and the server's reply, so the contact page says why.
    """
    if not is_hard_bounce(reply):
        return False
    contact_id, email = session.execute(
        select(Delivery.contact_id, Delivery.email).where(Delivery.id == delivery_id)
    ).one()
    reason = f"hard bounce: {reply[:300]}"
    contacts.set_status(session, contact_id, ContactStatus.BOUNCED, reason=reason,
                        source="bounce")  # fmt: skip
    suppressions.suppress(session, email, reason=reason, source="bounce")
    return True


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
