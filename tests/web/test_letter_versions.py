"""The letter page: versions saved as new ones, their differences, approval, translations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.db import Database
from campaigns.letters import authoring
from campaigns.models import LetterCategory, LetterKind, LetterVersion, Role, User
from tests.factories import make_contact
from tests.web.conftest import PASSWORD, csrf_token, login, serve

POLICY = (
    "<p>Dear {{ contact.first_name }},</p>\n<p>Email support stays free.</p>\n"
    '<p><a href="{{ acknowledge_url }}">I have read the terms</a></p>\n'
)


def _policy_letter(db: Database) -> int:
    with db.unit_of_work() as s:
        letter = authoring.create_letter(
            s, "Support terms", kind=LetterKind.POLICY, category=LetterCategory.LEGAL
        )
        return letter.id


def _save(client: FlaskClient, letter_id: int, **fields: str) -> str:
    token = csrf_token(client, f"/letters/{letter_id}")
    answer = client.post(f"/letters/{letter_id}/versions", data={"csrf_token": token, **fields})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client.get(answer.headers["Location"]).get_data(as_text=True)


def test_an_edit_is_a_new_version_and_the_diff_page_shows_the_changed_lines(
    app: Flask, db: Database
) -> None:
    letter_id = _policy_letter(db)
    client = app.test_client()
    login(client, Role.EDITOR)
    _save(client, letter_id, subject="Our terms", html=POLICY)
    changed = POLICY.replace("stays free", "stays free of charge")
    page = _save(client, letter_id, subject="Our terms", html=changed + "<p>Phone: 25 EUR.</p>")
    assert "Saved version 2." in page and "awaiting approval" in page

    diff = client.get(f"/letters/{letter_id}/diff?old=1&new=2").get_data(as_text=True)
    assert 'class="diff"' in diff and "HTML body (en)" in diff
    assert "of&nbsp;charg" in diff and "diff_add" in diff  # difflib marks the changed span
    assert "Phone:" in diff
    assert "Unchanged: Subject (en)" in diff
    with db.unit_of_work() as s:
        sources = [v.html_source for v in s.scalars(select(LetterVersion).order_by("number"))]
    assert sources[0] == POLICY  # version 1 is as it was saved


def test_a_second_user_approves_and_the_page_says_who_and_when(app: Flask, db: Database) -> None:
    letter_id = _policy_letter(db)
    author = app.test_client()
    login(author, Role.EDITOR)
    page = _save(author, letter_id, subject="Our terms", html=POLICY)
    assert "You wrote this version" in page and "Approve version 1" not in page
    with db.unit_of_work() as s:
        version_id = s.scalars(select(LetterVersion.id)).one()
    token = csrf_token(author, f"/letters/{letter_id}")
    refused = author.post(f"/letters/versions/{version_id}/approve", data={"csrf_token": token})
    assert "another editor or admin must approve it" in author.get(
        refused.headers["Location"]
    ).get_data(as_text=True)  # fmt: skip

    reviewer = app.test_client()
    login(reviewer, Role.ADMIN)
    token = csrf_token(reviewer, f"/letters/{letter_id}")
    reason = {"csrf_token": token, "comment": "Name the phone fee"}
    rejected = reviewer.post(f"/letters/versions/{version_id}/reject", data=reason)
    page = reviewer.get(rejected.headers["Location"]).get_data(as_text=True)
    assert "rejected version 1" in page and "Name the phone fee" in page
    reviewer.post(f"/letters/versions/{version_id}/approve",
                  data={"csrf_token": token, "comment": "Fine now"})  # fmt: skip
    page = reviewer.get(f"/letters/{letter_id}").get_data(as_text=True)
    assert "admin@example.com</strong> approved version 1" in page

    campaign_form = reviewer.get("/campaigns/new").get_data(as_text=True)
    assert "(not approved)" not in campaign_form


def test_the_campaign_form_says_why_a_version_cannot_be_used(app: Flask, db: Database) -> None:
    letter_id = _policy_letter(db)
    client = app.test_client()
    login(client, Role.EDITOR)
    _save(client, letter_id, subject="Our terms", html=POLICY)
    form = client.get("/campaigns/new").get_data(as_text=True)
    assert "disabled" in form and "awaits approval" in form and "(not approved)" in form


def test_the_editor_shows_missing_locales_and_a_variant_previews_in_its_language(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        make_contact(s, "heidi@example.com", first_name="Heidi", locale="de_CH")
        letter_id = authoring.create_letter(
            s, "Welcome", kind=LetterKind.WELCOME, category=LetterCategory.SERVICE
        ).id
    client = app.test_client()
    login(client, Role.EDITOR)
    page = _save(
        client, letter_id, subject="Welcome", html="<p>Welcome {{ contact.first_name }}</p>"
    )
    assert "Missing for your contacts" in page and "de · 1 contact" in page
    page = _save(client, letter_id, locale="de", subject="Willkommen",
                 html="<p>Willkommen {{ contact.first_name }}</p>")  # fmt: skip
    assert "Every language your contacts have is covered" in page
    with db.unit_of_work() as s:
        version_id = s.scalar(select(LetterVersion.id).where(LetterVersion.number == 2))
    german = client.get(f"/letters/versions/{version_id}/preview?locale=de_CH")
    assert "Willkommen Jane" in german.get_data(as_text=True)
    english = client.get(f"/letters/versions/{version_id}/preview?locale=fr")
    assert "Welcome Jane" in english.get_data(as_text=True)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium")
def test_in_a_browser_an_editor_edits_a_policy_and_a_second_user_approves_it(
    app: Flask, db: Database, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the browser")
    from playwright.sync_api import expect, sync_playwright

    letter_id = _policy_letter(db)
    base, server = serve(app)
    shots = Path(os.environ.get("SHOTS_DIR", "/tmp/shots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _browser_login(page, base, "editor@example.com")
            page.goto(f"{base}/letters/{letter_id}")
            page.fill("input[name=subject]", "Our support terms")
            page.fill("textarea[name=html]", POLICY)
            page.click("text=Save as new version")
            preview = page.frame_locator("iframe.preview")
            expect(preview.locator("body")).to_contain_text("Email support stays free.")
            page.fill("textarea[name=html]", POLICY.replace("free.", "free, always."))
            page.click("text=Save as new version")
            expect(page.locator("#preview-title")).to_contain_text("version 2")
            expect(preview.locator("body")).to_contain_text("stays free, always.")
            expect(page.locator("#approval")).to_contain_text("You wrote this version")
            page.screenshot(path=str(shots / "letter-versions-editor-laptop.png"), full_page=True)

            second = browser.new_page(viewport={"width": 1280, "height": 900})
            _browser_login(second, base, "admin@example.com")
            second.goto(f"{base}/letters/{letter_id}")
            second.fill("#approval textarea[name=comment]", "Checked with legal")
            second.click("text=Approve version 2")
            expect(second.locator("#approval")).to_contain_text("approved version 2")
            expect(second.locator("#versions")).to_contain_text("approved")
            second.screenshot(path=str(shots / "letter-versions-approved-laptop.png"),
                              full_page=True)  # fmt: skip
            second.goto(f"{base}/letters/{letter_id}/diff?old=1&new=2")
            expect(second.locator("table.diff").first).to_contain_text("always")
            second.screenshot(path=str(shots / "letter-versions-diff-laptop.png"), full_page=True)

            phone = browser.new_page(viewport={"width": 375, "height": 812})
            _browser_login(phone, base, "admin@example.com")
            phone.goto(f"{base}/letters/{letter_id}")
            expect(phone.frame_locator("iframe.preview").locator("body")).to_contain_text("always")
            expect(phone.locator("#approval")).not_to_contain_text("Approve version 2")
            phone.screenshot(path=str(shots / "letter-versions-phone.png"), full_page=True)
            phone.goto(f"{base}/letters/{letter_id}/diff?old=1&new=2")
            phone.screenshot(path=str(shots / "letter-versions-diff-phone.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    with db.unit_of_work() as s:
        assert s.scalar(select(User.email).where(User.role == Role.ADMIN)) == "admin@example.com"


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Chromium")
def test_in_a_browser_the_preview_follows_the_editor_as_it_types_without_saving(
    app: Flask, db: Database, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the browser")
    from playwright.sync_api import expect, sync_playwright

    letter_id = _policy_letter(db)
    with db.unit_of_work() as s:
        make_contact(s, "heidi@example.com", first_name="Heidi")
    base, server = serve(app)
    shots = Path(os.environ.get("SHOTS_DIR", "/tmp/shots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _browser_login(page, base, "editor@example.com")
            page.goto(f"{base}/letters/{letter_id}")
            live = page.frame_locator("iframe.live-preview")
            page.fill("input[name=subject]", "Our support terms, {{ contact.first_name }}")
            page.locator("textarea[name=html]").press_sequentially(
                "<p>Dear {{ contact.first_name }},</p><p>Email support stays free.</p>"
                '<p><a href="{{ acknowledge_url }}">OK</a></p>',
                delay=5,
            )
            expect(live.locator("body")).to_contain_text("Dear Jane,")
            expect(live.locator("body")).to_contain_text("Email support stays free.")
            expect(page.locator("#live-subject")).to_have_text("Our support terms, Jane")

            page.locator("textarea[name=html]").press_sequentially(
                "<p>{{ contract.product ", delay=5
            )
            expect(page.locator("#live-error")).to_contain_text("line 1")
            page.locator("textarea[name=html]").press_sequentially("}}</p>", delay=5)
            expect(page.locator("#live-error")).to_be_hidden()
            expect(live.locator("body")).to_contain_text("Premium Support")

            page.fill("#recipient-search", "heidi")
            expect(live.locator("body")).to_contain_text("Dear Heidi,")
            page.select_option("#recipient-contract", "")
            expect(page.locator("#live-error")).to_contain_text("{{ contract }} is missing")
            page.select_option("#recipient-contract", index=1)
            expect(page.locator("#live-error")).to_be_hidden()
            page.click("button[data-scheme=dark]")
            page.screenshot(path=str(shots / "letter-editor-laptop.png"), full_page=True)
            with db.unit_of_work() as s:
                assert s.scalars(select(LetterVersion)).all() == []  # nothing was saved

            phone = browser.new_page(viewport={"width": 375, "height": 812})
            _browser_login(phone, base, "editor@example.com")
            phone.goto(f"{base}/letters/{letter_id}")
            phone.fill("input[name=subject]", "Our terms")
            phone.fill("textarea[name=html]", POLICY)
            phone.click("button[data-width=phone]")
            expect(phone.frame_locator("iframe.live-preview").locator("body")).to_contain_text(
                "Email support stays free."
            )
            phone.locator("#live").scroll_into_view_if_needed()
            phone.screenshot(path=str(shots / "letter-editor-phone.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()  # type: ignore[attr-defined]


def _browser_login(page: object, base: str, email: str) -> None:
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.fill("input[name=email]", email)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
