"""An editor reads a contact's points ledger in Chromium (a campaign's grant, a purchase, an
incident's use, an expiry) and grants points through the form; on a laptop and on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask

from campaigns.db import Database
from campaigns.service import points
from tests.web.conftest import PASSWORD, serve
from tests.web.test_contact_points import contact_with_history
from tests.web.test_customer_pages_browser import PHONE, SHOTS, fits

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium"),
]
LAPTOP: ViewportSize = {"width": 1280, "height": 800}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_editor_reads_the_points_history_and_grants_points(app: Flask, db: Database) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    ann = contact_with_history(db)
    with db.unit_of_work() as s:
        before = points.balance(s, ann)
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
            page.goto(f"{base}/contacts/{ann}")

            panel = page.locator("#points")
            expect(panel.locator(".points-balance strong")).to_have_text(str(before))
            rows = panel.locator("table.points-history tbody tr")
            expect(rows).to_have_count(5)
            expect(rows.nth(0)).to_contain_text("expire")
            expect(rows.nth(0)).to_contain_text("system")
            expect(rows.nth(1)).to_contain_text("-2")
            expect(rows.nth(2)).to_contain_text("API")
            expect(rows.nth(3).get_by_role("link", name="Policy re-statement")).to_be_visible()
            expect(page.locator("#incidents tbody tr")).to_have_count(2)
            expect(page.locator("#incidents")).to_contain_text("printer offline")
            fits(page)
            page.locator("#points").scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "contact_points_history_laptop.png"), full_page=True)

            # A refund with no reason: the field is named, the amount stays.
            panel.get_by_role("button", name="Grant or adjust points").click()
            panel.get_by_label("Kind").select_option("refund")
            panel.get_by_label("Points", exact=True).fill("2")
            panel.get_by_role("button", name="Record points").click()
            expect(page.locator("#points-reason-error")).to_contain_text("Say why")
            expect(panel.get_by_label("Points", exact=True)).to_have_value("2")
            expect(panel.get_by_label("Kind")).to_have_value("refund")
            fits(page)
            page.screenshot(path=str(SHOTS / "contact_points_refused_laptop.png"))  # what one sees

            panel.get_by_label("Reason").fill("the outage of 3 May was ours")
            panel.get_by_role("button", name="Record points").click()
            expect(page.get_by_role("status")).to_have_text(
                f"Refund of +2 points recorded; the balance is now {before + 2}."
            )
            expect(panel.locator(".points-balance strong")).to_have_text(str(before + 2))
            expect(rows).to_have_count(6)
            expect(rows.nth(0)).to_contain_text("the outage of 3 May was ours")
            expect(rows.nth(0)).to_contain_text("editor@example.com")

            # A form sent twice at once (a double click that got through): recorded once.
            panel.get_by_role("button", name="Grant or adjust points").click()
            panel.get_by_label("Points", exact=True).fill("1")
            panel.get_by_label("Reason").fill("birthday")
            statuses = panel.locator("form").evaluate(
                "form => Promise.all([1, 2].map(() => fetch(form.action, "
                "{method: 'POST', body: new FormData(form)}).then(answer => answer.status)))"
            )
            assert statuses == [200, 200]
            page.goto(f"{base}/contacts/{ann}")
            expect(panel.locator(".points-balance strong")).to_have_text(str(before + 3))
            expect(rows).to_have_count(7)
            fits(page)
            page.screenshot(path=str(SHOTS / "contact_points_granted_laptop.png"), full_page=True)

            page.set_viewport_size(PHONE)
            fits(page)
            page.screenshot(path=str(SHOTS / "contact_points_granted_phone.png"), full_page=True)
            page.locator("#points, #incidents").last.scroll_into_view_if_needed()
            panel.screenshot(path=str(SHOTS / "contact_points_panel_phone.png"))
            page.locator("#incidents").screenshot(path=str(SHOTS / "contact_incidents_phone.png"))
            panel.get_by_role("button", name="Grant or adjust points").click()
            panel.get_by_label("Kind").select_option("adjust")
            panel.get_by_label("Points", exact=True).fill(str(-(before + 10)))
            panel.get_by_label("Reason").fill("typed twice")
            panel.get_by_role("button", name="Record points").click()
            expect(page.locator("#points-amount-error")).to_contain_text("Not enough points")
            fits(page)
            page.screenshot(path=str(SHOTS / "contact_points_refused_phone.png"))
            browser.close()
    finally:
        server.shutdown()
