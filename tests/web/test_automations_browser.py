"""An editor builds a 60/30/7 expiry series in Chromium, adding its steps with the page's
buttons, and sees its next 14 days; on a laptop and on a phone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask

from campaigns.audience import contacts
from campaigns.db import Database, utcnow
from campaigns.models import LetterCategory, LetterKind
from tests.factories import make_version
from tests.web.conftest import PASSWORD, serve
from tests.web.test_customer_pages_browser import PHONE, SHOTS, fits

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium"),
]
LAPTOP: ViewportSize = {"width": 1280, "height": 900}


def letters_and_contracts(db: Database) -> tuple[int, int]:
    """Two expiry letters (the reminder, the last call) and contracts ending 10, 35, 61 and
    100 days from today; the two versions' ids."""
    today = utcnow().date()
    with db.unit_of_work() as s:
        reminder = make_version(s, name="Expiry reminder", kind=LetterKind.EXPIRY,
                                category=LetterCategory.SERVICE,
                                subject="Your cover ends soon").id  # fmt: skip
        last_call = make_version(s, name="Last call", kind=LetterKind.EXPIRY,
                                 category=LetterCategory.SERVICE,
                                 subject="One week left").id  # fmt: skip
        ending = [("ada", "Gold Support", 10), ("bob", "Basic Support", 35),
                  ("cy", "Gold Support", 61), ("dee", "Premium", 100)]  # fmt: skip
        for name, product, ends_in in ending:
            person = contacts.create_contact(s, f"{name}@example.com", first_name=name.title())
            contacts.add_contract(s, person.id, product=product,
                                  starts_on=today - timedelta(300),
                                  ends_on=today + timedelta(ends_in))  # fmt: skip
    return reminder, last_call


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_editor_builds_an_expiry_series_and_sees_its_next_14_days(
    app: Flask, db: Database
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    reminder, last_call = letters_and_contracts(db)
    today = utcnow().date()
    base, server = serve(app)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=LAPTOP)
            page.goto(base + "/login")
            page.get_by_label("E-mail").fill("editor@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("link", name="Automations", exact=True).click()
            expect(page.locator("tbody")).to_contain_text("No automations yet")
            page.get_by_role("button", name="New automation").click()

            page.get_by_label("Name", exact=True).fill("Expiry series")
            page.get_by_role("switch").check()
            expect(page.get_by_label("Trigger")).to_have_value("before_end")
            steps = page.locator("li.step-row")
            # The steps, added with the page's buttons: 60 and 30 with the reminder, 7 with
            # the last call; a fourth added by mistake and removed again.
            for n, (days, version) in enumerate([(60, reminder), (30, reminder),
                                                 (7, last_call)], start=1):  # fmt: skip
                if n > 1:
                    page.get_by_role("button", name="Add step").click()
                expect(steps).to_have_count(n)
                page.get_by_label(f"Step {n}: days").fill(str(days))
                page.get_by_label(f"Step {n}: letter version").select_option(str(version))
            page.get_by_role("button", name="Add step").click()
            expect(steps.nth(3).locator(".step-unit")).to_have_text("days before the end")
            page.get_by_label("Trigger").select_option(label="Days after the end (win-back)")
            expect(steps.nth(0).locator(".step-unit")).to_have_text("days after the end")
            page.get_by_label("Trigger").select_option(label="Days before the contract ends")
            page.get_by_role("button", name="Remove step 4").click()
            expect(steps).to_have_count(3)
            fits(page)
            page.screenshot(path=str(SHOTS / "automation-editor-laptop.png"), full_page=True)

            page.get_by_role("button", name="Save automation").click()
            expect(page.get_by_role("status")).to_contain_text("Automation saved")
            expect(page.locator("h1")).to_contain_text("Expiry series")
            expect(page.locator("h1 .badge")).to_have_text("on")
            expect(page.locator("hgroup p")).to_contain_text("60 · 30 · 7 days before the end")
            calendar = page.locator("table.calendar tbody tr")
            expect(calendar).to_have_count(14)
            # Ending in 10 days: the 7-day step on day 3; in 35: the 30-day step on day 5;
            # in 61: the 60-day step tomorrow; in 100: nothing within the 14 days.
            expect(calendar.nth(3)).to_contain_text("7 days before · Last call v1: 1")
            expect(calendar.nth(3)).to_contain_text("ada@example.com")
            expect(calendar.nth(5)).to_contain_text("30 days before · Expiry reminder v1: 1")
            expect(calendar.nth(5)).to_contain_text("bob@example.com")
            expect(calendar.nth(1)).to_contain_text("60 days before · Expiry reminder v1: 1")
            expect(calendar.nth(0)).to_contain_text("Nothing due.")
            expect(page.locator("#preview")).not_to_contain_text("dee@example.com")
            expect(page.locator("#preview")).to_contain_text("days in UTC")
            expect(page.locator(f"time[datetime='{today + timedelta(3)}']")).to_be_visible()
            fits(page)
            page.screenshot(path=str(SHOTS / "automation-preview-laptop.png"), full_page=True)

            page.get_by_role("banner").get_by_role("link", name="Automations").click()
            expect(page.locator("tbody")).to_contain_text("60 · 30 · 7 days before the end")
            page.screenshot(path=str(SHOTS / "automation-list-laptop.png"), full_page=True)

            page.set_viewport_size(PHONE)
            fits(page)
            page.screenshot(path=str(SHOTS / "automation-list-phone.png"), full_page=True)
            page.get_by_role("link", name="Expiry series").click()
            expect(calendar.nth(3)).to_contain_text("Last call v1: 1")
            fits(page)
            page.screenshot(path=str(SHOTS / "automation-preview-phone.png"), full_page=True)

            # A refused change names the field and keeps what was typed, on the phone too.
            page.get_by_label("Step 3: days").fill("0")
            page.get_by_role("button", name="Save automation").click()
            expect(page.locator("#save-error")).to_contain_text("0 days before the end")
            expect(page.locator("#steps-3-offset_days-error")).to_be_visible()
            expect(page.get_by_label("Step 3: days")).to_have_value("0")
            expect(page.get_by_label("Step 3: letter version")).to_have_value(str(last_call))
            fits(page)
            page.screenshot(path=str(SHOTS / "automation-refused-phone.png"), full_page=True)
            page.set_viewport_size(LAPTOP)
            page.screenshot(path=str(SHOTS / "automation-refused-laptop.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()
