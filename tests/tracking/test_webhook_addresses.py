"""Webhooks go to public addresses only, unless WEBHOOK_ALLOW_NETWORKS names a network; the
address checked is the address connected to. Old log rows are pruned."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest

from campaigns.config import Settings, Webhooks
from campaigns.db import Database, utcnow
from campaigns.errors import ConfigError
from campaigns.models import WebhookDelivery, WebhookState
from campaigns.tracking import webhook_sender, webhooks
from tests.tracking.receiver import Receiver, receiver
from tests.tracking.test_webhooks import rows

__all__ = ["receiver"]  # the fixture

ONCE = Webhooks(max_attempts=1, timeout_seconds=5)
LOOPBACK = ("127.0.0.0/8",)


def _ping(db: Database, url: str) -> None:
    with db.unit_of_work() as s:
        sub, _ = webhooks.create_subscription(s, url, user_id=None, now=utcnow())
        webhooks.send_test(s, sub.id, now=utcnow())


def _resolving(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    """DNS that answers `address` for `name` (a public name cannot be pointed anywhere here)."""
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real(address if host == name else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_a_webhook_to_a_loopback_address_is_refused_unless_allowed(
    db: Database, receiver: Receiver
) -> None:
    _ping(db, receiver.url)
    assert webhook_sender.deliver_due(db, now=utcnow(), config=ONCE).failed == 1
    (row,) = rows(db)
    assert (row.state, row.last_status) == (WebhookState.FAILED, None)
    assert "127.0.0.1 is a local or private address" in row.last_error
    assert "WEBHOOK_ALLOW_NETWORKS" in row.last_error
    assert receiver.requests == []


def test_a_name_that_resolves_to_the_cloud_metadata_address_is_never_connected_to(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _resolving(monkeypatch, "crm.example.com", "169.254.169.254")
    _ping(db, "http://crm.example.com/hooks")
    assert webhook_sender.deliver_due(db, now=utcnow(), config=ONCE).failed == 1
    assert rows(db)[0].last_error == (
        "crm.example.com is at 169.254.169.254, which is a local or private address: webhooks "
        "go to public addresses only, unless WEBHOOK_ALLOW_NETWORKS names its network"
    )


def test_an_allowed_network_gets_its_webhook_at_the_address_checked(
    db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name is resolved once, to loopback, and the post goes there with the name as Host.
    _resolving(monkeypatch, "hooks.example.com", "127.0.0.1")
    _ping(db, receiver.url.replace("127.0.0.1", "hooks.example.com"))
    allowed = Webhooks(max_attempts=1, timeout_seconds=5, allow_networks=LOOPBACK)
    assert webhook_sender.deliver_due(db, now=utcnow(), config=allowed).delivered == 1
    (request,) = receiver.requests
    assert request.headers["host"].startswith("hooks.example.com:")


def test_the_admin_refuses_a_local_or_private_address_when_it_is_typed(db: Database) -> None:
    for url in (
        "http://10.0.0.5/in",
        "http://localhost:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://0.0.0.0/",
    ):
        with pytest.raises(ValueError, match="local or private address"):
            webhooks.check_url(url, ())
    assert webhooks.check_url("http://10.0.0.5/in", ("10.0.0.0/8",)) == "http://10.0.0.5/in"
    assert webhooks.check_url("https://93.184.215.14/hooks", ()) == "https://93.184.215.14/hooks"
    assert webhooks.check_url("https://crm.example.com/x", ()) == "https://crm.example.com/x"
    with db.unit_of_work() as s, pytest.raises(webhooks.SubscriptionRefused) as refused:
        webhooks.create_subscription(s, "http://192.168.1.20/hooks", user_id=None,
                                     now=utcnow(), allow=())  # fmt: skip
    assert "192.168.1.20 is a local or private address" in refused.value.errors["url"]


def test_the_allowed_networks_are_read_from_the_environment() -> None:
    read = Settings.from_env({"WEBHOOK_ALLOW_NETWORKS": "10.20.0.0/16, 192.0.2.7,fd00::/8"})
    assert read.webhooks.allow_networks == ("10.20.0.0/16", "192.0.2.7/32", "fd00::/8")
    assert Settings.from_env({}).webhooks.allow_networks == ()
    with pytest.raises(ConfigError, match="'10.0.0.300' is not a network"):
        Settings.from_env({"WEBHOOK_ALLOW_NETWORKS": "10.0.0.300"})


def test_delivered_and_failed_webhooks_leave_the_log_after_the_days_kept(
    db: Database,
) -> None:
    now = utcnow()
    with db.unit_of_work() as s:
        sub, _ = webhooks.create_subscription(s, "https://crm.example.com/h", user_id=None,
                                              now=now - timedelta(days=60))  # fmt: skip
        for n, (state, age) in enumerate([(WebhookState.DELIVERED, 31), (WebhookState.FAILED, 40),
                                          (WebhookState.DELIVERED, 29),
                                          (WebhookState.PENDING, 45)]):  # fmt: skip
            s.add(WebhookDelivery(subscription_id=sub.id, event_key=f"e{n}", type="ping",
                                  payload={}, state=state,
                                  next_attempt_at=now - timedelta(days=age)))  # fmt: skip
    with db.unit_of_work() as s:
        assert webhook_sender.prune(s, now=now, keep_days=30) == 2
    assert [r.event_key for r in rows(db)] == ["e2", "e3"]
