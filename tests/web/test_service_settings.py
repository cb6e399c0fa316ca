"""Settings → Service: everyone logged in reads it, admins change it; a refused form keeps
what was typed and says which field and what to do."""

from __future__ import annotations

import html
import re

from flask import Flask
from flask.testing import FlaskClient

from campaigns.db import Database
from campaigns.models import Role
from campaigns.service import settings
from tests.web.conftest import csrf_token, login

FORM = {
    "incident_fee": "90.00", "currency": "EUR",
    "packages-0-name": "Buy 5, get 6", "packages-0-points": "6", "packages-0-price": "250",
    "packages-1-name": "", "packages-1-points": "", "packages-1-price": "",
    "packages-4-name": "Single", "packages-4-points": "1", "packages-4-price": "49.50",
    "policy_text": "Email support stays free.\r\n\r\nPhone support is charged per incident.",
}  # fmt: skip


def _client(app: Flask, role: Role) -> tuple[FlaskClient, str]:
    client = app.test_client()
    login(client, role)
    return client, csrf_token(client, "/settings/service")


def _values(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', page)
    assert match, name
    return html.unescape(match.group(1))


def test_an_admin_saves_the_settings_and_sees_them_again(app: Flask, db: Database) -> None:
    client, token = _client(app, Role.ADMIN)
    answer = client.post("/settings/service", data={**FORM, "csrf_token": token})
    assert answer.status_code == 302
    page = client.get("/settings/service").get_data(as_text=True)

    assert "Service settings saved" in page and "by admin@example.com" in page
    assert _values(page, "incident_fee") == "90.00"
    # The saved packages, in order, then blank rows to add more without a script.
    assert [_values(page, f"packages-{n}-name") for n in range(5)] == [
        "Buy 5, get 6", "Single", "", "", ""]  # fmt: skip
    assert "packages-5-name" not in page
    assert "Email support stays free.\n\nPhone support is charged per incident.</textarea>" in page
    with db.unit_of_work() as s:
        assert [p.name for p in settings.read(s).packages] == ["Buy 5, get 6", "Single"]


def test_the_policy_text_in_another_language_is_saved_and_a_bad_one_kept_as_typed(
    app: Flask, db: Database
) -> None:
    client, token = _client(app, Role.ADMIN)
    german = {"policy-0-locale": "de", "policy-0-text": "E-Mail-Support bleibt kostenlos."}
    refused = client.post("/settings/service", data={
        **FORM, **german, "policy-1-locale": "xx-!!", "policy-1-text": "Quoi?",
        "csrf_token": token})  # fmt: skip
    assert refused.status_code == 400
    page = html.unescape(refused.get_data(as_text=True))
    assert "Language is not a language code such as de, fr or de_CH" in page
    assert _values(page, "policy-1-locale") == "xx-!!" and "Quoi?</textarea>" in page
    saved = client.post("/settings/service", data={**FORM, **german, "csrf_token": token})
    assert saved.status_code == 302
    page = client.get("/settings/service").get_data(as_text=True)
    assert _values(page, "policy-0-locale") == "de"
    assert "E-Mail-Support bleibt kostenlos.</textarea>" in page
    assert _values(page, "policy-1-locale") == ""  # a blank row to add another language
    with db.unit_of_work() as s:
        assert settings.read(s).policy_translations == {"de": "E-Mail-Support bleibt kostenlos."}


def test_a_package_ticked_for_removal_goes(app: Flask, db: Database) -> None:
    client, token = _client(app, Role.ADMIN)
    client.post("/settings/service", data={**FORM, "csrf_token": token,
                                            "packages-0-remove": "1"})  # fmt: skip
    with db.unit_of_work() as s:
        assert [p.name for p in settings.read(s).packages] == ["Single"]


def test_a_refused_form_keeps_everything_typed_and_says_what_to_do(
    app: Flask, db: Database
) -> None:
    client, token = _client(app, Role.ADMIN)
    typed = {**FORM, "csrf_token": token, "incident_fee": "89.999", "packages-4-points": "0",
             "policy_text": "Our <new> terms"}  # fmt: skip
    answer = client.post("/settings/service", data=typed)
    page = answer.get_data(as_text=True)

    assert answer.status_code == 400
    assert "Not saved: 2 fields to correct" in page
    assert "Fee per incident takes at most 2 decimals" in page
    # The rows come back in their order, numbered afresh: the error is beside its row.
    assert _values(page, "packages-2-name") == "Single"
    assert re.search(r'name="packages-2-points"[^>]*value="0"[^>]*aria-invalid="true"', page)
    assert "Points must be from 1 to 1,000" in page
    assert _values(page, "incident_fee") == "89.999"
    assert _values(page, "packages-0-name") == "Buy 5, get 6"
    assert "Our &lt;new&gt; terms</textarea>" in page
    with db.unit_of_work() as s:
        assert settings.read(s).updated_at is None


def test_viewers_and_editors_read_the_settings_but_cannot_change_them(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        settings.update(s, incident_fee="75", currency="CHF", policy_text="Be kind.",
                        packages=[{"name": "Ten pack", "points": "10", "price": "400"}],
                        user_id=None)  # fmt: skip
    for role in (Role.VIEWER, Role.EDITOR):
        client, token = _client(app, role)
        page = client.get("/settings/service").get_data(as_text=True)
        assert "Only admins change these settings" in page
        assert "75.00 CHF" in page and "Ten pack" in page and "400.00 CHF" in page
        assert "Be kind." in page and "<textarea" not in page
        answer = client.post("/settings/service", data={**FORM, "csrf_token": token})
        assert answer.status_code == 403
    with db.unit_of_work() as s:
        assert settings.read(s).currency == "CHF"


def test_the_navigation_leads_to_the_settings(app: Flask) -> None:
    client, _token = _client(app, Role.VIEWER)
    page = client.get("/").get_data(as_text=True)

    assert 'href="/settings/service"' in page
