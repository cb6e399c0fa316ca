"""The README's run command, driven like a newcomer would: log in, find the demo letters."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.embedded.services import RedisServer
from tests.conftest import run_command, wait_until

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(os.environ.get("CAMPAIGNS_SCREENSHOTS", "/tmp/campaigns-screenshots"))


@pytest.fixture
def product(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, str, str]]:
    """`campaigns run` on a fresh data directory; yields (admin URL, e-mail, password)."""
    with run_command(tmp_path, redis_server) as (banner, _log):
        yield banner.group(1), banner.group(2), banner.group(3)


def test_the_run_command_brings_up_the_admin_and_the_demo_letters_reach_the_outbox(
    product: tuple[str, str, str],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, email, password = product
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        expect(page).to_have_url(re.compile(r"/login"))
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("wrong")

        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        # The demo's setup is named for what it is: mail to the Outbox, links to this machine.
        setup = page.locator("#setup li")
        expect(setup.first).to_contain_text("Letters go to the Outbox on this machine")
        expect(setup.nth(1)).to_contain_text("which customers cannot open")
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

        # The demo campaign is scheduled for now: the scheduler and the worker send it.
        def outbox_rows() -> int:
            page.goto(url + "outbox")
            return page.locator("tbody tr a").count()

        assert wait_until(lambda: outbox_rows() >= 6, timeout=60, what="six demo letters")
        expect(page.locator("tbody")).to_contain_text("ada.lovelace@example.com")
        page.screenshot(path=str(SCREENSHOTS / "outbox.png"), full_page=True)
        # On a phone the page keeps its width and each row's subject, the link, comes first.
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        expect(page.locator("tbody tr a").first).to_be_in_viewport()
        page.screenshot(path=str(SCREENSHOTS / "outbox-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.locator("tbody tr a", has_text="Our support terms").first.click()
        expect(page.locator("dl.facts")).to_contain_text("Message-ID")
        frame = page.frame_locator("iframe.preview")
        expect(frame.locator("body")).to_contain_text("Email support stays free")
        assert frame.locator("img[src*='/o/']").count() == 0  # the open pixel is left out
        assert console == []  # nothing the preview's CSP had to refuse
        page.screenshot(path=str(SCREENSHOTS / "letter.png"), full_page=True)
        seen_letter = page.url

        page.get_by_role("link", name="Campaigns", exact=True).click()
        page.get_by_role("link", name="Policy re-statement (demo)").click()
        expect(page.locator("h1 .badge")).to_have_text("completed")
        expect(page.locator("table").last).to_contain_text("All active contacts")
        page.screenshot(path=str(SCREENSHOTS / "campaign.png"), full_page=True)
        seen_campaign = page.url

        page.get_by_role("link", name="Letters", exact=True).click()
        page.get_by_role("link", name="Renewal offer").click()
        preview = page.frame_locator("iframe.preview")
        expect(preview.locator("body")).to_contain_text("Dear Jane")  # sample data
        expect(page.get_by_label("Subject")).to_have_value(
            re.compile(r"^\{% if contract\.discount %\}Renew \{\{ contract\.product \}\}")
        )
        live = page.frame_locator("iframe.live-preview")
        expect(live.locator("body")).to_contain_text("Dear Jane")  # the editor's own preview
        page.screenshot(path=str(SCREENSHOTS / "letter-editor.png"), full_page=True)

        # Every contact row opens the contact's page, with the letters it was sent.
        page.get_by_role("link", name="Contacts", exact=True).click()
        page.get_by_role("link", name="ada.lovelace@example.com").click()
        expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
        letters = page.locator("table", has_text="Campaign or automation")
        expect(letters).to_contain_text("Policy re-statement")
        page.screenshot(path=str(SCREENSHOTS / "contact.png"), full_page=True)

        # A refused edit says which field and keeps what was typed; a status change needs a why.
        page.get_by_text("Edit details").click()
        page.get_by_label("Time zone").fill("Europe/Atlantis")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("small.field-error")).to_contain_text("Time zone is not a time zone")
        expect(page.get_by_label("Time zone")).to_have_value("Europe/Atlantis")
        page.screenshot(path=str(SCREENSHOTS / "contact-refused-edit.png"), full_page=True)
        page.locator("summary", has_text="Unsubscribe").click()
        unsubscribe = page.locator("form", has=page.locator("button", has_text="Unsubscribe"))
        unsubscribe.get_by_label("Reason").fill("asked by phone")
        page.locator("button[type=submit]", has_text="Unsubscribe").click()
        expect(page.locator("ol.timeline")).to_contain_text("unsubscribed (admin): asked by phone")
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(SCREENSHOTS / "contact-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # On a phone no admin page is wider than the screen: wide tables scroll inside it,
        # long values (a Message-ID, an API path) wrap.
        page.set_viewport_size({"width": 390, "height": 844})
        nav = page.locator("nav a[href^='/']").evaluate_all("links => links.map(a => a.href)")
        wide = {}
        for address in dict.fromkeys([*nav, seen_letter, seen_campaign, url + "api/v1/docs"]):
            page.goto(address)
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 390:
                wide[address] = width
                page.screenshot(path=str(SCREENSHOTS / f"too-wide-{len(wide)}.png"), full_page=True)
        assert len(nav) >= 10
        assert wide == {}, f"pages wider than a 390 px phone: {wide}"

        # On a phone, an unknown address answers a page, not a server error.
        page.set_viewport_size({"width": 390, "height": 844})
        answer = page.goto(url + "no/such/page")
        assert answer is not None and answer.status == 404
        expect(page.get_by_role("heading", name="404 · Not found")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "not-found-phone.png"), full_page=True)
        browser.close()
