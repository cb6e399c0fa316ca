"""A campaign's report in Chromium, on a laptop and on a phone: the holdout sentence, the
tables, and the charts Chart.js draws from the page's figures (served from node_modules)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask

from campaigns.db import Database
from campaigns.models import Role
from tests.web.conftest import serve, sign_in, watch
from tests.web.report_data import build
from tests.web.test_customer_pages_browser import PHONE, SHOTS, fits

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium"),
]
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
COPIES = Path("/tmp/shots")


def drawn(page: Page, name: str) -> dict[str, float]:
    """The size of a chart's canvas once Chart.js has drawn it, and how many data sets."""
    canvas = page.locator(f'canvas[data-chart="{name}"]')
    canvas.wait_for(state="visible")
    return page.evaluate(
        """(name) => {
            const canvas = document.querySelector(`canvas[data-chart="${name}"]`);
            const chart = window.Chart && Chart.getChart(canvas);
            return {width: canvas.width, height: canvas.height, drawn: canvas.dataset.drawn,
                    sets: chart ? chart.data.datasets.length : 0,
                    points: chart ? chart.data.labels.length : 0};
        }""",
        name,
    )


def shoot(page: Page, name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    for folder in (SHOTS, COPIES):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_campaigns_report_draws_its_charts_and_says_what_the_holdout_shows(
    app: Flask, db: Database, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    ids = build(db)
    base, server = serve(app)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=LAPTOP)
            errors = watch(page)
            sign_in(page, base, Role.VIEWER)

            page.get_by_role("link", name="Reports", exact=True).click()
            expect(page.get_by_role("heading", name="Reports")).to_be_visible()
            expect(page.locator(".freshness")).to_contain_text("Figures as of")
            page.get_by_role("link", name="By campaign & automation").click()
            page.get_by_role("link", name="+Renew").click()
            expect(page.get_by_role("heading", name="+Renew")).to_be_visible()
            assert page.url == f"{base}/reports/campaign/{ids['campaign']}"
            expect(page.locator("#holdout-sentence")).to_have_text(
                "Recipients renewed at 42.9 % against 33.3 % for the 3 held out: 9.5 points "
                "more (95 % interval -47.9 to +66.9 points), 29 % more in relative terms. The "
                "difference is not statistically significant yet: it would take about 1,856 "
                "more recipients (at this holdout share) to tell a difference this size from "
                "chance."
            )
            assert page.evaluate("typeof window.Chart") == "function"
            curves, activity = drawn(page, "curves"), drawn(page, "activity")
            assert curves["drawn"] == "yes" and curves["sets"] == 2 and curves["points"] > 80
            assert activity["drawn"] == "yes" and activity["sets"] == 4
            for figure in (curves, activity):
                assert figure["width"] > 300 and figure["height"] > 150, figure
            expect(page.locator(".chart-missing").first).to_be_hidden()
            expect(page.locator("table.retention")).to_contain_text("57.1 %")
            fits(page)
            page.wait_for_timeout(600)  # Chart.js animates the first drawing
            shoot(page, "report-campaign-laptop.png", tmp_path)

            page.set_viewport_size(PHONE)
            page.reload()
            expect(page.locator("#holdout-sentence")).to_contain_text("not statistically")
            phone = drawn(page, "curves")
            assert 250 < phone["width"] <= 2 * PHONE["width"], phone  # fits (2x: device pixels)
            fits(page)  # the wide table scrolls inside its box, the page does not
            scroller = page.locator(".report-scroll").first
            assert scroller.evaluate("e => e.scrollWidth > e.clientWidth")
            page.wait_for_timeout(600)
            shoot(page, "report-campaign-phone.png", tmp_path)

            page.set_viewport_size(LAPTOP)
            page.goto(f"{base}/reports/automation/{ids['automation']}")
            steps = drawn(page, "steps")
            assert steps["drawn"] == "yes" and steps["points"] == 2
            page.wait_for_timeout(600)
            shoot(page, "report-automation-laptop.png", tmp_path)
            page.goto(f"{base}/reports?by=segment")
            assert drawn(page, "activity")["drawn"] == "yes"
            page.wait_for_timeout(600)
            shoot(page, "reports-laptop.png", tmp_path)
            page.set_viewport_size(PHONE)
            page.reload()
            fits(page)
            page.wait_for_timeout(600)
            shoot(page, "reports-phone.png", tmp_path)
            assert errors == []
            browser.close()
    finally:
        server.shutdown()
