"""Signed tokens for tracked URLs, and recording what customers did with their letters."""

from __future__ import annotations

from datetime import datetime

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.config import Settings
from campaigns.db import utcnow
from campaigns.errors import ConfigError, TokenInvalid
from campaigns.models import Delivery, DeliveryState, Event, EventKind, Link

# Image proxies and link scanners fetch on the customer's behalf; their hits are not people.
MACHINE_AGENTS = (
    "googleimageproxy", "yahoomailproxy", "bot", "spider", "crawler", "python-requests",
    "curl/", "wget/", "barracuda", "mimecast", "proofpoint",
)  # fmt: skip
DELIVERED = (DeliveryState.SENT, DeliveryState.AMBIGUOUS)


class Tokens:
    """Signs and verifies the ids carried in tracked URLs, one salt per purpose."""

    PURPOSES = ("open", "click", "unsubscribe", "renewal", "acknowledge")

    def __init__(self, secret_key: str, *, old_keys: tuple[str, ...] = ()) -> None:
        if not secret_key:
            raise ConfigError("no SECRET_KEY to sign tracking links with")
        # itsdangerous signs with the last key and accepts any: retired keys keep the links
        # of letters already sent working after a rotation.
        keys = [*old_keys, secret_key]
        self._serializers = {
            p: URLSafeSerializer(keys, salt=f"campaigns.{p}") for p in self.PURPOSES
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        return cls(settings.require_secret_key(), old_keys=settings.old_secret_keys)

    def sign(self, purpose: str, *ids: int) -> str:
        return str(self._serializers[purpose].dumps(list(ids)))

    def verify(self, purpose: str, token: str, *, arity: int = 1) -> tuple[int, ...]:
        """Return the ids in a token, or raise TokenInvalid if it was not signed by us."""
        try:
            ids = self._serializers[purpose].loads(token)
        except (BadSignature, KeyError, ValueError):
            raise TokenInvalid(f"this {purpose} link is not valid") from None
        valid = isinstance(ids, list) and len(ids) == arity
        if not valid or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise TokenInvalid(f"this {purpose} link is not valid")
        return tuple(ids)


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
