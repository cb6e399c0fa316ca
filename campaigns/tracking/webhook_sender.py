"""Webhooks out, sent: signed (Standard Webhooks), posted, retried with back-off.

`deliver_due` claims due pending webhooks in small batches with one UPDATE (the claim adds
an attempt and holds the row until the claim's time runs out, so two workers never post the
same row, and a worker that dies mid-batch leaves rows that come due again by themselves),
posts each with no transaction open, and records the answer: 2xx delivered; anything
else, or no answer, a try again after 1, 2, 4 … minutes (at most an hour) until
`max_attempts`, then failed with the last status or error. Redirects are not followed, and
a connection goes only to the public address the host name was resolved to (or to the
networks WEBHOOK_ALLOW_NETWORKS names), checked at each post so that a name changed to point
inside cannot reach the product's own network. The format and how to verify it:
docs/webhooks.md.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook, WebhookVerificationError

from campaigns.config import Webhooks
from campaigns.db import Database, utcnow
from campaigns.errors import CampaignsError
from campaigns.models import WebhookDelivery, WebhookState, WebhookSubscription
from campaigns.tracking.webhooks import address_allowed, check_url, refusal

log = logging.getLogger(__name__)

BATCH = 20
MAX_BACKOFF = timedelta(hours=1)
USER_AGENT = "campaigns-webhooks/1"
ERROR_LIMIT = 500  # characters of the subscriber's answer or of the error kept


class SignatureInvalid(CampaignsError):
    """A webhook's signature or timestamp does not verify: it is forged, changed or stale."""


def sign(secret: str, msg_id: str, body: str, *, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for `body`: `webhook-signature` is `v1,` and the
    base64 HMAC-SHA256, keyed with the secret's bytes, of "{id}.{timestamp}.{body}"."""
    signature = Webhook(secret).sign(msg_id, at, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature}  # fmt: skip


def verify(secret: str, body: bytes | str, headers: dict[str, str]) -> Any:
    """Check a webhook as a subscriber would; return its JSON, or raise SignatureInvalid
    (also when its timestamp is more than five minutes from this machine's clock)."""
    try:
        return Webhook(secret).verify(body, headers)
    except (WebhookVerificationError, ValueError) as exc:
        raise SignatureInvalid(str(exc) or "the signature does not verify") from None


@dataclass(frozen=True)
class Answer:
    """What a subscriber answered: its HTTP status (None if none came) and why it failed."""

    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def subscriber_down(self) -> bool:
        """Whether its other webhooks are better not tried in this run: no answer, or busy."""
        return self.status is None or self.status >= 500 or self.status == 429


class Post(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str], *, timeout: float,
                 allow: tuple[str, ...]) -> Answer: ...  # fmt: skip


class AddressRefused(OSError):
    """The subscriber's host resolves to an address webhooks may not go to."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx


def _connector(allow: tuple[str, ...]) -> Any:
    """`socket.create_connection` that resolves the host once, refuses it when any of its
    addresses is not allowed, and connects to the very addresses it checked."""

    def connect(address: tuple[str, int], timeout: Any = None,
                source_address: Any = None) -> socket.socket:  # fmt: skip
        host, port = address
        found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        for *_, sockaddr in found:
            if not address_allowed(str(sockaddr[0]), allow):
                raise AddressRefused(refusal(host, str(sockaddr[0])))
        error: OSError | None = None
        for *_, sockaddr in found:
            try:
                return socket.create_connection((str(sockaddr[0]), port), timeout,
                                                source_address)  # fmt: skip
            except OSError as exc:
                error = exc
        raise error or OSError(f"{host} has no address")

    return connect


@functools.cache
def _opener(allow: tuple[str, ...]) -> urllib.request.OpenerDirector:
    """An opener that follows no redirect and connects only to allowed addresses (TLS
    still checks the certificate against the host name)."""
    connect = _connector(allow)

    class Plain(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class Secure(http.client.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class PlainHandler(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(Plain, req)

    class SecureHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(Secure, req, context=self._context)  # type: ignore[attr-defined]

    # Through a proxy (HTTPS_PROXY …) the address checked is the proxy's: its network must
    # be allowed, and the proxy then decides where webhooks may go.
    return urllib.request.build_opener(_NoRedirects, PlainHandler, SecureHandler)


def post_with_urllib(url: str, body: bytes, headers: dict[str, str], *, timeout: float,
                     allow: tuple[str, ...] = ()) -> Answer:  # fmt: skip
    """POST with the standard library; `timeout` bounds the connection and each read."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener(allow).open(request, timeout=timeout) as answer:
            return Answer(answer.status)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "")
            return Answer(exc.code, f"redirected to {where[:200]}; redirects are not followed: "
                                    "give the webhook its final URL")  # fmt: skip
        said = exc.read(ERROR_LIMIT).decode("utf-8", "replace")
        return Answer(exc.code, said.strip() or str(exc.reason))
    except urllib.error.URLError as exc:
        return Answer(None, str(exc.reason))
    except AddressRefused as exc:
        return Answer(None, str(exc))
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, str(exc) or type(exc).__name__)


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 1, 2, 4 … minutes, at most an hour."""
    return min(timedelta(minutes=2 ** max(0, attempts - 1)), MAX_BACKOFF)


@dataclass
class Sent:
    """What a run of `deliver_due` did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    lost: list[int] = field(default_factory=list)  # rows taken from this worker meanwhile


@dataclass(frozen=True)
class Claimed:
    id: int
    event_key: str
    payload: dict[str, Any]
    attempts: int
    subscription_id: int
    url: str
    secret: str


