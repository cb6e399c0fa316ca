"""Renewal clicks: a letter's tracked renewal link, recorded and sent on to the contract's shop."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from campaigns.db import Database, utcnow
from campaigns.errors import TokenInvalid
from campaigns.models import EventKind
from campaigns.tracking import hits
from campaigns.tracking.events import record
from campaigns.tracking.machines import Hit

DISCOUNT_PARAMETER = "discount"  # the query parameter the shop reads the discount code from

_RENEWAL = (
    "SELECT deliveries.contact_id, deliveries.contract_id, contracts.contact_id AS holder, "  # noqa: S608
    "contracts.renewal_url FROM deliveries LEFT JOIN contracts ON contracts.id = :contract_id "
    f"WHERE deliveries.id = :delivery_id AND deliveries.state IN ({hits.DELIVERED_SQL})"
)


def renewal_url(database: Database, delivery_id: int, contract_id: int) -> str:
    """Return the renewal URL a renewal token leads to.

    The contract must be the one the letter was sent about, and still have an http(s)
    renewal URL: a token of one letter never redirects to another customer's shop page.
    """
    row = hits.writer(database.engine).lookup(
        _RENEWAL, {"delivery_id": delivery_id, "contract_id": contract_id}
    )
    if row is None:
        raise TokenInvalid("this link does not belong to a delivered letter")
    contact_id, row_contract_id, holder, renewal_target = row
    if row_contract_id != contract_id or holder != contact_id:
        raise TokenInvalid("this renewal link does not belong to the letter")
    url = renewal_target or ""
    if not url.startswith(("https://", "http://")):
        raise TokenInvalid("this contract has no renewal page any more")
    return str(url)


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
    database: Database, delivery_id: int, contract_id: int, *, hit: Hit,
    discount_percent: int = 0, discount_code: str = "", now: datetime | None = None,
) -> str:  # fmt: skip
    """Record a click on a letter's renewal link; return where to send the customer.

    The discount the letter offered (carried in its signed link) is kept with the event and
    passed on to the shop as `?discount=CODE`.
    """
    url = renewal_url(database, delivery_id, contract_id)
    code = discount_code if discount_percent > 0 else ""
    detail: dict[str, object] = {"contract_id": contract_id}
    if code:
        detail |= {"discount_percent": discount_percent, "discount_code": code}
    record(database, hits.Pending(EventKind.RENEWAL_CLICK, delivery_id, hit, now or utcnow(),
                                  detail=detail))  # fmt: skip
    return with_discount(url, code)
