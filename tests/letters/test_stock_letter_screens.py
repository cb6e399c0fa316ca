"""The stock letters in a real browser: one column at 600 px, no sideways scrolling on a phone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from campaigns.letters import authoring, context, rendering, stock
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("CAMPAIGNS_LETTER_SHOTS", "/tmp/shots"))


def _rendered(letter: stock.StockLetter) -> str:
    html, urls = authoring.compile_html(letter.html(), stock.layout_html(),
                                        preheader=letter.preheader)  # fmt: skip
    merge_fields = context.sample_context(len(urls), kind=letter.kind)
    return rendering.render_string(rendering.HTML_ENV, html, merge_fields, field="html")


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
