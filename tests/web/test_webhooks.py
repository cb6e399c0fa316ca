"""The webhooks page: subscribe, refuse with reasons, test, read the log, send again."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.config import Webhooks
from campaigns.db import Database, utcnow
from campaigns.models import AuditEntry, EventKind, Role, WebhookDelivery, WebhookSubscription
from campaigns.tracking import webhook_sender, webhooks
from tests.tracking.receiver import Receiver, receiver
from tests.tracking.test_webhooks import collect, event, letter
from tests.web.conftest import app, csrf_token, login

__all__ = ["app", "receiver"]  # fixtures

ONE_TRY = Webhooks(max_attempts=1, timeout_seconds=5, allow_networks=("127.0.0.0/8",))


def admin(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    login(client, Role.ADMIN)
    return client, csrf_token(client, "/webhooks")


def page(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.status_code
    return answer.get_data(as_text=True)


def test_an_admin_subscribes_a_url_and_sees_its_secret_once(app: Flask, db: Database) -> None:
    client, token = admin(app)
    answer = client.post("/webhooks", data={
        "url": "https://crm.example.com/hooks", "secret": "", "csrf_token": token,
        "kinds": ["renewal.clicked", "conversion.recorded"]})  # fmt: skip
    assert answer.status_code == 200
    shown = re.search(r'id="new-secret">(whsec_[^<]+)<', answer.get_data(as_text=True))
    assert shown, "the secret made is shown once"
    assert shown.group(1) not in (answer.headers.get("Set-Cookie") or "")
    with db.unit_of_work() as s:
        sub = s.scalars(select(WebhookSubscription)).one()
        assert (sub.url, sub.secret, sub.kinds, sub.active) == (
            "https://crm.example.com/hooks", shown.group(1),
            ["renewal.clicked", "conversion.recorded"], True)  # fmt: skip
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "webhook.create")).one()
        assert (entry.target_id, entry.detail["url"]) == (sub.id, sub.url)
    listing = page(client, "/webhooks")
    assert "https://crm.example.com/hooks" in listing
    assert shown.group(1) not in listing and f"whsec_…{shown.group(1)[-4:]}" in listing


def test_a_refused_form_names_each_field_and_keeps_what_was_typed(app: Flask, db: Database) -> None:
    client, token = admin(app)
    typed = {"url": "ftp://crm.example.com/in", "secret": "whsec_short", "csrf_token": token}
    answer = client.post("/webhooks", data=typed)
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert 'value="ftp://crm.example.com/in"' in html and 'value="whsec_short"' in html
    for name, words in (("url", "must start with https://"), ("secret", "24 to 64 random bytes"),
                        ("kinds", "choose at least one")):  # fmt: skip
        assert re.search(rf'id="{name}-error"[^>]*>[^<]*{re.escape(words)}', html), name
    assert 'name="kinds" value="renewal.clicked" >' in html  # left unticked, as sent
    with db.unit_of_work() as s:
        assert s.scalars(select(WebhookSubscription)).all() == []


def test_a_test_goes_out_and_the_log_shows_it_delivered(
    app: Flask, db: Database, receiver: Receiver
) -> None:
    with db.unit_of_work() as s:
        sub, secret = webhooks.create_subscription(s, receiver.url, user_id=None, now=utcnow())
    client, token = admin(app)
    answer = client.post(f"/webhooks/{sub.id}/test", data={"csrf_token": token})
    assert answer.status_code == 302
    assert "A test (ping)" in page(client, f"/webhooks/{sub.id}")
    assert webhook_sender.deliver_due(db, now=utcnow(), config=ONE_TRY).delivered == 1
    (request,) = receiver.requests
    assert webhook_sender.verify(secret, request.body, request.headers)["type"] == "ping"
    log = page(client, f"/webhooks/{sub.id}")
    assert re.search(r"<td>ping</td>.*?badge-sent\">delivered<", log, re.S)
    assert "200" in log
    assert "delivered" in page(client, "/webhooks")  # the last webhook, on the list


def test_a_failed_webhook_is_shown_with_its_error_and_sent_again(
    app: Flask, db: Database, receiver: Receiver
) -> None:
    now = utcnow()
    with db.unit_of_work() as s:
        sub, _ = webhooks.create_subscription(s, receiver.url, user_id=None,
                                              now=now - timedelta(hours=1))  # fmt: skip
    event(db, letter(db), EventKind.BOUNCE, at=now - timedelta(minutes=1))
    collect(db, now)
    receiver.fail = 1
    assert webhook_sender.deliver_due(db, now=now, config=ONE_TRY).failed == 1
    client, token = admin(app)
    failed = page(client, f"/webhooks/{sub.id}?state=failed")
    assert "letter.bounced" in failed and "500 — database is down" in failed
    assert "Nothing sent yet" not in failed
    assert "No delivered webhooks." in page(client, f"/webhooks/{sub.id}?state=delivered")
    with db.unit_of_work() as s:
        row_id = s.scalars(select(WebhookDelivery.id)).one()
    retry = re.search(r'action="(/webhooks/deliveries/\d+/retry)"', failed)
    assert retry and retry.group(1) == f"/webhooks/deliveries/{row_id}/retry"

    assert client.post(retry.group(1), data={"csrf_token": token}).status_code == 302
    assert "pending" in page(client, f"/webhooks/{sub.id}?state=pending")
    # A second click while it waits: refused, with the reason.
    client.post(retry.group(1), data={"csrf_token": token})
    assert "already pending" in page(client, "/webhooks")
    assert webhook_sender.deliver_due(db, now=utcnow(), config=ONE_TRY).delivered == 1
    assert len(receiver.requests) == 2
    with db.unit_of_work() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target_id == row_id))
        assert list(actions) == ["webhook.retry"]


def test_disable_enable_and_delete(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        sub, _ = webhooks.create_subscription(s, "https://crm.example.com/hooks", user_id=None,
                                              now=utcnow())  # fmt: skip
    client, token = admin(app)
    client.post(f"/webhooks/{sub.id}/disable", data={"csrf_token": token})
    assert 'badge-paused">disabled' in page(client, f"/webhooks/{sub.id}")
    client.post(f"/webhooks/{sub.id}/test", data={"csrf_token": token})
    assert "enable it to send a test" in page(client, f"/webhooks/{sub.id}")
    client.post(f"/webhooks/{sub.id}/enable", data={"csrf_token": token})
    assert 'badge-active">active' in page(client, f"/webhooks/{sub.id}")
    answer = client.post(f"/webhooks/{sub.id}/delete", data={"csrf_token": token})
    assert answer.headers["Location"].endswith("/webhooks")
    assert "No webhooks yet." in page(client, "/webhooks")
    assert client.get(f"/webhooks/{sub.id}").status_code == 404
    with db.unit_of_work() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "webhook")
                            .order_by(AuditEntry.id))  # fmt: skip
        assert list(actions) == ["webhook.disable", "webhook.enable", "webhook.delete"]


def test_only_admins_manage_webhooks_and_every_form_needs_its_token(app: Flask) -> None:
    editor = app.test_client()
    login(editor, Role.EDITOR)
    assert editor.get("/webhooks").status_code == 403
    client, _token = admin(app)
    assert "Webhooks</a>" in page(client, "/")  # in the navigation
    refused = client.post("/webhooks", data={"url": "https://crm.example.com/hooks"})
    assert refused.status_code == 400
    assert "No webhooks yet." in page(client, "/webhooks")


def test_the_form_refuses_an_internal_address_and_names_the_networks_let_in(
    app: Flask, db: Database
) -> None:
    """The app's settings let 127.0.0.0/8 in (the tests' receivers); 10.0.0.5 is refused."""
    client, token = admin(app)
    assert "<code>127.0.0.0/8</code> (<code>WEBHOOK_ALLOW_NETWORKS</code>)" in page(
        client, "/webhooks"
    )
    answer = client.post(
        "/webhooks",
        data={
            "url": "http://10.0.0.5/hooks",
            "secret": "",
            "kinds": ["letter.bounced"],
            "csrf_token": token,
        },
    )
    assert answer.status_code == 400
    assert re.search(r'id="url-error"[^>]*>[^<]*10\.0\.0\.5 is a local or private address',
                     answer.get_data(as_text=True))  # fmt: skip
    with db.unit_of_work() as s:
        assert s.scalars(select(WebhookSubscription)).all() == []
