"""The contact pages: edits that name bad fields, status changes with a reason, contracts."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from campaigns.audience import contacts
from campaigns.db import Database, utcnow
from campaigns.delivery import automations
from campaigns.delivery.automations import StepInput
from campaigns.models import Contact, ContactStatus, ContractStatus, Role
from tests.factories import make_contact, make_version
from tests.web.conftest import csrf_token, login


def _ann(db: Database) -> int:
    with db.unit_of_work() as s:
        return make_contact(s, "ann@example.com", first_name="Ann").id


def test_a_refused_edit_names_the_field_and_keeps_what_was_typed(app: Flask, db: Database) -> None:
    contact_id = _ann(db)
    client = app.test_client()
    login(client, Role.EDITOR)
    page = f"/contacts/{contact_id}"
    answer = client.post(page, data={
        "csrf_token": csrf_token(client, page), "email": "ann@example.com",
        "first_name": "Annabel", "time_zone": "Europe/Atlantis", "customer_since": "yesterday",
    })  # fmt: skip
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "Time zone is not a time zone such as Europe/Berlin or UTC" in html
    assert "Customer since is not a date; write it YYYY-MM-DD" in html
    assert 'value="Annabel"' in html and 'value="Europe/Atlantis"' in html
    with db.unit_of_work() as s:
        assert contacts.get_contact(s, contact_id).first_name == "Ann"


def test_an_editor_unsubscribes_with_a_reason_and_the_timeline_shows_it(
    app: Flask, db: Database
) -> None:
    contact_id = _ann(db)
    client = app.test_client()
    login(client, Role.EDITOR)
    page = f"/contacts/{contact_id}"
    token = csrf_token(client, page)
    refused = client.post(
        f"{page}/status", data={"csrf_token": token, "status": "unsubscribed", "reason": " "}
    )
    assert refused.status_code == 400 and "Reason say why" in refused.get_data(as_text=True)
    done = client.post(f"{page}/status", data={
        "csrf_token": csrf_token(client, page), "status": "unsubscribed",
        "reason": "asked by phone"}, follow_redirects=True)  # fmt: skip
    html = done.get_data(as_text=True)
    assert "The contact is now unsubscribed." in html
    assert "unsubscribed (admin): asked by phone" in html
    assert "Re-subscribe" in html
    with db.unit_of_work() as s:
        assert contacts.get_contact(s, contact_id).status == ContactStatus.UNSUBSCRIBED
        [change] = contacts.status_history(s, contact_id)
        assert change.user_id is not None


def test_a_viewer_sees_the_contact_but_cannot_change_it(app: Flask, db: Database) -> None:
    contact_id = _ann(db)
    client = app.test_client()
    login(client, Role.VIEWER)
    html = client.get(f"/contacts/{contact_id}").get_data(as_text=True)
    assert "ann@example.com" in html and "Edit details" not in html
    token = csrf_token(client, f"/contacts/{contact_id}")
    answer = client.post(
        f"/contacts/{contact_id}/status",
        data={"csrf_token": token, "status": "unsubscribed", "reason": "x"},
    )
    assert answer.status_code == 403


def test_an_editor_adds_and_ends_a_contract(app: Flask, db: Database) -> None:
    contact_id = _ann(db)
    client = app.test_client()
    login(client, Role.EDITOR)
    page = f"/contacts/{contact_id}"
    bad = client.post(f"{page}/contracts", data={
        "csrf_token": csrf_token(client, page), "product": "Gold", "starts_on": "2026-05-01",
        "ends_on": "2026-04-01", "currency": "EURO"})  # fmt: skip
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "Ends is before the start 2026-05-01" in html
    assert "Currency is not an ISO 4217 currency code" in html
    client.post(f"{page}/contracts", data={
        "csrf_token": csrf_token(client, page), "product": "Gold", "plan": "phone",
        "starts_on": "2026-05-01", "ends_on": "2027-04-30", "price": "480", "currency": "eur",
    })  # fmt: skip
    with db.unit_of_work() as s:
        gold = next(k for k in contacts.get_contact(s, contact_id).contracts if k.product == "Gold")
        assert (gold.plan, str(gold.price), gold.currency) == ("phone", "480.00", "EUR")
    ended = client.post(
        f"{page}/contracts/{gold.id}/end",
        follow_redirects=True,
        data={"csrf_token": csrf_token(client, page), "on": "2026-12-31"},
    )
    assert "Contract ended on 2026-12-31." in ended.get_data(as_text=True)
    with db.unit_of_work() as s:
        contract = next(k for k in contacts.get_contact(s, contact_id).contracts if k.id == gold.id)
        assert contract.status == ContractStatus.CANCELLED


def test_the_list_searches_and_pages_by_cursor(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        for n in range(55):
            make_contact(s, f"user{n:02d}@example.com")
        make_contact(s, "other@example.org", last_name="Smith")
    client = app.test_client()
    login(client, Role.VIEWER)
    first = client.get("/contacts?q=user").get_data(as_text=True)
    assert "user54@example.com" in first and "user04@example.com" not in first
    older = client.get("/contacts?q=user&before=" + _cursor(first)).get_data(as_text=True)
    assert "user04@example.com" in older and "user54@example.com" not in older
    assert "other@example.org" in client.get("/contacts?q=smi").get_data(as_text=True)


def _cursor(html: str) -> str:
    import re

    match = re.search(r"before=(\d+)", html)
    assert match, "no link to older contacts"
    return match.group(1)


def test_an_address_on_the_suppression_list_is_shown_and_can_be_removed(
    app: Flask, db: Database
) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    token = csrf_token(client, "/suppressions")
    bad = client.post("/suppressions", data={"csrf_token": token, "email": "nope", "reason": "x"})
    assert bad.status_code == 400 and "is not a valid e-mail address" in bad.get_data(as_text=True)
    client.post("/suppressions", data={"csrf_token": token, "email": "Gone@Example.com",
                                       "reason": "legal request"})  # fmt: skip
    html = client.get("/suppressions").get_data(as_text=True)
    assert "gone@example.com" in html and "legal request" in html
    client.post("/suppressions/remove", data={"csrf_token": token, "email": "gone@example.com"})
    assert "gone@example.com" not in client.get("/suppressions").get_data(as_text=True)
    with db.unit_of_work() as s:
        assert s.scalar(select(Contact.id)) is None


def test_the_contact_page_lists_upcoming_letters_and_why_some_will_not_go(
    app: Flask, db: Database
) -> None:
    today = utcnow().date()
    with db.unit_of_work() as s:
        series = [StepInput(days, make_version(s, name=f"Reminder {days}").id)
                  for days in (30, 7)]  # fmt: skip
        automations.create_automation(s, "Expiry series", trigger="before_end", steps=series,
                                      enabled=True)  # fmt: skip
        ada = contacts.create_contact(s, "ada@example.com", first_name="Ada")
        contacts.add_contract(s, ada.id, product="Gold Support", starts_on=today - timedelta(300),
                              ends_on=today + timedelta(10))  # fmt: skip
        bob = contacts.create_contact(s, "bob@example.com", first_name="Bob",
                                      status=ContactStatus.UNSUBSCRIBED)  # fmt: skip
        contacts.add_contract(s, bob.id, product="Basic Support", starts_on=today - timedelta(300),
                              ends_on=today + timedelta(20))  # fmt: skip
    client = app.test_client()
    login(client, Role.VIEWER)
    page = client.get(f"/contacts/{ada.id}").get_data(as_text=True)
    upcoming = page.split('id="upcoming"')[1].split("<h2>")[0]
    assert (today + timedelta(3)).isoformat() in upcoming  # the 7-day step, 3 days from now
    assert "Reminder 7 v1" in upcoming and "Gold Support" in upcoming
    assert "yes, within the send window and the frequency caps" in upcoming
    page = client.get(f"/contacts/{bob.id}").get_data(as_text=True)
    upcoming = page.split('id="upcoming"')[1].split("<h2>")[0]
    assert "Reminder 7 v1" in upcoming and "contact is unsubscribed" in upcoming
