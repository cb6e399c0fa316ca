"""An editor schedules a new campaign and watches it send on its page, without reloading."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.embedded.services import RedisServer
from tests.conftest import run_command
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

pytestmark = pytest.mark.browser
AUDIENCE = 6  # the demo's contacts, all active


@pytest.fixture
def slow_product(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, str, str]]:
    """`campaigns run` sending a letter a second, so a send lasts long enough to watch."""
    with run_command(tmp_path, redis_server, SEND_RATE_PER_SECOND="1") as (banner, _log):
        yield banner.group(1), banner.group(2), banner.group(3)


def test_the_campaign_page_follows_a_send_to_the_end_without_a_reload(
    slow_product: tuple[str, str, str],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, email, password = slow_product
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

        page.get_by_role("link", name="Campaigns", exact=True).click()
        page.get_by_role("button", name="New campaign").click()
        page.get_by_label("Name").fill("Spring check-in")
        page.get_by_label("Segment").select_option(label="All active contacts")
        # A letter that needs only the contact: the welcome letter needs a contract.
        page.get_by_label("Letter version").select_option(
            label="Policy re-statement v1 — Our support terms, re-stated"
        )
        page.get_by_role("button", name="Create draft").click()
        badge = page.locator("h1 .badge")
        expect(badge).to_have_text("draft")

        # The draft says who would get it if it went now, and asks to confirm that.
        expect(page.locator("#forecast")).to_contain_text(
            f"{AUDIENCE} of {AUDIENCE} recipients would get the letter"
        )
        # On a phone the draft's schedule form wraps instead of widening the page.
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(SCREENSHOTS / "campaign-draft-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        box = page.get_by_label(f"Send to {AUDIENCE} recipients").bounding_box()
        assert box is not None and box["width"] >= 12  # the confirm box is a box, not a line
        page.screenshot(path=str(SCREENSHOTS / "campaign-draft.png"), full_page=True)
        page.get_by_label(f"Send to {AUDIENCE} recipients").check()
        page.get_by_role("button", name="Schedule").click()
        expect(page.get_by_role("status")).to_contain_text("Campaign scheduled.")
        page.evaluate("window.__noReload = 1")
        sent = page.locator('[data-progress-count="sent"]')
        # A letter a second: the page was drawn before the send could end.
        assert badge.inner_text() in ("scheduled", "running")
        assert int(sent.inner_text()) < AUDIENCE

        pace = page.locator("[data-progress-pace]")
        expect(pace).to_have_text(
            re.compile(r"^[\d.]+ letters/(s|min) · (less than a minute|about \d+ min) left$"),
            timeout=15_000,
        )
        expect(badge).to_have_text("running")
        page.screenshot(path=str(SCREENSHOTS / "campaign-live-running.png"), full_page=True)

        expect(badge).to_have_text("completed", timeout=30_000)
        expect(badge).to_have_class(re.compile(r"\bbadge-completed\b"))
        expect(sent).to_have_text(str(AUDIENCE))
        expect(page.locator("[data-progress-total]")).to_have_text(str(AUDIENCE))
        expect(page.locator('[data-progress-count="queued"]')).to_have_text("0")
        expect(pace).to_be_hidden()
        expect(page.get_by_role("button", name="Cancel")).to_be_hidden()  # stale once done
        expect(page.locator("[data-progress-time=completed_at]")).to_contain_text("UTC")
        assert page.locator("[data-progress-bar]").evaluate("bar => [bar.value, bar.max]") == [
            AUDIENCE, AUDIENCE,
        ]  # fmt: skip
        snapshot = page.locator("[data-progress-snapshot]")
        expect(snapshot).to_have_class("stale")  # the rows below are as of the page load
        reload_link = page.get_by_role("button", name="Reload to see the ledger rows")
        expect(reload_link).to_be_visible()
        assert page.evaluate("window.__noReload") == 1  # the same document all along
        page.screenshot(path=str(SCREENSHOTS / "campaign-live.png"), full_page=True)

        page.set_viewport_size({"width": 390, "height": 844})
        expect(reload_link).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "campaign-live-phone.png"), full_page=True)

        reload_link.click()
        expect(page.get_by_role("link", name=f"sent ({AUDIENCE})")).to_be_visible()
        expect(page.locator(".actions button")).to_have_count(0)  # nothing to do when sent
        expect(snapshot).not_to_have_class("stale")
        assert page.evaluate("window.__noReload") is None  # now it was reloaded, on request
        browser.close()
