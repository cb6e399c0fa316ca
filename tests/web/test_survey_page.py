"""The rating page (`/s/<token>`): a person's click records, a scanner's clicks are discarded,
the confirmation and the page's buttons (CSRF-checked) record, staff record nothing."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery.tokens import Tokens
from campaigns.models import Contact, Event, EventKind, Role, SurveyResponse
from tests.service.survey_data import BROWSER, survey_row, survey_version
from tests.web.conftest import login

PERSON = {"User-Agent": BROWSER}


def _letter(db: Database, scale: str = "csat", email: str = "ada@example.com") -> int:
    with db.unit_of_work() as s:
        # Sent an hour ago: a click within seconds of delivery is a gateway's, not a person's.
        return survey_row(s, email, survey_version(s, scale=scale, name=email),
                          utcnow() - timedelta(hours=1))  # fmt: skip


def _links(settings: Settings, delivery_id: int, scores: range = range(1, 6)) -> dict[int, str]:
    tokens = Tokens.from_settings(settings)
    return {n: f"/s/{tokens.sign('rating', delivery_id, n)}" for n in scores}


def _recorded(db: Database) -> list[tuple[int, str]]:
    with db.unit_of_work() as s:
        return [tuple(r) for r in s.execute(select(SurveyResponse.score, SurveyResponse.comment))]  # type: ignore[misc]


def _discarded(db: Database) -> int:
    with db.unit_of_work() as s:
        return s.scalar(select(func.count()).where(Event.kind == EventKind.RATING,
                                                    Event.is_machine.is_(True))) or 0  # fmt: skip


def _post(client: FlaskClient, page: str, path: str, **fields: str) -> str:
    """Submit a form of `page` (its CSRF token) to `path`; the answer's text."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page
    answer = client.post(path, data={"csrf_token": token.group(1), **fields}, headers=PERSON)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_data(as_text=True)


def test_a_persons_click_records_and_the_page_takes_a_comment_and_a_change(
    app: Flask, db: Database, settings: Settings
) -> None:
    links = _links(settings, _letter(db))
    customer = app.test_client()
    answer = customer.get(links[4], headers=PERSON)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store, private"
    assert "Thank you!" in page and "You rated us 4 out of 5." in page
    assert 'name="comment"' in page and "You can change your rating until" in page
    assert _recorded(db) == [(4, "")]
    page = _post(customer, page, links[4], comment="The engineer  called back within the hour.")
    assert "Thank you: your comment is recorded." in page
    page = _post(customer, page, links[2])  # "Changed your mind?": another score's button
    assert "Your rating is now 2 out of 5." in page
    assert _recorded(db) == [(2, "The engineer  called back within the hour.")]
    assert _discarded(db) == 0


def test_a_scanner_clicking_every_link_records_nothing_and_a_confirmation_records(
    app: Flask, db: Database, settings: Settings
) -> None:
    links = _links(settings, _letter(db))
    scanner = app.test_client()
    pages = [scanner.get(links[n], headers=PERSON).get_data(as_text=True) for n in range(1, 6)]
    assert _recorded(db) == [] and _discarded(db) == 5
    assert "Confirm my rating" in pages[-1] and "You chose 5 out of 5." in pages[-1]
    # The customer comes later, clicks 3 and is recorded; a scanner's agent asks first.
    customer = app.test_client()
    scanning = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}
    page = customer.get(links[3], headers=scanning).get_data(as_text=True)
    assert "Confirm my rating" in page and _recorded(db) == []
    assert "You rated us 3 out of 5." in _post(customer, page, links[3])
    assert _recorded(db) == [(3, "")] and _discarded(db) == 6


def test_forms_without_their_csrf_token_and_tampered_links_change_nothing(
    app: Flask, db: Database, settings: Settings
) -> None:
    delivery_id = _letter(db)
    links = _links(settings, delivery_id)
    customer = app.test_client()
    assert customer.post(links[5], data={"comment": "spam"}, headers=PERSON).status_code == 400
    other_purpose = f"/s/{Tokens.from_settings(settings).sign('open', delivery_id, 5)}"
    for path in (links[5][:-2] + "xx", other_purpose, _links(settings, delivery_id, range(6, 7))[6],
                 _links(settings, 999)[5]):  # fmt: skip
        assert customer.get(path, headers=PERSON).status_code == 404, path
    assert _recorded(db) == [] and _discarded(db) == 0


def test_staff_trying_the_links_record_nothing(
    app: Flask, db: Database, settings: Settings
) -> None:
    links = _links(settings, _letter(db))
    staff = app.test_client()
    login(staff, Role.VIEWER)
    page = staff.get(links[5], headers=PERSON).get_data(as_text=True)
    assert "You are signed in to the admin: nothing was recorded." in page
    assert _recorded(db) == [] and _discarded(db) == 0


def test_an_nps_letters_page_speaks_the_contacts_language(
    app: Flask, db: Database, settings: Settings
) -> None:
    delivery_id = _letter(db, scale="nps")
    with db.unit_of_work() as s:
        s.scalars(select(Contact)).one().locale = "de_AT"
    links = _links(settings, delivery_id, range(11))
    page = app.test_client().get(links[9], headers=PERSON).get_data(as_text=True)
    assert "Sie haben uns mit 9 von 10 bewertet." in page
    assert "0 bedeutet sehr unwahrscheinlich" in page
    assert page.count("formaction=") == 11
    assert _recorded(db) == [(9, "")]