def claim(session: Session, *, now: datetime, hold: timedelta, limit: int = BATCH) -> list[Claimed]:
    """Take up to `limit` due webhooks of active subscribers for this worker, oldest first:
    one more attempt each, held till `now + hold`."""
    due = (
        select(WebhookDelivery.id)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.state == WebhookState.PENDING,
               WebhookDelivery.next_attempt_at <= now, WebhookSubscription.active)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)  # PostgreSQL; SQLite: one writer
    )  # fmt: skip
    won = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(due.scalar_subquery()),
               WebhookDelivery.state == WebhookState.PENDING,
               WebhookDelivery.next_attempt_at <= now)
        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + hold)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()  # fmt: skip
    if not won:
        return []
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.event_key, WebhookDelivery.payload,
               WebhookDelivery.attempts, WebhookDelivery.subscription_id,
               WebhookSubscription.url, WebhookSubscription.secret)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.id.in_(won))
        .order_by(WebhookDelivery.id)
    )  # fmt: skip
    return [Claimed(*row) for row in rows]


def body_of(payload: dict[str, Any]) -> str:
    """The JSON posted: `id`, `type`, `occurred_at`, `data` in that order, compact."""
    first = {k: payload[k] for k in ("id", "type", "occurred_at") if k in payload}
    ordered = first | {k: v for k, v in sorted(payload.items()) if k not in first}
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False, sort_keys=False)


def deliver_due(
    database: Database, *, now: datetime, config: Webhooks, post: Post = post_with_urllib,
    budget_seconds: float = 60.0, batch: int = BATCH,
) -> Sent:  # fmt: skip
    """Send due webhooks in batches until none is due or `budget_seconds` have passed.

    `now` is the time they are due by; the times recorded run on from it (tests pass one).
    Signatures carry the real time.
    A subscriber that does not answer, or answers 5xx or 429, is not tried again in the
    same batch: its other webhooks there count the same failed attempt.
    """
    started = time.monotonic()

    def clock() -> datetime:
        return now + timedelta(seconds=time.monotonic() - started)

    hold = timedelta(seconds=config.timeout_seconds * (batch + 1) + 60)
    sent = Sent()
    while time.monotonic() - started < budget_seconds:
        with database.unit_of_work() as session:
            claimed = claim(session, now=clock(), hold=hold, limit=batch)
        if not claimed:
            break
        down: dict[int, Answer] = {}
        for row in claimed:
            earlier = down.get(row.subscription_id)
            answer = _not_tried(earlier) if earlier else _send(row, post, config)
            if answer.subscriber_down:
                down.setdefault(row.subscription_id, answer)
            _record(database, row, answer, config=config, at=clock(), sent=sent)
    return sent


def _send(row: Claimed, post: Post, config: Webhooks) -> Answer:
    try:
        url = check_url(row.url, config.allow_networks)
    except ValueError as exc:  # changed in the database by hand, or the networks allowed
        return Answer(None, f"the URL {exc}")
    body = body_of(row.payload)
    # Signed at the real time of sending: subscribers check it against their clocks.
    headers = sign(row.secret, row.event_key, body, at=utcnow())
    headers |= {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    return post(
        url, body.encode(), headers, timeout=config.timeout_seconds, allow=config.allow_networks
    )


def prune(session: Session, *, now: datetime, keep_days: int) -> int:
    """Remove delivered and failed webhooks last tried more than `keep_days` ago from the
    log; return how many. (Their events are not collected again: collecting looks back
    minutes, not days.)"""
    result = session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.state.in_((WebhookState.DELIVERED, WebhookState.FAILED)),
               WebhookDelivery.next_attempt_at < now - timedelta(days=keep_days))
        .execution_options(synchronize_session=False, preserve_rowcount=True)
    )  # fmt: skip
    return max(0, int(getattr(result, "rowcount", 0) or 0))


def _not_tried(earlier: Answer) -> Answer:
    said = f"{earlier.status} " if earlier.status else ""
    return Answer(earlier.status, "not tried: the subscriber just gave another webhook "
                                  f"{said}{earlier.error}"[:ERROR_LIMIT])  # fmt: skip


def _record(
    database: Database, row: Claimed, answer: Answer, *, config: Webhooks, at: datetime,
    sent: Sent,
) -> None:  # fmt: skip
    """Record the answer, if the row is still this worker's (its attempts unchanged)."""
    values: dict[str, Any] = {
        "last_status": answer.status,
        "last_error": answer.error[:ERROR_LIMIT],
    }
    if answer.ok:
        values |= {"state": WebhookState.DELIVERED, "delivered_at": at, "last_error": ""}
    elif row.attempts >= config.max_attempts:
        values |= {"state": WebhookState.FAILED}
    else:
        values |= {"next_attempt_at": at + backoff(row.attempts)}
    with database.unit_of_work() as session:
        result = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row.id, WebhookDelivery.state == WebhookState.PENDING,
                   WebhookDelivery.attempts == row.attempts)
            .values(**values)
            .execution_options(synchronize_session=False, preserve_rowcount=True)
        )  # fmt: skip
    if not getattr(result, "rowcount", 0):
        sent.lost.append(row.id)
    elif answer.ok:
        sent.delivered += 1
    elif values.get("state") == WebhookState.FAILED:
        sent.failed += 1
        log.warning("webhook %s to %s failed after %d attempts: %s %s", row.event_key,
                    row.url, row.attempts, answer.status, answer.error[:200])  # fmt: skip
    else:
        sent.retrying += 1
