"""Surveys in Chromium: the Survey results page on a laptop and a phone (figures, chart,
detractors' comments), and a customer rating on a phone (confirm, comment, change)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from sqlalchemy import select

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery.tokens import Tokens
from campaigns.models import Role, SurveyResponse
from tests.service.survey_data import results_data, survey_row, survey_version
from tests.web.conftest import serve, sign_in, watch
from tests.web.test_customer_pages_browser import PHONE, SHOTS, fits, phone
from tests.web.test_results_browser import LAPTOP, drawn, shoot

if TYPE_CHECKING:
    pass

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_survey_results_page_shows_csat_the_chart_and_the_detractors_comments(
    app: Flask, db: Database, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    results_data(db, datetime.combine(utcnow().date() - timedelta(days=30), time(), UTC))
    base, server = serve(app)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=LAPTOP)
            errors = watch(page)
            sign_in(page, base, Role.VIEWER)
            page.get_by_role("link", name="Reports", exact=True).click()
            page.get_by_role("link", name="Survey results").click()
            expect(page.get_by_role("heading", name="Survey results")).to_be_visible()
            expect(page.locator("#csat strong")).to_have_text("50.0 %")
            expect(page.locator("#nps strong")).to_have_text("+14")
            expect(page.locator("#discarded strong")).to_have_text("7")
            detractors = page.locator("table.detractors")
            expect(detractors).to_contain_text("Nobody called back")
            expect(detractors).to_contain_text("=Waited three days for a call back")
            chart = drawn(page, "satisfaction")
            assert chart["drawn"] == "yes" and chart["sets"] == 3 and chart["points"] == 8
            fits(page)
            page.wait_for_timeout(600)  # Chart.js animates the first drawing
            shoot(page, "surveys-laptop.png", tmp_path)

            page.get_by_role("link", name="By step").click()
            expect(page.locator("table.survey-table")).to_contain_text("14 days after the end")
            page.set_viewport_size(PHONE)
            page.goto(base + "/reports/surveys")
            expect(page.locator("#csat strong")).to_have_text("50.0 %")
            fits(page)  # the tables scroll inside their boxes, the page does not
            page.wait_for_timeout(600)
            shoot(page, "surveys-phone.png", tmp_path)
            assert errors == []
            browser.close()
    finally:
        server.shutdown()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_a_phone_a_customer_confirms_comments_and_changes_a_rating(
    app: Flask, db: Database, settings: Settings
) -> None:
    from playwright.sync_api import expect

    with db.unit_of_work() as s:
        version = survey_version(s, scale="nps", name="Support survey")
        delivery_id = survey_row(s, "ann@example.com", version, utcnow() - timedelta(hours=2))
    path = f"/s/{Tokens.from_settings(settings).sign('rating', delivery_id, 6)}"
    with phone(app) as (base, page):
        # Headless Chromium says so in its User-Agent: a machine to the rules, so it confirms.
        page.goto(base + path)
        expect(page.get_by_role("button", name="Confirm my rating")).to_be_visible()
        fits(page)
        page.screenshot(path=str(SHOTS / "survey-confirm-phone.png"), full_page=True)
        page.get_by_role("button", name="Confirm my rating").click()
        expect(page.get_by_role("status")).to_have_text("You rated us 6 out of 10.")
        page.get_by_label("Anything you would like to tell us? (optional)").fill(
            "The fix worked, but it took two calls."
        )
        page.get_by_role("button", name="Send my comment").click()
        expect(page.get_by_role("status")).to_have_text("Thank you: your comment is recorded.")
        page.get_by_role("button", name="8", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("Your rating is now 8 out of 10.")
        expect(page.get_by_label("Anything you would like to tell us? (optional)")).to_have_value(
            "The fix worked, but it took two calls."
        )
        fits(page)
        page.screenshot(path=str(SHOTS / "survey-thanks-phone.png"), full_page=True)
    with db.unit_of_work() as s:
        response = s.scalars(select(SurveyResponse)).one()
        assert (response.score, response.comment) == (8, "The fix worked, but it took two calls.")
