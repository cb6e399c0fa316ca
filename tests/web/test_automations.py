"""An editor builds a reminder series through the admin, turns it on and off, and sees who
gets what in the next 14 days; a viewer looks but does not change."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.audience import contacts
from campaigns.db import Database, utcnow
from campaigns.delivery import automations
from campaigns.delivery.automations import StepInput
from campaigns.letters import authoring
from campaigns.models import Automation, LetterCategory, LetterKind, Role
from tests.factories import make_version
from tests.web.conftest import csrf_token, login


def reminders(db: Database) -> int:
    """A usable expiry letter ("Expiry reminder v1"); its version id."""
    with db.unit_of_work() as s:
        return make_version(s, name="Expiry reminder", kind=LetterKind.EXPIRY,
                            category=LetterCategory.SERVICE).id  # fmt: skip


def editor(app: Flask, path: str = "/automations/new") -> tuple[FlaskClient, str]:
    client = app.test_client()
    login(client, Role.EDITOR)
    return client, csrf_token(client, path)


def form(token: str, version: int, **fields: Any) -> dict[str, Any]:
    """The editor's fields as a browser posts them: a 60/30/7 series before the end."""
    return {
        "csrf_token": token, "name": "Expiry series", "trigger": "before_end",
        "step_days": ["60", "30", "7"], "step_version": [str(version)] * 3,
        "window_days": list("12345"), "window_start_hour": "9", "window_end_hour": "17",
        "holdout_percent": "10", "max_late_days": "3", "segment_id": "", **fields,
    }  # fmt: skip


def saved(db: Database, version: int, offsets: tuple[int, ...], *, name: str = "Expiry series",
          trigger: str = "before_end") -> int:  # fmt: skip
    """An automation stored through the domain, off; its id."""
    with db.unit_of_work() as s:
        steps = [StepInput(offset, version) for offset in offsets]
        return automations.create_automation(s, name, trigger=trigger, steps=steps).id


def typed_days(page: str) -> list[str]:
    """The days of each step row as the page shows them (not the blank row kept for "Add")."""
    return re.findall(r'name="step_days" class="step-days" value="(\d*)"', page)[:-1]


def stored(db: Database) -> Automation:
    with db.unit_of_work() as s:
        automation = s.scalars(select(Automation)).one()
        automation.steps  # noqa: B018 (loaded before the session closes)
        s.expunge_all()
        return automation


def test_a_refused_series_names_the_field_and_keeps_what_was_typed(
    app: Flask, db: Database
) -> None:
    version = reminders(db)
    client, token = editor(app)
    answer = client.post("/automations", data=form(token, version, step_days=["60", "0", "7"]))
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    # The second row's days are refused, beside that row, and every value stays as typed.
    assert re.search(r'aria-label="Step 2: days" aria-invalid="true"', page)
    error = re.search(r'<small id="steps-2-offset_days-error" class="field-error">([^<]+)', page)
    assert error and "step 2: 0 days before the end is the end date" in error.group(1)
    assert 'value="Expiry series"' in page and page.count(f'value="{version}" selected') == 3
    assert typed_days(page) == ["60", "0", "7"]
    assert re.search(r'value="5" checked\s*>Fri', page) and re.search(r'value="6"\s*>Sat', page)
    assert re.search(r'value="9" selected>09:00', page)

    answer = client.post("/automations", data=form(token, version, holdout_percent="lots"))
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert 'id="holdout_percent-error" class="field-error">the holdout must be a whole' in page
    assert 'value="lots"' in page

    answer = client.post("/automations", data=form(token, version, window_days=[]))
    assert answer.status_code == 400
    assert "choose at least one weekday" in answer.get_data(as_text=True)
    with db.unit_of_work() as s:
        assert s.scalars(select(Automation)).all() == []


def test_an_editor_creates_a_series_and_the_list_reads_it_in_words(
    app: Flask, db: Database
) -> None:
    version = reminders(db)
    client, token = editor(app)
    answer = client.post("/automations", data=form(token, version))
    assert answer.status_code == 302
    automation = stored(db)
    assert [s.offset_days for s in automation.steps] == [7, 30, 60]
    assert (automation.window_days, automation.window_start_hour, automation.window_end_hour,
            automation.holdout_percent) == ("12345", 9, 17, 10)  # fmt: skip
    assert not automation.enabled
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Automation saved. It is off" in page
    assert "Who gets what in the next 14 days" in page
    listing = client.get("/automations").get_data(as_text=True)
    assert "Expiry series" in listing and "Days before the contract ends" in listing
    assert "60 · 30 · 7 days before the end" in listing and "Mon–Fri, 09:00–17:00" in listing
    assert 'href="/automations"' in listing and "New automation" in listing  # in the nav


