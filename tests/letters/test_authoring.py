"""Composing letters: validation with line numbers, CSS inlining, links, the text part."""

from __future__ import annotations

import pytest

from campaigns.db import Database
from campaigns.errors import TemplateError, ValidationError
from campaigns.letters import authoring, rendering, sandbox
from campaigns.models import LetterCategory, LetterKind
from tests.factories import make_version


def test_a_version_inlines_css_keeps_merge_fields_and_stores_its_links(db: Database) -> None:
    with db.unit_of_work() as s:
        version = make_version(s)
        assert [link.url for link in version.links] == [
            "https://shop.example.com/renew?plan=gold&src=mail"
        ]
        html = version.compiled_html
        text = version.compiled_text
    assert '<p style="color:#123456">Dear {{ contact.first_name }}' in html
    assert 'href="{{ link_url(0) }}"' in html and 'href="{{ unsubscribe_url }}"' in html
    assert "<style>" not in html
    assert "Renew ({{ link_url(0) }})" in text


def test_the_text_part_keeps_table_cells_apart_and_rows_on_their_lines() -> None:
    html = (
        "<p>Your contracts:</p><table><tr><th>No.</th><th>Service</th></tr>"
        "<tr><td>SC-00012</td><td>On-site support, <b>unit 7</b></td></tr>"
        "<tr><td>SC-00013</td><td><table><tr><td>a</td><td>b</td></tr></table></td></tr>"
        "</table><p>Kind regards</p>"
    )
    text = authoring.html_to_text(html)
    assert "No. Service\n" in text
    assert "SC-00012 On-site support, unit 7\n" in text
    assert "\na b\n" in text  # a table in a cell: its own row, its cells apart
    assert text.endswith("Kind regards\n")


def test_a_syntax_error_is_reported_with_its_line(db: Database) -> None:
    with db.unit_of_work() as s, pytest.raises(TemplateError, match="html, line 3"):
        make_version(s, html="<p>one</p>\n<p>two</p>\n<p>{{ contact.first_name </p>")


def test_a_marketing_letter_without_an_unsubscribe_link_is_refused(db: Database) -> None:
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="unsubscribe_url"):
        make_version(s, html="<p>Buy now</p>", category=LetterCategory.MARKETING)


def test_a_renewal_letter_needs_a_renewal_link(db: Database) -> None:
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="renewal_url"):
        make_version(
            s, html="<p>Renew</p>", kind=LetterKind.RENEWAL, category=LetterCategory.SERVICE
        )


@pytest.mark.parametrize(
    ("kind", "needed"),
    [(LetterKind.POLICY, "acknowledge_url"), (LetterKind.SURVEY, "rating_url")],
)
def test_a_policy_letter_needs_an_acknowledgment_link_and_a_survey_rating_links(
    db: Database, kind: LetterKind, needed: str
) -> None:
    with db.unit_of_work() as s, pytest.raises(ValidationError, match=needed):
        make_version(s, html="<p>Read this</p>", kind=kind, category=LetterCategory.SERVICE)
    with db.unit_of_work() as s:
        link = "{{ acknowledge_url }}" if needed == "acknowledge_url" else "{{ rating_url(5) }}"
        make_version(s, name="Linked", html=f'<p><a href="{link}">Yes</a></p>', kind=kind,
                     category=LetterCategory.SERVICE)  # fmt: skip


def test_a_letter_over_100_kb_is_refused_before_gmail_clips_it(db: Database) -> None:
    paragraph = "<p>" + "Our support terms, in full detail. " * 30 + "</p>\n"
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="under 100 KB"):
        make_version(s, html=paragraph * 110, category=LetterCategory.SERVICE)
    with db.unit_of_work() as s:
        make_version(s, name="Short", html=paragraph * 50, category=LetterCategory.SERVICE)


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ contact|attr('__class__') }}",
        "{{ '{0.__class__}'.format(contact) }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ 'x' * 10**9 }}",
    ],
)
def test_template_injection_and_oversized_output_are_refused(db: Database, payload: str) -> None:
    with db.unit_of_work() as s, pytest.raises(TemplateError):
        make_version(s, html=f"<p>{payload}</p>", category=LetterCategory.SERVICE)


def test_contact_fields_with_html_or_jinja_are_shown_as_text() -> None:
    context = authoring.sample_context()
    context["contact"] = dict(context["contact"], first_name="<b>{{ 7*7 }}</b>")
    out = rendering.render_string(
        sandbox.HTML_ENV, "<p>{{ contact.first_name }}</p>", context, field="html"
    )
    assert out == "<p>&lt;b&gt;{{ 7*7 }}&lt;/b&gt;</p>"


def test_a_layout_must_have_a_place_for_the_body(db: Database) -> None:
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="body"):
        authoring.create_layout(s, "Broken", "<html><body>nothing here</body></html>")
