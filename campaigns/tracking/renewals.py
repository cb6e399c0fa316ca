"""Renewal clicks: a letter's tracked renewal link, recorded and sent on to the contract's shop."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.orm import Session

from campaigns.db import utcnow
from campaigns.errors import TokenInvalid
from campaigns.models import Contract, Delivery, Event, EventKind
from campaigns.tracking.events import DELIVERED, is_machine

DISCOUNT_PARAMETER = "discount"  # the query parameter the shop reads the discount code from


def renewal_target(session: Session, delivery_id: int, contract_id: int) -> tuple[Delivery, str]:
    """Return the delivery and the renewal URL a renewal token leads to.

    The contract must be the one the letter was sent about, and still have an http(s)
    renewal URL: a token of one letter never redirects to another customer's shop page.
    """
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.state not in DELIVERED:
        raise TokenInvalid("this link does not belong to a delivered letter")
    contract = session.get(Contract, contract_id)
    if (
        contract is None
        or delivery.contract_id != contract.id
        or contract.contact_id != delivery.contact_id
    ):
        raise TokenInvalid("this renewal link does not belong to the letter")
    url = contract.renewal_url or ""
    if not url.startswith(("https://", "http://")):
        raise TokenInvalid("this contract has no renewal page any more")
    return delivery, url


def with_discount(url: str, code: str | None) -> str:
    """The renewal URL carrying the discount code the letter offered, if it offered one."""
    if not code:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != DISCOUNT_PARAMETER]  # fmt: skip
    query.append((DISCOUNT_PARAMETER, code))
    return urlunsplit(parts._replace(query=urlencode(query)))


def record_renewal_click(
    session: Session, delivery_id: int, contract_id: int, *, discount_percent: int = 0,
    discount_code: str = "", user_agent: str = "", now: datetime | None = None,
) -> str:  # fmt: skip
    """Record a click on a letter's renewal link; return where to send the customer.

    The discount the letter offered (carried in its signed link) is kept with the event and
    passed on to the shop as `?discount=CODE`.
    """
    delivery, url = renewal_target(session, delivery_id, contract_id)
    code = discount_code if discount_percent > 0 else ""
    detail: dict[str, object] = {"contract_id": contract_id}
    if code:
        detail |= {"discount_percent": discount_percent, "discount_code": code}
    session.add(
        Event(
            kind=EventKind.RENEWAL_CLICK,
            delivery_id=delivery.id,
            contact_id=delivery.contact_id,
            occurred_at=now or utcnow(),
            user_agent=user_agent[:500],
            is_machine=is_machine(user_agent),
            detail=detail,
        )  # fmt: skip
    )
    return with_discount(url, code)
