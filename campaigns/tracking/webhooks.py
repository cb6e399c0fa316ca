"""Webhooks out: subscriptions, and the events collected into letters for them.

An admin subscribes a URL to some `WebhookType`s. Every few seconds `collect` turns what
happened since its last run — human renewal clicks, acknowledgments, unsubscribes,
bounces, complaints (events), conversions and survey detractors — into one pending
`WebhookDelivery` per subscriber and event, with one INSERT … SELECT per subscription and
source; the unique key (subscription, event) makes running it twice, or in two processes at
once, add nothing.
campaigns.tracking.webhook_sender signs and sends them. The format: docs/webhooks.md.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from campaigns.db import require
from campaigns.delivery.ledger import insert_ignoring_duplicates
from campaigns.errors import InvalidTransition, ValidationError
from campaigns.models import (
    SUBSCRIBABLE,
    WEBHOOK_TRANSITIONS,
    WebhookDelivery,
    WebhookState,
    WebhookSubscription,
    WebhookType,
)
from campaigns.tracking import webhook_payloads as payloads

# How far behind its cursor `collect` looks again. An event's time is taken before its
# transaction commits (hits are written in groups, a bounce with its report): one that
# commits late still lands in the next window. A conversion found by an import is recorded
# in the import's one transaction, which can run for minutes, hence its longer lag. What
# was collected already is skipped by the unique key.
EVENT_LAG = timedelta(minutes=2)
CONVERSION_LAG = timedelta(hours=1)
# A renewal click may be found to be a scanner's within a second or so (several links of a
# letter clicked at once): events this young wait for the next run.
SETTLE = timedelta(seconds=5)
# A detractor's webhook waits this long after the rating, so that it carries the comment
# the customer writes on the page after clicking (and a rating changed at once is not sent).
DETRACTOR_WAIT = timedelta(minutes=10)

SECRET_PREFIX = "whsec_"  # Standard Webhooks: the base64 of 24 to 64 random bytes after it
URL_LIMIT = 2000
LOG_PAGE = 100


class SubscriptionRefused(ValidationError):
    """A subscription form has refused fields; `errors` names each with what to do."""

    def __init__(self, errors: dict[str, str]) -> None:
        field, reason = next(iter(errors.items()))
        super().__init__(f"{field}: {reason}", field=field)
        self.errors = errors


def check_url(raw: str, allow: Sequence[str] | None = None) -> str:
    """The URL, stripped, if webhooks may be posted to it; else why not (ValueError).

    With `allow` (the networks besides the public internet that webhooks may go to), a URL
    naming a local or private address, or localhost, is refused too. A host name is checked
    where it matters, each time it is resolved to post (see `address_allowed`).
    """
    url = raw.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is no number)
    except ValueError:
        raise ValueError("is not a URL like https://crm.example.com/hooks/campaigns") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must start with https:// (or http://) and name a host")
    if parts.username or parts.password:
        raise ValueError("must not carry a user name or password: the signature proves who sent it")
    if len(url) > URL_LIMIT or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"must be one line without spaces, at most {URL_LIMIT} characters")
    host = parts.hostname.rstrip(".")
    if allow is not None and (host == "localhost" or host.endswith(".localhost")):
        host = "127.0.0.1"
    if allow is not None and not _is_name(host) and not address_allowed(host, allow):
        raise ValueError(refusal(parts.hostname, host))
    return url


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def address_allowed(address: str, allow: Sequence[str]) -> bool:
    """Whether webhooks may go to this IP address: a public one, or one in the networks of
    `allow` (WEBHOOK_ALLOW_NETWORKS)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(network) for network in allow):
        return True
    return ip.is_global and not ip.is_multicast