def test_an_editor_changes_the_steps_and_the_window(app: Flask, db: Database) -> None:
    version = reminders(db)
    automation_id = saved(db, version, (60, 30))
    client, token = editor(app, f"/automations/{automation_id}")
    page = client.get(f"/automations/{automation_id}").get_data(as_text=True)
    assert typed_days(page) == ["60", "30"]  # in the order the letters come
    answer = client.post(f"/automations/{automation_id}", data=form(
        token, version, name="Expiry reminders", step_days=["30", "14"],
        step_version=[str(version)] * 2, window_days=["1", "3"], enabled="1",
    ))  # fmt: skip
    assert answer.status_code == 302
    automation = stored(db)
    assert automation.name == "Expiry reminders" and automation.enabled
    assert [s.offset_days for s in automation.steps] == [14, 30] and automation.window_days == "13"
    listing = client.get("/automations").get_data(as_text=True)
    assert "30 · 14 days before the end" in listing and "Mon, Wed, 09:00–17:00" in listing


def test_without_javascript_add_step_and_remove_redraw_the_rows(app: Flask, db: Database) -> None:
    version = reminders(db)
    client, token = editor(app)
    fields = form(token, version, step_days=["60"], step_version=[str(version)])
    page = client.post("/automations", data={**fields, "add_step": "1"}).get_data(as_text=True)
    assert typed_days(page) == ["60", ""]
    fields = form(token, version, step_days=["60", ""], step_version=[str(version), ""])
    page = client.post("/automations", data={**fields, "add_step": "1"}).get_data(as_text=True)
    assert typed_days(page) == ["60", "", ""]  # a blank row stays until saved
    fields = form(token, version, step_days=["60", "", "7"], step_version=[str(version), "", ""])
    page = client.post("/automations", data={**fields, "remove_step": "0"}).get_data(as_text=True)
    assert typed_days(page) == ["", "7"]
    # Saved with only blank rows: refused, and one blank row is there to fill.
    answer = client.post("/automations", data=form(token, version, step_days=[""],
                                                   step_version=[""]))  # fmt: skip
    assert answer.status_code == 400 and typed_days(answer.get_data(as_text=True)) == [""]
    assert 'id="steps-error" class="field-error">add at least one step' in answer.get_data(
        as_text=True
    )
    with db.unit_of_work() as s:
        assert s.scalars(select(Automation)).all() == []  # nothing saved meanwhile


def test_an_editor_turns_an_automation_on_and_off(app: Flask, db: Database) -> None:
    version = reminders(db)
    automation_id = saved(db, version, (14,), name="Win-back", trigger="after_end")
    client, token = editor(app, "/automations")
    answer = client.post(f"/automations/{automation_id}/enabled", data={
        "csrf_token": token, "enabled": "1"}, follow_redirects=True)  # fmt: skip
    assert "Win-back is on" in answer.get_data(as_text=True) and stored(db).enabled
    assert answer.request.path == "/automations"
    answer = client.post(f"/automations/{automation_id}/enabled", data={
        "csrf_token": token, "enabled": "0", "next": f"/automations/{automation_id}",
    }, follow_redirects=True)  # fmt: skip
    assert "Win-back is off" in answer.get_data(as_text=True) and not stored(db).enabled
    assert answer.request.path == f"/automations/{automation_id}"
    answer = client.post(f"/automations/{automation_id}/enabled", data={
        "csrf_token": token, "enabled": "1", "next": "https://evil.example/",
    })  # fmt: skip
    assert answer.headers["Location"] == "/automations"


def test_a_viewer_reads_automations_but_cannot_change_them(app: Flask, db: Database) -> None:
    version = reminders(db)
    automation_id = saved(db, version, (7,))
    client = app.test_client()
    login(client, Role.VIEWER)
    listing = client.get("/automations").get_data(as_text=True)
    assert "Expiry series" in listing and "New automation" not in listing
    assert "Turn on" not in listing
    page = client.get(f"/automations/{automation_id}").get_data(as_text=True)
    assert '<fieldset class="plain" disabled>' in page and "Save automation" not in page
    assert "Who gets what in the next 14 days" in page
    token = csrf_token(client, "/automations")
    assert client.get("/automations/new").status_code == 403
    assert client.post("/automations", data=form(token, version)).status_code == 403
    path = f"/automations/{automation_id}"
    assert client.post(path, data=form(token, version)).status_code == 403
    assert client.post(f"/automations/{automation_id}/enabled",
                       data={"csrf_token": token, "enabled": "1"}).status_code == 403  # fmt: skip
    assert not stored(db).enabled


def day_row(page: str, day: date) -> str:
    """The preview's row of one day."""
    match = re.search(rf'<tr[^>]*>\s*<th scope="row"><time datetime="{day}">.*?</tr>', page, re.S)
    assert match, f"no row for {day}"
    return match.group(0)


