"""The segment builder: forms that keep what was typed, the live preview, roles, and Chromium."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from campaigns.audience import contacts
from campaigns.db import Database, utcnow
from campaigns.embedded.services import free_port
from campaigns.models import Role, Segment
from tests.web.conftest import PASSWORD, csrf_token, login

SHOTS = Path(os.environ.get("CAMPAIGNS_SCREENSHOTS", "/tmp/shots"))
ENDING = {"match": "all", "conditions": [
    {"field": "contract.ends_on", "op": "in_next_days", "value": 30}]}  # fmt: skip


def customers(db: Database) -> None:
    """Three customers: two contracts ending within 30 days (one each), one much later."""
    today = utcnow().date()
    with db.unit_of_work() as s:
        for n, days in enumerate([5, 25, 200]):
            contact = contacts.create_contact(s, f"customer{n}@example.com", first_name=f"C{n}")
            contacts.add_contract(
                s, contact.id, product="Premium Support", plan="Basic",
                starts_on=date(2025, 1, 1), ends_on=today + timedelta(days=days),
            )  # fmt: skip


def test_an_editor_saves_a_contracts_segment_and_the_list_counts_its_contracts(
    app: Flask, db: Database
) -> None:
    customers(db)
    client = app.test_client()
    login(client, Role.EDITOR)
    answer = client.post("/segments", data={
        "csrf_token": csrf_token(client, "/segments/new"), "name": "Ending soon",
        "target": "contracts", "rules": json.dumps(ENDING),
    })  # fmt: skip
    assert answer.status_code == 302, answer.get_data(as_text=True)
    page = client.get("/segments").get_data(as_text=True)
    assert "Ending soon" in page and "2 <small" in page and "contracts" in page


def test_a_bad_rule_names_the_condition_and_keeps_what_was_typed(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    typed = {"match": "all", "conditions": [
        {"field": "contract.status", "op": "eq", "value": "active"},
        {"field": "contract.price", "op": "gt", "value": "a lot"}]}  # fmt: skip
    answer = client.post("/segments", data={
        "csrf_token": csrf_token(client, "/segments/new"), "name": "Pricey",
        "target": "contracts", "rules": json.dumps(typed),
    })  # fmt: skip
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert 'data-error-field="rules.conditions[1].value"' in page
    assert "rules.conditions[1].value: must be a number" in page
    assert "a lot" in page and 'value="Pricey"' in page


def test_the_preview_counts_unsaved_rules_and_names_a_bad_place(app: Flask, db: Database) -> None:
    customers(db)
    client = app.test_client()
    login(client, Role.VIEWER)
    headers = {"X-CSRFToken": csrf_token(client, "/segments")}
    answer = client.post("/segments/preview", json={"rules": ENDING, "target": "contracts"},
                         headers=headers)  # fmt: skip
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["count"] == 2
    assert {row["contract"]["plan"] for row in body["sample"]} == {"Basic"}
    bad = {"match": "all", "conditions": [{"field": "contact.shoe", "op": "eq", "value": "x"}]}
    answer = client.post("/segments/preview", json={"rules": bad, "target": "contacts"},
                         headers=headers)  # fmt: skip
    assert answer.status_code == 422
    assert answer.get_json()["field"] == "rules.conditions[0].field"


def test_viewers_look_but_do_not_change(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        s.add(Segment(name="Everyone", rules={"match": "all", "conditions": []}))
    client = app.test_client()
    login(client, Role.VIEWER)
    page = client.get("/segments/1").get_data(as_text=True)
    assert 'data-readonly="1"' in page and "Save segment" not in page
    assert client.get("/segments/new").status_code == 403
    token = csrf_token(client, "/segments")
    assert client.post("/segments/1", data={"csrf_token": token, "name": "x"}).status_code == 403
    assert client.post("/segments/1/delete", data={"csrf_token": token}).status_code == 403


def test_a_static_segment_from_pasted_addresses(app: Flask, db: Database) -> None:
    customers(db)
    client = app.test_client()
    login(client, Role.EDITOR)
    answer = client.post("/segments/static", data={
        "csrf_token": csrf_token(client, "/segments/new"), "name": "Fair", "by": "email",
        "lines": "customer0@example.com\nstranger@example.com\n",
    }, follow_redirects=True)  # fmt: skip
    page = answer.get_data(as_text=True)
    assert "stranger@example.com" in page and "customer0@example.com" in page


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The test app on a real port, for Chromium."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_builder_in_a_browser_counts_contracts_ending_within_30_days(
    served: str, db: Database
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    customers(db)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(served + "/login")
        page.get_by_label("E-mail").fill("editor@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(served + "/segments/new")
        builder = page.locator("#segment-form")
        builder.get_by_label("Name", exact=True).fill("Contracts ending within 30 days")
        builder.locator("input[name=target][value=contracts]").check()
        page.get_by_role("button", name="+ Condition").click()
        row = page.locator("li.condition").first
        row.get_by_label("Condition on").select_option("field:contract.ends_on")
        row.get_by_label("Operator").select_option("in_next_days")
        row.get_by_label("Number of days").fill("30")
        expect(page.locator("#preview-count")).to_have_text("2")
        expect(page.locator("#preview-unit")).to_have_text("contracts")
        expect(page.locator("#preview-sample")).to_contain_text("customer0@example.com")
        page.screenshot(path=str(SHOTS / "segment-builder-laptop.png"), full_page=True)

        # A wrong value is named where it was typed, and nothing is lost.
        page.get_by_role("button", name="+ Condition").click()
        second = page.locator("li.condition").nth(1)
        second.get_by_label("Condition on").select_option("field:contract.price")
        second.get_by_label("Operator").select_option("between")
        second.get_by_label("From", exact=True).fill("500")
        second.get_by_label("To", exact=True).fill("100")
        expect(second.locator(".condition-error")).to_contain_text("must not exceed")
        page.screenshot(path=str(SHOTS / "segment-builder-error.png"), full_page=True)
        second.get_by_role("button", name="Remove this condition").click()
        expect(page.locator("#preview-count")).to_have_text("2")

        page.get_by_role("button", name="Save segment").click()
        expect(page.get_by_role("status")).to_contain_text("Segment saved")
        expect(page.locator("#preview-count")).to_have_text("2")
        page.get_by_role("link", name="Segments", exact=True).first.click()
        expect(page.locator("tbody")).to_contain_text("Contracts ending within 30 days")
        expect(page.locator("tbody")).to_contain_text("2 contracts")

        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_role("link", name="Contracts ending within 30 days").click()
        expect(page.locator("#preview-count")).to_have_text("2")
        page.screenshot(path=str(SHOTS / "segment-builder-phone.png"), full_page=True)
        browser.close()
