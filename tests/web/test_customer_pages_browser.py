"""The customer's pages on a phone, in Chromium: unsubscribe, preferences, acknowledgment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from sqlalchemy import select

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Acknowledgment, Contact, ContactStatus, LetterCategory, LetterKind
from tests.web.conftest import serve
from tests.web.test_subscriptions import link, send_letter

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium"),
]
SHOTS = Path(os.environ.get("CAMPAIGNS_SCREENSHOTS", "/tmp/campaigns-screenshots"))
PHONE: ViewportSize = {"width": 390, "height": 844}  # an iPhone 14's CSS pixels


@contextmanager
def phone(app: Flask) -> Iterator[tuple[str, Page]]:
    """The app served on a free port and a phone-sized Chromium page; (base URL, page)."""
    from playwright.sync_api import sync_playwright

    base, server = serve(app)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            yield base, browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
            browser.close()
    finally:
        server.shutdown()


def fits(page: Page) -> None:
    """Fail if the page is wider than its window, the phone's or another (a sideways scroll)."""
    width = (page.viewport_size or PHONE)["width"]
    overflow = page.evaluate("document.documentElement.scrollWidth") - width
    assert overflow <= 0, f"{page.url} is {overflow}px wider than its {width}px window"


def test_on_a_phone_a_customer_unsubscribes_chooses_letters_and_acknowledges_terms(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the browser")
    from playwright.sync_api import expect

    _, letter = send_letter(db, settings, smtp_server, kind=LetterKind.POLICY,
                            category=LetterCategory.LEGAL)  # fmt: skip
    with phone(app) as (base, page):
        page.goto(base + link(letter, "/a/"))
        expect(page.get_by_role("heading")).to_contain_text("confirm you have read")
        expect(page.frame_locator("iframe.letter-frame").locator("body")).to_contain_text(
            "Dear Ada"
        )
        fits(page)
        page.screenshot(path=str(SHOTS / "public-acknowledge-phone.png"), full_page=True)
        page.get_by_role("button", name="I have read and accept").click()
        expect(page.get_by_role("status")).to_contain_text("You accepted this letter on")
        page.screenshot(path=str(SHOTS / "public-acknowledged-phone.png"), full_page=True)

        page.goto(base + link(letter, "/p/"))
        expect(page.locator("label.locked")).to_contain_text("must send legal notices")
        expect(page.get_by_role("switch", name="Policy and terms notices")).to_be_disabled()
        page.get_by_role("switch", name="Offers and news").uncheck()
        fits(page)
        page.screenshot(path=str(SHOTS / "public-preferences-phone.png"), full_page=True)
        page.get_by_role("button", name="Save my choices").click()
        expect(page.get_by_role("status")).to_contain_text("Your choices are saved")
        expect(page.get_by_role("switch", name="Offers and news")).not_to_be_checked()

        page.goto(base + link(letter, "/u/"))
        expect(page.locator("article")).to_contain_text("cannot be turned off")
        fits(page)
        page.screenshot(path=str(SHOTS / "public-unsubscribe-legal-phone.png"), full_page=True)
    with db.unit_of_work() as s:
        assert s.scalars(select(Contact.status)).one() == ContactStatus.UNSUBSCRIBED
        assert len(s.scalars(select(Acknowledgment)).all()) == 1


def test_on_a_phone_a_customer_unsubscribes_from_marketing_and_comes_back(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the browser")
    from playwright.sync_api import expect

    _, letter = send_letter(db, settings, smtp_server, kind=LetterKind.OTHER,
                            category=LetterCategory.MARKETING)  # fmt: skip
    with phone(app) as (base, page):
        page.goto(base + link(letter, "/u/"))
        expect(page.locator(".question")).to_contain_text("Stop receiving offers and news")
        fits(page)
        page.screenshot(path=str(SHOTS / "public-unsubscribe-phone.png"), full_page=True)
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("status")).to_contain_text("You are unsubscribed")
        page.screenshot(path=str(SHOTS / "public-unsubscribed-phone.png"), full_page=True)
        page.get_by_role("button", name="Subscribe again").click()
        expect(page.get_by_role("status")).to_contain_text("You are subscribed again")
    with db.unit_of_work() as s:
        assert s.scalars(select(Contact.status)).one() == ContactStatus.ACTIVE
