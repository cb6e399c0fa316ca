"""The admin's Survey results page and its CSV; choosing a survey letter's scale."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import select

from campaigns.db import Database
from campaigns.letters import authoring
from campaigns.models import Letter, LetterCategory, LetterKind, Role
from tests.service.survey_data import results_data, survey_row, survey_version
from tests.web.conftest import csrf_token, login

START = datetime(2026, 10, 5, tzinfo=UTC)


def _text(html: str) -> str:
    """A page's text, tags and runs of white space folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_page_shows_csat_nps_responses_discarded_clicks_and_the_detractors(
    app: Flask, db: Database
) -> None:
    results_data(db, START)
    viewer = app.test_client()
    login(viewer, Role.VIEWER)
    reports = viewer.get("/reports").get_data(as_text=True)
    assert 'href="/reports/surveys">Survey results</a>' in reports
    page = viewer.get("/reports/surveys").get_data(as_text=True)
    text = _text(page)
    assert "CSAT 50.0 % 3 of 6 rated 4–5" in text
    assert "NPS +14 3 promoters, 2 detractors of 7" in text
    assert "Responses 13 72.2 % of 18 survey letters sent" in text
    assert "Machine clicks discarded 7" in text and "To follow up 4" in text
    assert "Gold 10 6 60.0 % 50.0 % of 6 — 2 5" in text
    assert "No segment (automations for every contract) 8 7 87.5 % — +14 of 7 2 2" in text
    assert "Nobody called back" in page and "=Waited three days for a call back" in page
    assert '"satisfaction": {' in page and '"responses": [2, 1, 1, 1, 1, 0, 0, 7]' in page
    by_step = _text(viewer.get("/reports/surveys?by=step").get_data(as_text=True))
    assert "14 days after the end After the end 8 7" in by_step
    narrow = _text(viewer.get("/reports/surveys?since=2026-10-12").get_data(as_text=True))
    assert "Responses 7 87.5 % of 8" in narrow and "Machine clicks discarded 2" in narrow
    assert viewer.get("/reports/surveys?by=weather").status_code == 400
    assert viewer.get("/reports/surveys?since=2026-10-12&until=2026-10-01").status_code == 400


def test_the_detractors_download_as_csv_with_the_pages_filters(app: Flask, db: Database) -> None:
    ids = results_data(db, START)
    viewer = app.test_client()
    login(viewer, Role.VIEWER)
    answer = viewer.get(f"/reports/surveys/detractors.csv?segment_id={ids['gold']}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert 'filename="detractors-segment-' in answer.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert [(r[1], r[4], r[5]) for r in rows[1:]] == [
        ("g4@example.com", "1", "'=Waited three days for a call back"),
        ("g5@example.com", "2", ""),
    ]


def test_an_editor_chooses_the_scale_until_the_letter_has_gone_out(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        fresh = authoring.create_letter(s, "Fresh survey", kind=LetterKind.SURVEY,
                                        category=LetterCategory.SERVICE).id  # fmt: skip
        version = survey_version(s, name="Sent survey")
        sent = s.get_one(Letter, authoring.get_version(s, version).letter_id).id
        survey_row(s, "ann@example.com", version, START)
    editor = app.test_client()
    login(editor, Role.EDITOR)
    page = editor.get(f"/letters/{fresh}").get_data(as_text=True)
    assert 'id="survey-scale"' in page and '<option value="csat" selected>' in page
    token = csrf_token(editor, f"/letters/{fresh}")
    done = editor.post(f"/letters/{fresh}/survey-scale",
                       data={"csrf_token": token, "survey_scale": "nps"})  # fmt: skip
    assert done.status_code == 302
    with db.unit_of_work() as s:
        assert s.get_one(Letter, fresh).survey_scale == "nps"
    refused = editor.post(f"/letters/{sent}/survey-scale",
                          data={"csrf_token": token, "survey_scale": "nps"})  # fmt: skip
    assert refused.status_code == 400
    assert "this letter has gone out with CSAT ratings" in refused.get_data(as_text=True)
    viewer = app.test_client()
    login(viewer, Role.VIEWER)
    assert viewer.post(f"/letters/{fresh}/survey-scale",
                       data={"csrf_token": csrf_token(viewer, "/letters"),
                             "survey_scale": "csat"}).status_code == 403  # fmt: skip
    created = editor.post("/letters", data={"csrf_token": token, "name": "NPS survey",
                                            "kind": "survey", "category": "service",
                                            "survey_scale": "nps"})  # fmt: skip
    assert created.status_code == 302
    with db.unit_of_work() as s:
        assert s.scalar(select(Letter.survey_scale).where(Letter.name == "NPS survey")) == "nps"


def test_a_refused_new_letter_comes_back_open_with_what_was_typed(app: Flask) -> None:
    editor = app.test_client()
    login(editor, Role.EDITOR)
    fields = {"csrf_token": csrf_token(editor, "/letters"), "name": "Quarterly survey",
              "kind": "survey", "category": "marketing", "survey_scale": "nps"}  # fmt: skip
    assert editor.post("/letters", data=fields).status_code == 302
    again = editor.post("/letters", data=fields)
    page = again.get_data(as_text=True)
    assert again.status_code == 400
    assert "Letter not created: a letter named &#39;Quarterly survey&#39; already exists" in page
    assert "<details open>" in page and 'value="Quarterly survey"' in page
    assert "<option selected>survey</option>" in page
    assert "<option selected>marketing</option>" in page
    assert '<option value="nps" selected>' in page
