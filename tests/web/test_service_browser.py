"""Settings → Service in Chromium, on a laptop and on a phone: an admin adds and removes
package rows, a bad price is refused beside its row with everything typed kept, and saves;
and the service report, which a viewer reaches from Reports."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask

from campaigns.db import Database
from campaigns.models import Role
from campaigns.service import settings
from campaigns.tracking import results
from tests.service.report_data import build
from tests.web.conftest import serve, sign_in
from tests.web.test_customer_pages_browser import PHONE, SHOTS, fits

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium"),
]
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
POLICY = (
    "Email support stays free: write to us as often as you need to.\n\n"
    "Priority phone support is charged per incident, unless you pay with points."
)
POLICY_DE = "Der E-Mail-Support bleibt kostenlos."


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_admin_edits_the_service_settings_on_a_laptop_and_a_phone(
    app: Flask, db: Database
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    base, server = serve(app)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=LAPTOP)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(page, base, Role.ADMIN)
            page.get_by_role("link", name="Settings", exact=True).click()
            expect(page.get_by_role("heading", name="Service settings")).to_be_visible()

            # The script leaves one blank row to type in, and a button for more.
            rows = page.locator("li.package-row")
            expect(rows).to_have_count(1)
            page.get_by_label("Fee per incident").fill("90")
            rows.nth(0).get_by_label("Package 1: name").fill("Buy 5, get 6")
            rows.nth(0).get_by_label("Package 1: points").fill("6")
            rows.nth(0).get_by_label("Package 1: price").fill("250")
            page.get_by_role("button", name="Add a package").click()
            expect(rows).to_have_count(2)
            rows.nth(1).get_by_label("Package 2: name").fill("Mistake")
            page.get_by_role("button", name="Add a package").click()
            rows.nth(2).get_by_label("Package 3: name").fill("Ten pack")
            rows.nth(2).get_by_label("Package 3: points").fill("10")
            rows.nth(2).get_by_label("Package 3: price").fill("4OO")  # letters O, not zeros
            rows.nth(1).get_by_role("button", name="Remove").click()
            expect(rows).to_have_count(2)
            expect(rows.nth(1).get_by_label("Package 2: name")).to_have_value("Ten pack")
            page.get_by_label("The terms as the policy re-statement states them").fill(POLICY)
            german = page.locator(".translation-row")
            expect(german).to_have_count(1)  # one empty row adds a language
            german.get_by_label("Language").fill("de")
            german.get_by_label("Text").fill(POLICY_DE)
            page.screenshot(path=str(SHOTS / "service-settings-laptop.png"), full_page=True)
            page.get_by_role("button", name="Save settings").click()

            expect(page.get_by_role("alert")).to_contain_text("Not saved: 1 field to correct")
            expect(page.locator(".package-row").nth(1)).to_contain_text(
                "Price is not an amount: write it like 90 or 89.50"
            )
            expect(page.get_by_label("Fee per incident")).to_have_value("90")
            expect(page.locator("#policy_text")).to_have_value(POLICY)
            expect(page.locator(".translation-row")).to_have_count(2)  # the one typed, one empty
            expect(page.locator("textarea[name=policy-0-text]")).to_have_value(POLICY_DE)
            page.screenshot(path=str(SHOTS / "service-settings-refused-laptop.png"),
                            full_page=True)  # fmt: skip
            page.locator(".package-row").nth(1).get_by_label("Package 2: price").fill("400")
            page.get_by_role("button", name="Save settings").click()
            expect(page.get_by_role("status")).to_contain_text("Service settings saved")
            assert errors == []

            phone = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
            sign_in(phone, base, Role.ADMIN)
            phone.goto(base + "/settings/service")
            expect(phone.locator("li.package-row")).to_have_count(2)
            fits(phone)
            phone.screenshot(path=str(SHOTS / "service-settings-phone.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    with db.unit_of_work() as s:
        terms = settings.read(s)
    assert [(p.name, p.points, str(p.price)) for p in terms.packages] == [
        ("Buy 5, get 6", 6, "250.00"), ("Ten pack", 10, "400.00")]  # fmt: skip
    assert terms.policy_text == POLICY
    assert terms.policy_translations == {"de": POLICY_DE}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_service_report_reads_on_a_laptop_and_a_phone(app: Flask, db: Database) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    build(db)
    with db.unit_of_work() as s:
        results.refresh(s, window=timedelta(days=30))
    base, server = serve(app)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, page in (
                ("laptop", browser.new_page(viewport=LAPTOP)),
                ("phone", browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)),
            ):
                sign_in(page, base, Role.VIEWER)
                page.goto(base + "/reports")
                page.get_by_role("link", name="Service report").click()
                expect(page.get_by_role("heading", name="Campaign “Policy”")).to_be_visible()
                expect(page.locator("#holdout-sentence")).to_contain_text("Recipients renewed at")
                table = page.locator("table.side-by-side")
                expect(table.locator("#points-figures")).to_contain_text("Outstanding now")
                expect(table.locator("#incident-figures")).to_contain_text("1 → 2")
                page.get_by_label("Report on", exact=True).select_option(label="Long-standing")
                page.get_by_role("button", name="Show").click()
                expect(page.get_by_role("heading", name="Segment “Long-standing”")).to_be_visible()
                page.go_back()
                fits(page)
                page.screenshot(path=str(SHOTS / f"service-report-{name}.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()
