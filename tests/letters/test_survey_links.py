"""A survey letter's rating links follow its scale: 1–5 (CSAT) or 0–10 (NPS), one by one
(`rating_url(n)`) or ready-made (`rating_links`); a score off the scale is refused when saving."""

from __future__ import annotations

import re

import pytest

from campaigns.db import Database
from campaigns.errors import TemplateError, ValidationError
from campaigns.letters import authoring, context, rendering, sandbox, stock
from campaigns.models import Letter, LetterCategory, LetterKind
from tests.service.survey_data import survey_row, survey_version

LOOP = ('{% for link in rating_links %}<a href="{{ link.url }}">{{ link.score }}</a>'
        "{% endfor %} ({{ rating_links|length }}, {{ survey_scale }})")  # fmt: skip


def _render(source: str, scale: str) -> str:
    merge = context.sample_context(kind=LetterKind.SURVEY, survey_scale=scale)
    return rendering.render_string(sandbox.HTML_ENV, source, merge, field="html")


def test_rating_links_and_rating_url_follow_the_letters_scale() -> None:
    csat = _render(LOOP, "csat")
    assert re.findall(r">(\d+)</a>", csat) == ["1", "2", "3", "4", "5"]
    assert csat.endswith("(5, csat)") and 'href="https://example.com/s/preview-rating-0-1"' in csat
    nps = _render(LOOP, "nps")
    assert re.findall(r">(\d+)</a>", nps) == [str(n) for n in range(11)]
    base = "https://example.com/s/preview-rating-0-"
    assert _render("{{ rating_url(0) }} {{ rating_links[10].url }}", "nps") == f"{base}0 {base}10"
    for source, scale, message in (("{{ rating_url(0) }}", "csat", "from 1 to 5 (the letter's "
                                     "CSAT scale), not 0"),
                                   ("{{ rating_url(11) }}", "nps", "from 0 to 10"),
                                   ("{{ rating_url(true) }}", "nps", "not True"),
                                   ("{{ rating_url('5') }}", "csat", "not '5'")):  # fmt: skip
        with pytest.raises(TemplateError, match=re.escape(message)):
            _render(source, scale)


def _survey(db: Database, scale: str, html: str, name: str = "Survey") -> None:
    with db.unit_of_work() as s:
        letter = authoring.create_letter(
            s, name, kind=LetterKind.SURVEY, category=LetterCategory.SERVICE, survey_scale=scale
        )
        authoring.add_version(s, letter.id, subject="How did we do?", html=html)


def test_saving_refuses_a_rating_off_the_letters_scale_and_takes_either_kind_of_link(
    db: Database,
) -> None:
    with pytest.raises(ValidationError, match=r"from 1 to 5 \(the letter's CSAT scale\), not 0"):
        _survey(db, "csat", '<a href="{{ rating_url(0) }}">0</a> <a href="{{ rating_url(5) }}">5')
    with pytest.raises(ValidationError, match=r"\{\{ rating_url \}\} or \{\{ rating_links \}\}"):
        _survey(db, "csat", "<p>No links to rate with</p>")
    with pytest.raises(ValidationError, match="rating scale is csat"):
        _survey(db, "stars", LOOP)
    _survey(db, "nps", '<a href="{{ rating_url(0) }}">0</a>', name="Zero on NPS")
    _survey(db, "csat", LOOP, name="Loop")


def test_the_scale_changes_until_the_letter_goes_out_and_only_to_one_its_links_fit(
    db: Database,
) -> None:
    _survey(db, "nps", '<a href="{{ rating_url(0) }}">0</a><a href="{{ rating_url(9) }}">9</a>',
            name="Zero to ten")  # fmt: skip
    with db.unit_of_work() as s:
        letter_id = s.query(Letter.id).filter(Letter.name == "Zero to ten").scalar()
        with pytest.raises(ValidationError, match="does not fit the CSAT scale") as refused:
            authoring.set_survey_scale(s, letter_id, "csat")
        assert refused.value.field == "survey_scale"
        authoring.add_version(s, letter_id, subject="How did we do?", html=LOOP)
    with db.unit_of_work() as s:
        assert authoring.set_survey_scale(s, letter_id, "csat").survey_scale == "csat"
    with db.unit_of_work() as s:
        version = survey_version(s, name="Gone out")
        survey_row(s, "ann@example.com", version, context.SAMPLE_NOW)
        gone = authoring.get_version(s, version).letter_id
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="has gone out"):
        authoring.set_survey_scale(s, gone, "nps")


def test_the_stock_survey_letter_shows_eleven_ratings_on_an_nps_letter(db: Database) -> None:
    with db.unit_of_work() as s:
        versions = stock.load(s)
        survey = versions[LetterKind.SURVEY]
        authoring.set_survey_scale(s, survey.letter_id, "nps")
        sources = authoring.version_sources(s, survey.id)
    shown = authoring.preview(sources)
    assert re.findall(r'<td class="rating"[^>]*><a href="[^"]+/s/[^"]+"[^>]*>(\d+)</a>',
                      shown.html) == [str(n) for n in range(11)]  # fmt: skip
    assert "0 means not at all likely, 10 means extremely likely." in shown.html
    assert "rate our support from 0 to 10" in shown.html  # the preheader


@pytest.mark.browser
def test_the_eleven_nps_ratings_fit_a_small_phone() -> None:
    from playwright.sync_api import sync_playwright

    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

    (survey,) = [one for one in stock.STOCK_LETTERS if one.kind == LetterKind.SURVEY]
    html, urls = authoring.compile_html(survey.html(), stock.layout_html(),
                                        preheader=survey.preheader)  # fmt: skip
    merge = context.sample_context(len(urls), kind=LetterKind.SURVEY, survey_scale="nps")
    shown = rendering.render_string(sandbox.HTML_ENV, html, merge, field="html")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width in (320, 1000):
            page = browser.new_page(viewport={"width": width, "height": 700})
            page.set_content(shown)
            assert page.locator("td.rating").count() == 11
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        browser.close()
