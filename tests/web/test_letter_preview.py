"""The editor's live preview of unsaved content, for sample data or a real recipient, and
test sends of a saved version through the real SMTP server."""

from __future__ import annotations

import dataclasses
from email.header import decode_header, make_header

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.audience import contacts
from campaigns.config import Settings
from campaigns.db import Database
from campaigns.embedded.services import SMTPCatcher
from campaigns.letters import authoring
from campaigns.models import AuditEntry, LetterCategory, LetterKind, LetterVersion, Role
from tests.factories import make_contact
from tests.web.conftest import create_test_app, csrf_token, login

RENEWAL = (
    "<p>Dear {{ contact.first_name }},</p>\n"
    "<p>Your {{ contract.product }} ends on {{ format_date(contract.ends_on) }}.</p>\n"
    '<p><a href="{{ renewal_url }}">Renew now</a> · <a href="https://example.com/terms">Terms</a></p>\n'
)


def _letter(db: Database, *, kind: LetterKind = LetterKind.EXPIRY) -> int:
    with db.unit_of_work() as s:
        return authoring.create_letter(s, "Reminder", kind=kind,
                                       category=LetterCategory.SERVICE).id  # fmt: skip


def _preview(client: FlaskClient, letter_id: int, **form: str) -> tuple[int, dict[str, object]]:
    token = csrf_token(client, f"/letters/{letter_id}")
    answer = client.post(f"/letters/{letter_id}/live-preview",
                         data={"csrf_token": token, "subject": "Hello", **form})  # fmt: skip
    return answer.status_code, answer.get_json()


def _editor(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, Role.EDITOR)
    return client


def test_the_preview_renders_unsaved_html_with_sample_data_and_saves_nothing(
    app: Flask, db: Database
) -> None:
    letter_id = _letter(db)
    status, data = _preview(_editor(app), letter_id, subject="Hi {{ contact.first_name }}",
                            html=RENEWAL)  # fmt: skip
    assert status == 200 and data["ok"] is True
    assert data["subject"] == "Hi Jane"
    assert "Your Premium Support ends on January 31, 2027." in str(data["html"])
    assert "Renew now (https://example.com/r/preview-renewal" in str(data["text"])
    with db.unit_of_work() as s:
        assert s.scalars(select(LetterVersion)).all() == []


def test_a_syntax_error_in_the_preview_is_shown_with_its_line(app: Flask, db: Database) -> None:
    letter_id = _letter(db)
    broken = "<p>one</p>\n<p>two</p>\n<p>{{ contact.first_name </p>"
    status, data = _preview(_editor(app), letter_id, html=broken)
    assert status == 422 and data["ok"] is False
    assert data["line"] == 3 and data["field"] == "html"
    assert "html, line 3" in str(data["error"])


def test_an_unknown_merge_field_is_named(app: Flask, db: Database) -> None:
    status, data = _preview(_editor(app), _letter(db), html="<p>{{ contact_name }}</p>")
    assert status == 422 and "unknown merge field {{ contact_name }}" in str(data["error"])


def test_a_real_recipient_without_a_contract_shows_the_missing_field(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        bare = contacts.create_contact(s, "no.contract@example.com", first_name="Nora").id
    status, data = _preview(_editor(app), _letter(db), html=RENEWAL, contact_id=str(bare))
    assert status == 422
    assert "{{ contract }} is missing" in str(data["error"])


def test_a_real_recipient_and_their_contract_fill_the_preview(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        contact = make_contact(s, "heidi@example.com", first_name="Heidi")
        contact_id, contract_id = contact.id, contact.contracts[0].id
    client = _editor(app)
    found = client.get("/letters/recipients?q=heidi").get_json()
    assert [c["email"] for c in found["contacts"]] == ["heidi@example.com"]
    assert found["contacts"][0]["contracts"][0]["id"] == contract_id
    status, data = _preview(client, _letter(db), html=RENEWAL, contact_id=str(contact_id),
                            contract_id=str(contract_id))  # fmt: skip
    assert status == 200, data
    assert "Dear Heidi," in str(data["html"]) and "ends on January 1, 2027" in str(data["html"])


def test_a_viewer_may_not_preview_and_a_post_without_csrf_token_is_refused(
    app: Flask, db: Database
) -> None:
    letter_id = _letter(db)
    viewer = app.test_client()
    login(viewer, Role.VIEWER)
    token = csrf_token(viewer, f"/letters/{letter_id}")
    form = {"csrf_token": token, "subject": "x", "html": "<p>x</p>"}
    refused = viewer.post(f"/letters/{letter_id}/live-preview", data=form)
    assert refused.status_code == 403
    assert viewer.get("/letters/recipients?q=jane").status_code == 403
    forged = _editor(app).post(f"/letters/{letter_id}/live-preview",
                               data={"subject": "x", "html": "<p>x</p>"})  # fmt: skip
    assert forged.status_code == 400


def _saved_version(client: FlaskClient, db: Database, letter_id: int) -> int:
    token = csrf_token(client, f"/letters/{letter_id}")
    answer = client.post(f"/letters/{letter_id}/versions", data={
        "csrf_token": token, "subject": "Your {{ contract.product }}", "html": RENEWAL,
    })  # fmt: skip
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with db.unit_of_work() as s:
        return s.scalars(select(LetterVersion.id).where(LetterVersion.letter_id == letter_id)).one()


def test_a_test_send_arrives_in_the_mailbox_and_is_audited(
    app: Flask, db: Database, smtp_server: SMTPCatcher
) -> None:
    letter_id = _letter(db, kind=LetterKind.EXPIRY)
    with db.unit_of_work() as s:
        contact = make_contact(s, "heidi@example.com", first_name="Heidi")
        contact_id, contract_id = contact.id, contact.contracts[0].id
    client = _editor(app)
    version_id = _saved_version(client, db, letter_id)
    token = csrf_token(client, f"/letters/{letter_id}")
    answer = client.post(f"/letters/versions/{version_id}/test-send", data={
        "csrf_token": token, "to": "qa@example.org", "contact_id": str(contact_id),
        "contract_id": str(contract_id),
    })  # fmt: skip
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Test of version 1 sent to qa@example.org." in page
    (received,) = smtp_server.wait_for(1)
    assert received.recipients == ["qa@example.org"]
    message = received.message
    assert str(make_header(decode_header(message["Subject"]))) == "[Test] Your Premium Support"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()
    assert "Dear Heidi," in body and 'href="https://example.com/terms"' in body
    with db.unit_of_work() as s:
        entry = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "letter_version.test_send")).one()  # fmt: skip
        assert entry.target_id == version_id
        assert entry.detail["to"] == "qa@example.org" and entry.detail["outcome"] == "sent"
        assert entry.detail["recipient"] == "heidi@example.com"


def test_a_test_send_without_smtp_says_how_to_configure_it(
    settings: Settings, db: Database, app: Flask
) -> None:
    letter_id = _letter(db)
    no_smtp = create_test_app(dataclasses.replace(settings, smtp_url=None), db)
    client = no_smtp.test_client()
    login(client, Role.EDITOR)
    version_id = _saved_version(client, db, letter_id)
    token = csrf_token(client, f"/letters/{letter_id}")
    answer = client.post(f"/letters/versions/{version_id}/test-send",
                         data={"csrf_token": token, "to": "qa@example.org"})  # fmt: skip
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Test not sent: no SMTP server is configured: set SMTP_URL" in page
