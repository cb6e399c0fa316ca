"""Webhooks out: collected once per subscriber and event, signed, retried, given up."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from campaigns.audience import erasure
from campaigns.config import Webhooks
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling
from campaigns.embedded.services import free_port
from campaigns.errors import InvalidTransition
from campaigns.models import (
    Conversion,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    WebhookDelivery,
    WebhookState,
    WebhookType,
)
from campaigns.tracking import webhook_sender, webhooks
from campaigns.tracking.webhook_sender import SignatureInvalid
from tests.conftest import scheduler_once, wait_until
from tests.factories import make_contact, make_segment, make_version
from tests.tracking.receiver import Receiver, receiver

__all__ = ["receiver"]  # the fixture

# The receiver listens on loopback, which webhooks reach only when allowed.
CONFIG = Webhooks(seconds=1, max_attempts=3, timeout_seconds=5, allow_networks=("127.0.0.0/8",))
T = TypeVar("T")
SIX = {t.value for t in WebhookType if t != WebhookType.PING}


def subscribe(db: Database, url: str, *, at: datetime, **options: Any) -> tuple[int, str]:
    """A subscription made at `at`; its id and secret."""
    with db.unit_of_work() as s:
        sub, _made = webhooks.create_subscription(s, url, user_id=None, now=at, **options)
        return sub.id, sub.secret


def letter(db: Database, email: str = "ann@example.com") -> Delivery:
    """A campaign letter delivered to a new contact, about their contract."""
    with db.unit_of_work() as s:
        contact = make_contact(s, email)
        version = make_version(s, name=f"Offer to {email}")
        campaign = scheduling.create_campaign(s, f"Renewals {email}",
                                              segment_id=make_segment(s, email).id,
                                              letter_version_id=version.id)  # fmt: skip
        sent = Delivery(campaign_id=campaign.id, contact_id=contact.id, email=contact.email,
                        contract_id=contact.contracts[0].id, letter_version_id=version.id,
                        state=DeliveryState.SENT, sent_at=utcnow())  # fmt: skip
        s.add(sent)
        s.flush()
        return sent


def event(db: Database, sent: Delivery, kind: EventKind, *, at: datetime, **fields: Any) -> int:
    with db.unit_of_work() as s:
        row = Event(kind=kind, delivery_id=sent.id, contact_id=sent.contact_id, occurred_at=at,
                    **fields)  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def every_kind(db: Database, sent: Delivery, *, at: datetime) -> dict[str, str]:
    """One event of each kind webhooks tell (and some they do not), an organic conversion;
    the webhook `id` expected for each type."""
    offer = {"contract_id": sent.contract_id, "discount_code": "LOYALTY"}
    clicked = event(db, sent, EventKind.RENEWAL_CLICK, at=at, detail=offer)
    event(db, sent, EventKind.RENEWAL_CLICK, at=at, is_machine=True,
          detail={"contract_id": sent.contract_id, "machine": "links-together"})  # fmt: skip
    event(db, sent, EventKind.OPEN, at=at)
    event(db, sent, EventKind.CLICK, at=at)
    keys = {"renewal.clicked": f"event:{clicked}"}
    for kind, type_ in ((EventKind.ACKNOWLEDGMENT, "letter.acknowledged"),
                        (EventKind.UNSUBSCRIBE, "contact.unsubscribed"),
                        (EventKind.BOUNCE, "letter.bounced"),
                        (EventKind.COMPLAINT, "letter.complained")):  # fmt: skip
        keys[type_] = f"event:{event(db, sent, kind, at=at, detail={'source': 'test'})}"
    with db.unit_of_work() as s:
        renewal = Conversion(contract_id=sent.contract_id, term=1, delivery_id=None,
                             amount=Decimal("480"), currency="EUR", idempotency_key="crm-1",
                             source="api", occurred_at=at - timedelta(days=2),
                             recorded_at=at)  # fmt: skip
        s.add(renewal)
        s.flush()
        keys["conversion.recorded"] = f"conversion:{renewal.id}"
    return keys


def collect(db: Database, now: datetime) -> int:
    with db.unit_of_work() as s:
        return webhooks.collect(s, now=now)


def deliver(db: Database, now: datetime, config: Webhooks = CONFIG) -> webhook_sender.Sent:
    return webhook_sender.deliver_due(db, now=now, config=config)


def rows(db: Database) -> list[WebhookDelivery]:
    with db.unit_of_work() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def close(stamp: str, expected: datetime) -> bool:
    """Whether an ISO 8601 time from a payload (to the millisecond) is `expected`."""
    return abs(datetime.fromisoformat(stamp) - expected) <= timedelta(milliseconds=1)


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads that start together; their results (or the first error)."""
    start = threading.Barrier(len(calls))
    results: list[T] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], T]) -> None:
        start.wait()
        try:
            results.append(call())
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def received(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """The payloads the receiver got, each checked against its signature."""
    return [webhook_sender.verify(secret, r.body, r.headers) for r in receiver.requests]


def test_each_kind_reaches_each_subscriber_once_however_often_it_is_collected(
    db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    first, first_secret = subscribe(db, receiver.url + "/1", at=now - timedelta(hours=1))
    second, second_secret = subscribe(db, receiver.url + "/2", at=now - timedelta(hours=1))
    sent = letter(db)
    keys = every_kind(db, sent, at=now - timedelta(minutes=1))

    assert collect(db, now) == 12
    assert collect(db, now) == 0  # the same window again
    assert collect(db, now + timedelta(seconds=30)) == 0  # an overlapping one
    result = deliver(db, now + timedelta(seconds=30))
    assert (result.delivered, result.retrying, result.failed) == (12, 0, 0)
    assert deliver(db, now + timedelta(minutes=5)).delivered == 0

    by_path: dict[str, list[dict[str, Any]]] = {"/hooks/1": [], "/hooks/2": []}
    for request in receiver.requests:
        secret = first_secret if request.path == "/hooks/1" else second_secret
        by_path[request.path].append(webhook_sender.verify(secret, request.body, request.headers))
    for payloads in by_path.values():
        assert {p["type"]: p["id"] for p in payloads} == keys
        assert len(payloads) == 6
    typed = {p["type"]: p for p in by_path["/hooks/1"]}
    click = typed["renewal.clicked"]
    assert click["data"] == {
        "contact_id": sent.contact_id, "email": "ann@example.com",
        "contract_id": sent.contract_id, "delivery_id": sent.id,
        "campaign_id": sent.campaign_id, "automation_step_id": None,
        "detail": {"contract_id": sent.contract_id, "discount_code": "LOYALTY"},
    }  # fmt: skip
    assert click["occurred_at"].endswith("Z")
    assert close(click["occurred_at"], now - timedelta(minutes=1))
    renewal = typed["conversion.recorded"]
    assert renewal["data"] == {
        "contact_id": sent.contact_id, "email": "ann@example.com",
        "contract_id": sent.contract_id, "term": 1, "delivery_id": None, "campaign_id": None,
        "automation_step_id": None, "amount": "480.00", "currency": "EUR", "source": "api",
    }  # fmt: skip
    assert close(renewal["occurred_at"], now - timedelta(days=2, minutes=1))
    assert typed["letter.bounced"]["data"]["detail"] == {"source": "test"}
    assert {r.state for r in rows(db)} == {WebhookState.DELIVERED}
    assert {first, second} == {r.subscription_id for r in rows(db)}


def test_collectors_running_at_once_queue_each_webhook_once(
    db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    subscribe(db, receiver.url, at=now - timedelta(hours=1))
    subscribe(db, receiver.url, at=now - timedelta(hours=1))
    every_kind(db, letter(db), at=now - timedelta(minutes=1))
    added = at_once(*(lambda n=n: collect(db, now + timedelta(seconds=20 * n))
                      for n in range(4)))  # fmt: skip
    assert sum(added) == 12
    assert len({(r.subscription_id, r.event_key) for r in rows(db)}) == len(rows(db)) == 12


def test_only_what_a_subscriber_chose_and_nothing_from_before_it_subscribed(
    db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    sent = letter(db)
    event(db, sent, EventKind.UNSUBSCRIBE, at=now - timedelta(hours=2))  # before: never sent
    subscribe(db, receiver.url, at=now - timedelta(hours=1),
              kinds=["letter.bounced", "conversion.recorded"])  # fmt: skip
    keys = every_kind(db, sent, at=now - timedelta(minutes=1))
    collect(db, now)
    assert [r.event_key for r in rows(db)] == [keys["letter.bounced"],
                                               keys["conversion.recorded"]]  # fmt: skip


def test_machine_renewal_clicks_are_not_sent(db: Database, receiver: Receiver) -> None:
    now = utcnow()
    subscribe(db, receiver.url, at=now - timedelta(hours=1))
    sent = letter(db)
    event(db, sent, EventKind.RENEWAL_CLICK, at=now - timedelta(minutes=1), is_machine=True,
          detail={"contract_id": sent.contract_id, "machine": "scanner"})  # fmt: skip
    person = event(db, sent, EventKind.RENEWAL_CLICK, at=now - timedelta(minutes=1))
    collect(db, now)
    assert [r.event_key for r in rows(db)] == [f"event:{person}"]


def test_an_event_committed_late_is_still_collected_and_a_young_one_waits(
    db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    subscribe(db, receiver.url, at=now - timedelta(hours=1))
    sent = letter(db)
    young = event(db, sent, EventKind.BOUNCE, at=now - timedelta(seconds=1))
    assert collect(db, now) == 0  # younger than SETTLE: a scanner may yet be found out
    # Stamped before the last run's cursor, committed after it: within the lag.
    late = event(db, sent, EventKind.COMPLAINT, at=now - timedelta(seconds=30))
    assert collect(db, now + timedelta(seconds=10)) == 2
    assert {r.event_key for r in rows(db)} == {f"event:{young}", f"event:{late}"}


def test_a_disabled_subscription_gets_nothing(db: Database, receiver: Receiver) -> None:
    now = utcnow()
    off, _ = subscribe(db, receiver.url + "/off", at=now - timedelta(hours=1))
    subscribe(db, receiver.url + "/on", at=now - timedelta(hours=1))
    with db.unit_of_work() as s:
        webhooks.disable(s, off)
    every_kind(db, letter(db), at=now - timedelta(minutes=1))
    collect(db, now)
    deliver(db, now)
    assert {r.path for r in receiver.requests} == {"/hooks/on"}
    assert len(receiver.requests) == 6
    # Enabled again: from then on, without what happened while it was off.
    with db.unit_of_work() as s:
        webhooks.enable(s, off, now=now)
    collect(db, now + timedelta(minutes=1))
    assert [r for r in rows(db) if r.subscription_id == off] == []


def test_a_failing_subscriber_is_tried_again_with_back_off_then_delivered(
    db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    _, secret = subscribe(db, receiver.url, at=now - timedelta(hours=1))
    event(db, letter(db), EventKind.BOUNCE, at=now - timedelta(minutes=1))
    collect(db, now)
    receiver.fail = 1

    assert deliver(db, now).retrying == 1
    (row,) = rows(db)
    assert (row.state, row.attempts, row.last_status) == (WebhookState.PENDING, 1, 500)
    assert row.last_error == "database is down"
    waited = row.next_attempt_at - now
    assert timedelta(minutes=1) <= waited < timedelta(minutes=1, seconds=5)
    assert deliver(db, now + timedelta(seconds=50)).delivered == 0  # not yet due
    assert len(receiver.requests) == 1

    assert deliver(db, now + timedelta(minutes=1, seconds=5)).delivered == 1
    assert abs(int(receiver.requests[1].headers["webhook-timestamp"]) - time.time()) < 5
    (row,) = rows(db)
    assert (row.state, row.attempts, row.last_status, row.last_error) == (
        WebhookState.DELIVERED, 2, 200, "")  # fmt: skip
    first, again = received(receiver, secret)
    assert first == again  # the same webhook, with the same id
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]


def test_a_subscriber_that_always_fails_is_given_up_after_the_last_attempt(
    db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    subscribe(db, receiver.url, at=now - timedelta(hours=1))
    sent = letter(db)
    for kind in (EventKind.BOUNCE, EventKind.COMPLAINT):
        event(db, sent, kind, at=now - timedelta(minutes=1))
    collect(db, now)
    receiver.fail = -1
    at = now
    for attempt in range(1, CONFIG.max_attempts + 1):
        result = deliver(db, at)
        if attempt < CONFIG.max_attempts:
            assert result.retrying == 2
            assert {r.next_attempt_at - at >= webhook_sender.backoff(attempt)
                    for r in rows(db)} == {True}  # fmt: skip
            assert webhook_sender.backoff(attempt) == timedelta(minutes=2 ** (attempt - 1))
        at = max(r.next_attempt_at for r in rows(db)) + timedelta(seconds=1)
    assert result.failed == 2
    assert {(r.state, r.attempts, r.last_status) for r in rows(db)} == {
        (WebhookState.FAILED, CONFIG.max_attempts, 500)}  # fmt: skip
    # One request per attempt, not one per row: the second row shares the first's answer.
    assert len(receiver.requests) == CONFIG.max_attempts
    assert [r.last_error for r in rows(db)] == [
        "database is down", "not tried: the subscriber just gave another webhook 500 database "
        "is down"]  # fmt: skip
    assert deliver(db, at + timedelta(days=1)).failed == 0

    # An admin sends one again: all its attempts, from now.
    receiver.fail = 0
    with db.unit_of_work() as s:
        again = webhooks.retry(s, rows(db)[0].id, now=at)
        assert (again.state, again.attempts) == (WebhookState.PENDING, 0)
        with pytest.raises(InvalidTransition):
            webhooks.retry(s, again.id, now=at)
    assert deliver(db, at).delivered == 1


def test_back_off_doubles_up_to_an_hour() -> None:
    assert [webhook_sender.backoff(n).total_seconds() / 60 for n in range(1, 10)] == [
        1, 2, 4, 8, 16, 32, 60, 60, 60]  # fmt: skip


def test_a_redirect_is_not_followed(db: Database, receiver: Receiver) -> None:
    now = utcnow()
    receiver.redirect = "http://169.254.169.254/latest/meta-data/"
    subscribe(db, receiver.url, at=now - timedelta(hours=1))
    event(db, letter(db), EventKind.BOUNCE, at=now - timedelta(minutes=1))
    collect(db, now)
    assert deliver(db, now).retrying == 1
    (row,) = rows(db)
    assert row.last_status == 302
    assert "redirects are not followed" in row.last_error
    assert len(receiver.requests) == 1


def test_no_answer_is_an_error_kept_with_the_row(db: Database) -> None:
    now = utcnow()
    subscribe(db, f"http://127.0.0.1:{free_port()}/nobody-listens", at=now - timedelta(hours=1))
    event(db, letter(db), EventKind.BOUNCE, at=now - timedelta(minutes=1))
    collect(db, now)
    assert deliver(db, now).retrying == 1
    (row,) = rows(db)
    assert row.last_status is None and "refused" in row.last_error.lower()


def test_a_signed_webhook_verifies_and_a_changed_one_does_not(
    db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    sub_id, secret = subscribe(db, receiver.url, at=now)
    with db.unit_of_work() as s:
        webhooks.send_test(s, sub_id, now=now)
    deliver(db, now)
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,")
    payload = webhook_sender.verify(secret, request.body, request.headers)
    assert payload["type"] == "ping" and payload["id"] == request.headers["webhook-id"]
    assert payload["data"] == {"subscription_id": sub_id}

    changed = request.body.replace(b'"ping"', b'"pong"')
    with pytest.raises(SignatureInvalid):
        webhook_sender.verify(secret, changed, request.headers)
    for header, value in (("webhook-id", "ping:other"), ("webhook-timestamp", "1700000000")):
        with pytest.raises(SignatureInvalid):
            webhook_sender.verify(secret, request.body, request.headers | {header: value})
    with pytest.raises(SignatureInvalid):
        webhook_sender.verify(webhooks.new_secret(), request.body, request.headers)
    # Standard Webhooks, by hand: base64 HMAC-SHA256 of "{id}.{timestamp}.{body}".
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}."
    digest = hmac.new(key, signed.encode() + request.body, hashlib.sha256).digest()
    assert request.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert json.loads(request.body) == payload


def test_a_subscription_names_each_refused_field(db: Database) -> None:
    with db.unit_of_work() as s, pytest.raises(webhooks.SubscriptionRefused) as refused:
        webhooks.create_subscription(s, "file:///etc/passwd", secret="short", kinds=[],
                                     user_id=None, now=utcnow())  # fmt: skip
    assert set(refused.value.errors) == {"url", "secret", "kinds"}
    assert "https://" in refused.value.errors["url"]
    for url in ("ftp://example.com/", "https://user:pw@example.com/", "http:///x",
                "https://example.com:99999/", "https://exa mple.com/"):  # fmt: skip
        with pytest.raises(ValueError):
            webhooks.check_url(url)
    with db.unit_of_work() as s:
        sub, made = webhooks.create_subscription(s, " https://crm.example.com/hooks ",
                                                 user_id=None, now=utcnow())  # fmt: skip
        assert made == sub.secret and made.startswith("whsec_")
        assert set(sub.kinds) == SIX
        assert webhooks.masked(made) == "whsec_…" + made[-4:]
        given, shown = webhooks.create_subscription(s, "http://10.0.0.5/in", secret=made,
                                                    kinds=["letter.bounced"], user_id=None,
                                                    now=utcnow())  # fmt: skip
        assert (given.secret, shown, given.kinds) == (made, "", ["letter.bounced"])


def test_two_workers_never_post_the_same_row(db: Database, receiver: Receiver) -> None:
    now = utcnow()
    subscribe(db, receiver.url, at=now - timedelta(hours=1))
    sent = letter(db)
    for _ in range(30):
        event(db, sent, EventKind.UNSUBSCRIBE, at=now - timedelta(minutes=1))
    collect(db, now)
    results = at_once(*[lambda: webhook_sender.deliver_due(db, now=now, config=CONFIG,
                                                            batch=4)] * 3)  # fmt: skip
    assert sum(r.delivered for r in results) == 30
    ids = [json.loads(body)["id"] for body in receiver.bodies()]
    assert len(ids) == len(set(ids)) == 30


def test_settings_read_from_the_environment() -> None:
    from campaigns.config import Settings

    config = Settings.from_env({"WEBHOOK_MAX_ATTEMPTS": "5", "WEBHOOK_TIMEOUT_SECONDS": "3",
                                "WEBHOOK_SECONDS": "30"}).webhooks  # fmt: skip
    assert config == replace(Webhooks(), max_attempts=5, timeout_seconds=3.0, seconds=30.0)


def test_the_scheduler_has_a_worker_collect_and_send_webhooks(
    db: Database, env: dict[str, str], worker: object, receiver: Receiver
) -> None:
    now = utcnow()
    _, secret = subscribe(db, receiver.url, at=now - timedelta(hours=1))
    complained = event(db, letter(db), EventKind.COMPLAINT, at=now - timedelta(seconds=30))
    scheduler_once(env)
    wait_until(lambda: receiver.requests, timeout=30, what="the webhook")
    (payload,) = received(receiver, secret)
    assert (payload["type"], payload["id"]) == ("letter.complained", f"event:{complained}")
    wait_until(lambda: rows(db)[0].state == WebhookState.DELIVERED, what="the log to say so")


def test_an_erased_contact_is_not_named_by_the_webhooks_kept(
    db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    subscribe(db, receiver.url, at=now - timedelta(hours=1))
    sent = letter(db)
    every_kind(db, sent, at=now - timedelta(minutes=1))
    other = letter(db, "bob@example.com")
    event(db, other, EventKind.BOUNCE, at=now - timedelta(minutes=1),
          detail={"recipient": "bob@example.com"})  # fmt: skip
    collect(db, now)
    with db.unit_of_work() as s:
        erasure.erase_contact(s, sent.contact_id)
    kept = [r.payload for r in rows(db)]
    assert "ann@example.com" not in json.dumps(kept)
    ann = [p["data"] for p in kept if p["data"]["contact_id"] == sent.contact_id]
    assert len(ann) == 6 and {d["email"] for d in ann} == {
        erasure.placeholder_email(sent.contact_id)
    }
    assert all(d.get("detail", {}) == {} for d in ann)
    assert "bob@example.com" in json.dumps(kept)  # the others' are left as they were
