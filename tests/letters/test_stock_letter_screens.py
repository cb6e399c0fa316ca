"""The stock letters in a real browser: one column at 600 px, no sideways scrolling on a phone."""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from campaigns.config import Settings
from campaigns.delivery.tokens import Tokens
from campaigns.letters import authoring, context, fields, rendering, stock
from campaigns.models import LetterKind
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("CAMPAIGNS_LETTER_SHOTS", "/tmp/shots"))


def _rendered(letter: stock.StockLetter) -> str:
    html, urls = authoring.compile_html(letter.html(), stock.layout_html(),
                                        preheader=letter.preheader)  # fmt: skip
    merge_fields = context.sample_context(len(urls), kind=letter.kind)
    return rendering.render_string(rendering.HTML_ENV, html, merge_fields, field="html")


def _rendered_de(letter: stock.StockLetter) -> tuple[str, str]:
    """The German variant for a German customer (Babel formats in de); and its preheader."""
    german = letter.variant("de")
    html, _urls = authoring.compile_html(german.html, stock.layout_html(),
                                         preheader=german.preheader)  # fmt: skip
    settings = Settings.from_env({
        "SECRET_KEY": "screens-secret-0123456789abcdef", "PUBLIC_URL": "https://mail.example.com",
        "SENDER": "Kundenservice <care@acme.example>", "COMPANY_NAME": "Acme Support GmbH",
        "COMPANY_ADDRESS": "Hauptstraße 1\\n10115 Berlin", "INCIDENT_PRICE": "90",
    })  # fmt: skip
    recipient = context.Recipient(
        delivery_id=1, kind=letter.kind,
        contact={"email": "erika.mustermann@example.com", "first_name": "Erika",
                 "last_name": "Mustermann", "name": "Erika Mustermann", "locale": "de",
                 "time_zone": "Europe/Berlin", "customer_since": date(2019, 3, 1),
                 "lifetime_spend": Decimal("2400.00"), "service_points": 12,
                 "attributes": fields.SampleFields("contact.attributes", {})},
        contract={"id": 1, "product": "Premium Support", "plan": "Jährlich",
                  "starts_on": date(2026, 2, 1), "ends_on": date(2027, 1, 31),
                  "price": Decimal("480.00"), "currency": "EUR", "service_points": 12,
                  "attributes": {}} if letter.kind != LetterKind.POLICY else None,
        renewal_target="https://example.com/renew", links={},
    )  # fmt: skip
    merge_fields, _ = context.build(
        recipient, company=settings.company, sender_name=settings.sender_name,
        public_url=settings.public_url, signer=Tokens.from_settings(settings),
        now=context.SAMPLE_NOW,
    )  # fmt: skip
    merge_fields["link_url"] = lambda i: f"#link-{i}"
    merge_fields["open_pixel_url"] = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    rendered = rendering.render_string(rendering.HTML_ENV, html, merge_fields, field="html")
    return rendered, german.preheader


def test_each_german_stock_letter_reads_on_a_phone_and_on_a_desktop() -> None:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for letter in stock.STOCK_LETTERS:
            html, preheader = _rendered_de(letter)
            assert "Guten Tag Erika Mustermann," in html
            name = letter.file.removesuffix(".html")
            for width in (375, 1000):
                page = browser.new_page(viewport={"width": width, "height": 800})
                page.set_content(html)
                page.screenshot(path=SHOTS / f"letter-de-{name}-{width}.png", full_page=True)
                # German words run long: still nothing wider than the screen.
                assert page.evaluate("document.documentElement.scrollWidth") <= width, name
                frame = page.evaluate("document.querySelector('.frame').getBoundingClientRect()"
                                      ".width")  # fmt: skip
                assert frame <= 600, name
                assert not page.get_by_text(preheader[:20]).first.is_visible()
                page.close()
        browser.close()


def test_each_stock_letter_reads_on_a_phone_and_on_a_desktop() -> None:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for letter in stock.STOCK_LETTERS:
            html = _rendered(letter)
            name = letter.file.removesuffix(".html")
            for width, scheme in ((375, "light"), (1000, "light"), (375, "dark")):
                page = browser.new_page(viewport={"width": width, "height": 800},
                                        color_scheme=scheme)  # fmt: skip
                page.set_content(html)
                suffix = "-dark" if scheme == "dark" else ""
                page.screenshot(path=SHOTS / f"letter-{name}-{width}{suffix}.png", full_page=True)
                # Nothing wider than the screen, and the letter's column at most 600 px.
                assert page.evaluate("document.documentElement.scrollWidth") <= width, name
                frame = page.evaluate("document.querySelector('.frame').getBoundingClientRect()"
                                      ".width")  # fmt: skip
                assert frame <= 600, name
                # The preheader is in the letter but not on the screen.
                assert not page.get_by_text(letter.preheader[:20]).first.is_visible()
                text_px = page.evaluate(
                    "parseFloat(getComputedStyle(document.querySelector('.content p')).fontSize)"
                )
                assert text_px >= 15, name  # readable without zooming
                page.close()
        browser.close()