def test_the_preview_counts_each_days_letters_per_step(app: Flask, db: Database) -> None:
    version = reminders(db)
    today = utcnow().date()
    automation_id = saved(db, version, (60, 30, 7))
    with db.unit_of_work() as s:
        for n, ends_in in enumerate([10, 10, 35, 100]):
            person = contacts.create_contact(s, f"customer{n}@example.com")
            contacts.add_contract(s, person.id, product="Gold Support",
                                  starts_on=today - timedelta(300),
                                  ends_on=today + timedelta(ends_in))  # fmt: skip
    client = app.test_client()
    login(client, Role.VIEWER)
    page = client.get(f"/automations/{automation_id}").get_data(as_text=True)
    three = day_row(page, today + timedelta(3))
    assert "7 days before</span> · Expiry reminder v1: <strong>2</strong>" in three
    assert "customer0@example.com" in three and "customer1@example.com" in three
    assert "Gold Support · ends" in three
    five = day_row(page, today + timedelta(5))
    assert "30 days before</span> · Expiry reminder v1: <strong>1</strong>" in five
    assert "customer2@example.com" in five
    assert "Nothing due." in day_row(page, today) and "today" in day_row(page, today)
    assert page.count('<th scope="row">') == 14 and "customer3@example.com" not in page
    assert '<p class="preview-total"><strong>3</strong> letters</p>' in page
    assert "days in UTC" in page and "holdout" in page and "The automation is off" in page


def test_a_reminder_to_acknowledge_names_the_policy_letter_it_awaits(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        nudge = make_version(s, name="Please confirm", html=(
            '<p>Please confirm our terms.</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'
        )).id  # fmt: skip
        policy = authoring.create_letter(s, "Support terms", kind=LetterKind.POLICY,
                                         category=LetterCategory.LEGAL).id  # fmt: skip
    client, token = editor(app)
    fields = {"name": "Confirm the terms", "trigger": "unacknowledged", "step_days": ["7"],
              "step_version": [str(nudge)]}  # fmt: skip
    answer = client.post("/automations", data=form(token, nudge, **fields))
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "choose the policy letter whose acknowledgment is awaited" in page
    assert 'value="Confirm the terms"' in page  # what was typed is kept
    answer = client.post("/automations", data=form(token, nudge, letter_id=str(policy), **fields))
    assert answer.status_code == 302
    automation = stored(db)
    assert (automation.trigger, automation.letter_id) == ("unacknowledged", policy)
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "7 days after the letter" in page


def test_an_editor_sets_up_the_low_balance_upsell_with_its_threshold(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        html = '<p>{{ contact.service_points }} left</p><a href="{{ unsubscribe_url }}">Out</a>'
        version = make_version(s, name="Points running low", html=html,
                               category=LetterCategory.MARKETING).id  # fmt: skip
    client, token = editor(app)
    low = {"name": "Upsell", "trigger": "points_low", "step_days": ["0"],
           "step_version": [str(version)]}  # fmt: skip
    refused = client.post("/automations", data=form(token, version, **low))
    assert refused.status_code == 400
    assert 'id="threshold-error" class="field-error">say at which balance it fires' in (
        refused.get_data(as_text=True)
    )
    answer = client.post("/automations", data=form(token, version, **low, threshold="1"))
    assert answer.status_code == 302
    automation = stored(db)
    assert (automation.trigger, automation.threshold) == ("points_low", 1)
    listing = client.get("/automations").get_data(as_text=True)
    assert "When the points balance drops to a threshold" in listing
    assert "on the day of the balance drop" in listing
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "drops from above 1 to 1 or below" in page and "Nothing due" not in page
    assert 'name="threshold" min="0" max="100000" value="1"' in page


def test_a_survey_automation_shows_the_closed_incidents_it_will_ask_about(
    app: Flask, db: Database
) -> None:
    from campaigns.service import incidents

    now = utcnow()
    with db.unit_of_work() as s:
        version = make_version(
            s,
            name="How did we do?",
            category=LetterCategory.SERVICE,
            html='<p>Rate us</p><a href="{{ unsubscribe_url }}">Out</a>',
        ).id
        ada = contacts.create_contact(s, "ada@example.com").id
        case = incidents.record(
            s,
            contact_id=ada,
            channel="phone",
            idempotency_key="k-1",
            opened_at=now - timedelta(days=1),
            now=now,
        ).incident.id
        incidents.close(s, case, closed_at=now)
        survey = automations.create_automation(
            s, "Survey", trigger="incident_closed", steps=[StepInput(3, version)], enabled=True
        ).id  # fmt: skip
    client, _ = editor(app)
    page = client.get(f"/automations/{survey}").get_data(as_text=True)
    assert "Who gets what in the next 14 days" in page
    assert "The incidents closed already whose step falls due each day" in page
    assert f"incident #{case} closed" in page and "ada@example.com" in page
