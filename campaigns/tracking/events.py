"""Recording what customers did with their letters: opens and clicks, people or machines."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.db import utcnow
from campaigns.errors import TokenInvalid
from campaigns.models import Delivery, DeliveryState, Event, EventKind, Link

# Image proxies and link scanners fetch on the customer's behalf; their hits are not people.
MACHINE_AGENTS = (
    "googleimageproxy", "yahoomailproxy", "bot", "spider", "crawler", "python-requests",
    "curl/", "wget/", "barracuda", "mimecast", "proofpoint",
)  # fmt: skip
DELIVERED = (DeliveryState.SENT, DeliveryState.AMBIGUOUS)


def is_machine(user_agent: str) -> bool:
    agent = user_agent.lower()
    return not agent or any(marker in agent for marker in MACHINE_AGENTS)


def _delivered(session: Session, delivery_id: int) -> Delivery:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.state not in DELIVERED:
        raise TokenInvalid("this link does not belong to a delivered letter")
    return delivery


def record_open(
    session: Session, delivery_id: int, *, user_agent: str = "", now: datetime | None = None
) -> Event:
    """Record that a delivered letter was opened (its pixel was fetched)."""
    delivery = _delivered(session, delivery_id)
    event = Event(
        kind=EventKind.OPEN, delivery_id=delivery.id, contact_id=delivery.contact_id,
        occurred_at=now or utcnow(), user_agent=user_agent[:500],
        is_machine=is_machine(user_agent),
    )  # fmt: skip
    session.add(event)
    return event


def click_target(session: Session, delivery_id: int, link_id: int) -> tuple[Delivery, Link]:
    """Return the delivery and the stored link a click token names.

    The link must belong to the version the delivery was sent with: a token can never
    redirect anywhere the letter did not link to.
    """
    delivery = _delivered(session, delivery_id)
    link = session.scalar(
        select(Link).where(Link.id == link_id, Link.version_id == delivery.letter_version_id)
    )
    if link is None or not link.url.startswith(("https://", "http://")):
        raise TokenInvalid("this link does not belong to the letter")
    return delivery, link


def record_click(
    session: Session, delivery_id: int, link_id: int, *, user_agent: str = "",
    now: datetime | None = None,
) -> str:  # fmt: skip
    """Record a click and return the stored URL to redirect to."""
    delivery, link = click_target(session, delivery_id, link_id)
    session.add(
        Event(
            kind=EventKind.CLICK,
            delivery_id=delivery.id,
            contact_id=delivery.contact_id,
            link_id=link.id,
            occurred_at=now or utcnow(),
            user_agent=user_agent[:500],
            is_machine=is_machine(user_agent),
        )  # fmt: skip
    )
    return link.url
