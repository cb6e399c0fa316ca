"""Layouts are editable: a change applies to letters saved afterwards, never to saved ones."""

from __future__ import annotations

from flask import Flask

from campaigns.db import Database
from campaigns.letters import authoring
from campaigns.models import LetterCategory, LetterKind, Role
from tests.web.conftest import csrf_token, login


def test_an_editor_creates_and_changes_a_layout_and_saved_versions_keep_theirs(
    app: Flask, db: Database
) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    token = csrf_token(client, "/layouts")
    refused = client.post("/layouts", data={"csrf_token": token, "name": "Brand",
                                            "html": "<div>no slot</div>"})  # fmt: skip
    assert refused.status_code == 400
    assert "must contain {{ body }}" in refused.get_data(as_text=True)
    assert "no slot" in refused.get_data(as_text=True)  # what was typed is kept
    created = client.post("/layouts", data={"csrf_token": token, "name": "Brand",
                                            "html": "<div class=old>{{ body }}</div>"})  # fmt: skip
    assert created.status_code == 302
    layout_page = created.headers["Location"]
    with db.unit_of_work() as s:
        (layout,) = [x for x in authoring.list_layouts(s) if x.name == "Brand"]
        letter = authoring.create_letter(s, "Note", kind=LetterKind.OTHER,
                                         category=LetterCategory.SERVICE)  # fmt: skip
        before = authoring.add_version(s, letter.id, subject="Hi", html="<p>Hi</p>",
                                       layout_id=layout.id)  # fmt: skip
    client.post(layout_page, data={"csrf_token": token, "name": "Brand",
                                   "html": "<section class=new>{{ body }}</section>"})  # fmt: skip
    with db.unit_of_work() as s:
        after = authoring.add_version(s, letter.id, subject="Hi", html="<p>Hi</p>",
                                      layout_id=layout.id)  # fmt: skip
        saved = s.get_one(type(before), before.id)
        assert "old" in saved.compiled_html and "new" not in saved.compiled_html
        assert "new" in after.compiled_html


def test_a_viewer_reads_layouts_but_cannot_change_them(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        authoring.create_layout(s, "Plain", "<div>{{ body }}</div>")
    client = app.test_client()
    login(client, Role.VIEWER)
    page = client.get("/layouts").get_data(as_text=True)
    assert "Plain" in page and "Save layout" not in page
    answer = client.post("/layouts", data={"csrf_token": csrf_token(client, "/layouts"),
                                           "name": "X", "html": "{{ body }}"})  # fmt: skip
    assert answer.status_code == 403