def refusal(host: str, address: str) -> str:
    """Why a host at a local or private address gets no webhooks, and what would let it."""
    at = "" if host == address else f" is at {address}, which"
    return (f"{host}{at} is a local or private address: webhooks go to public addresses "
            "only, unless WEBHOOK_ALLOW_NETWORKS names its network")  # fmt: skip


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_secret(raw: str) -> str:
    encoded = raw.strip().removeprefix(SECRET_PREFIX)
    try:
        size = len(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        size = 0
    if not 24 <= size <= 64:
        raise ValueError(f"must be {SECRET_PREFIX} and the base64 of 24 to 64 random bytes "
                         "(leave it empty to have one made)")  # fmt: skip
    return SECRET_PREFIX + encoded


def _check_kinds(kinds: list[str] | None) -> list[str]:
    if kinds is None:
        return [t.value for t in SUBSCRIBABLE]
    unknown = sorted(set(kinds) - {t.value for t in SUBSCRIBABLE})
    if unknown:
        raise ValueError(f"unknown: {', '.join(unknown)}")
    if not kinds:
        raise ValueError("choose at least one")
    return [t.value for t in SUBSCRIBABLE if t.value in kinds]


def create_subscription(
    session: Session, url: str, *, secret: str = "", kinds: list[str] | None = None,
    user_id: int | None, now: datetime, allow: Sequence[str] | None = None,
) -> tuple[WebhookSubscription, str]:  # fmt: skip
    """Subscribe `url` to `kinds` (all when None) from now on; return it and the secret
    made for it when none was given (to be shown once), else "". With `allow` (the admin
    passes WEBHOOK_ALLOW_NETWORKS), a URL naming a local or private address is refused."""
    made = "" if secret.strip() else new_secret()
    errors: dict[str, str] = {}
    checked: dict[str, Any] = {}
    checks: list[tuple[str, Callable[[Any], Any], Any]] = [
        ("url", lambda raw: check_url(raw, allow), url), ("secret", _check_secret, made or secret),
        ("kinds", _check_kinds, kinds),
    ]  # fmt: skip
    for name, check, value in checks:
        try:
            checked[name] = check(value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise SubscriptionRefused(errors)
    subscription = WebhookSubscription(**checked, created_by=user_id, created_at=now,
                                       enabled_at=now, active=True)  # fmt: skip
    session.add(subscription)
    session.flush()
    return subscription, made


def disable(session: Session, subscription_id: int) -> WebhookSubscription:
    """Stop a subscription: nothing is collected or sent for it while it is disabled."""
    subscription = require(session, WebhookSubscription, subscription_id, what="webhook")
    subscription.active = False
    return subscription


def enable(session: Session, subscription_id: int, *, now: datetime) -> WebhookSubscription:
    """Start a disabled subscription again: from now on, without what happened while it was
    off; the letters it already had go out."""
    subscription = require(session, WebhookSubscription, subscription_id, what="webhook")
    if not subscription.active:
        subscription.active = True
        subscription.enabled_at = now
    return subscription


def delete(session: Session, subscription_id: int) -> WebhookSubscription:
    """Delete a subscription and its delivery log."""
    subscription = require(session, WebhookSubscription, subscription_id, what="webhook")
    session.delete(subscription)
    session.flush()
    return subscription


def collect(session: Session, *, now: datetime) -> int:
    """Queue a webhook for each active subscriber and each new event it subscribes to;
    return how many were added. Call it in its own transaction."""
    dialect = session.get_bind().dialect.name
    until = now - SETTLE
    # Locked (PostgreSQL) so that two collectors take turns per subscription: the second
    # sees the cursor the first moved, and their inserts never wait on each other's keys.
    active = select(WebhookSubscription).where(WebhookSubscription.active)
    added = 0
    for sub in session.scalars(active.order_by(WebhookSubscription.id).with_for_update()):
        cursor = sub.collected_until or sub.enabled_at
        kinds = [kind for kind, type_ in payloads.EVENT_TYPES.items() if type_ in sub.kinds]
        if kinds:
            since = max(sub.enabled_at, cursor - EVENT_LAG)
            added += _insert(session, payloads.events(dialect, sub.id, kinds, since=since,
                                                      until=until, now=now))  # fmt: skip
        if WebhookType.SURVEY_DETRACTOR in sub.kinds:
            since = max(sub.enabled_at, cursor - EVENT_LAG - DETRACTOR_WAIT)
            added += _insert(session, payloads.detractors(
                dialect, sub.id, since=since, until=until - DETRACTOR_WAIT, now=now))  # fmt: skip
        if WebhookType.CONVERSION_RECORDED in sub.kinds:
            since = max(sub.enabled_at, cursor - CONVERSION_LAG)
            added += _insert(session, payloads.conversions(dialect, sub.id, since=since,
                                                           until=until, now=now))  # fmt: skip
        if sub.collected_until is None or sub.collected_until < until:
            sub.collected_until = until
    return added


def _insert(session: Session, rows: Any) -> int:
    stmt = insert_ignoring_duplicates(session, WebhookDelivery)
    result = session.execute(
        stmt.from_select(payloads.COLUMNS, rows).execution_options(preserve_rowcount=True)
    )
    return max(0, int(getattr(result, "rowcount", 0) or 0))


def send_test(session: Session, subscription_id: int, *, now: datetime) -> WebhookDelivery:
    """Queue a `ping` for the subscriber, sent with the next run of the worker."""
    subscription = require(session, WebhookSubscription, subscription_id, what="webhook")
    if not subscription.active:
        raise ValidationError("the webhook is disabled: enable it to send a test")
    key = f"ping:{secrets.token_hex(8)}"
    row = WebhookDelivery(subscription_id=subscription.id, event_key=key, type=WebhookType.PING,
                          payload=payloads.ping(subscription.id, key, now=now),
                          next_attempt_at=now, created_at=now)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def retry(session: Session, delivery_id: int, *, now: datetime) -> WebhookDelivery:
    """Send a failed (or a delivered) webhook again, with all its attempts, from now."""
    row = require(session, WebhookDelivery, delivery_id, what="webhook delivery")
    if WebhookState.PENDING not in WEBHOOK_TRANSITIONS[row.state]:
        raise InvalidTransition(
            f"webhook delivery #{row.id} is already pending (next try at "
            f"{row.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
    # Conditional, as the worker's updates are: a row that moved meanwhile is left alone.
    moved = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == row.id, WebhookDelivery.state == row.state)
        .values(state=WebhookState.PENDING, attempts=0, next_attempt_at=now)
        .execution_options(synchronize_session=False, preserve_rowcount=True)
    )
    if not getattr(moved, "rowcount", 0):
        raise InvalidTransition(f"webhook delivery #{row.id} changed meanwhile; try again")
    session.refresh(row)
    return row


def masked(secret: str) -> str:
    """The secret as the admin shows it: enough to tell two apart, not to use one."""
    return f"{SECRET_PREFIX}…{secret[-4:]}"


@dataclass(frozen=True)
class Listed:
    """A subscription as the admin lists it, with its letters by state and the last one."""

    subscription: WebhookSubscription
    counts: dict[str, int]
    last: WebhookDelivery | None

    @property
    def secret(self) -> str:
        return masked(self.subscription.secret)


def subscriptions(session: Session) -> list[Listed]:
    """Every subscription, newest first (three queries, however many there are)."""
    subs = list(session.scalars(select(WebhookSubscription)
                                .order_by(WebhookSubscription.id.desc())))  # fmt: skip
    counts: dict[int, dict[str, int]] = {sub.id: {} for sub in subs}
    by_state = (select(WebhookDelivery.subscription_id, WebhookDelivery.state, func.count())
                .group_by(WebhookDelivery.subscription_id, WebhookDelivery.state))  # fmt: skip
    for sub_id, state, count in session.execute(by_state):
        counts[sub_id][state] = count
    newest = select(func.max(WebhookDelivery.id)).group_by(WebhookDelivery.subscription_id)
    newest_rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(newest)))
    last = {row.subscription_id: row for row in newest_rows}
    return [Listed(sub, counts[sub.id], last.get(sub.id)) for sub in subs]


def log(
    session: Session, subscription_id: int, *, state: WebhookState | None = None,
    before: int | None = None, limit: int = LOG_PAGE,
) -> list[WebhookDelivery]:  # fmt: skip
    """A subscription's letters, newest first; `before` an id pages back."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    return list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))
