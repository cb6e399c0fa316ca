"""Reports → Service report: one campaign's or segment's customers, sent the letter against held
out — the holdout sentence, retention, points, incidents and ratings side by side."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from campaigns.db import Database
from campaigns.models import Role
from campaigns.tracking import results
from tests.service.report_data import build
from tests.web.conftest import login


def _page(client: FlaskClient, path: str, status: int = 200) -> str:
    answer = client.get(path)
    assert answer.status_code == status, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def _row(page: str, label: str) -> list[str]:
    """The two cells (sent the letter, held out) of a row, as text."""
    match = re.search(rf"<th scope=\"row\">{re.escape(label)}.*?</th>(.*?)</tr>", page, re.S)
    assert match, label
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]


def test_the_report_opens_on_the_latest_policy_campaign_with_its_figures(
    app: Flask, db: Database
) -> None:
    ids = build(db)
    with db.unit_of_work() as s:
        results.refresh(s, window=timedelta(days=30))
    client = app.test_client()
    login(client, Role.VIEWER)
    page = _page(client, "/reports/service")

    assert "Campaign “Policy”" in page
    assert f'<option value="campaign:{ids["policy"]}" selected>' in page
    assert re.search(r'id="customers-sent">3 customers<', page)
    assert re.search(r'id="customers-held-out">2 customers<', page)
    assert "Recipients renewed at 33.3 % against 50.0 % for the 2 held out" in page
    # Points: the balance when the letter came (and per customer), the moves, the balance now.
    assert _row(page, "Held when the letter came") == ["13 4.33 each", "5 2.50 each"]
    assert _row(page, "Granted since") == ["3", "2"]
    assert _row(page, "of which with this campaign's letters") == ["3", "0"]
    assert _row(page, "Adjusted since") == ["-1", "0"]
    assert _row(page, "Outstanding now") == ["20 6.67 each", "6 3.00 each"]
    assert _row(page, "Incidents") == ["1 → 2", "1 → 1"]
    assert _row(page, "Chargeable") == ["1 → 1", "0 → 1"]
    assert _row(page, "CSAT after the letter") == ["100.0 % of 1", "0.0 % of 1"]
    assert _row(page, "NPS before the letter") == ["+100 of 1", "—"]
    # ada renewed 20 days after the letter, hef 25; every other contract ended at 60 days.
    assert _row(page, "Renewed within 1 month") == ["33.3 % 1 of 3", "50.0 % 1 of 2"]
    assert _row(page, "Churned within 3 months") == ["66.7 % 2 of 3", "50.0 % 1 of 2"]
    assert _row(page, "Renewed within 6 months") == ["—", "—"]  # the letters are 100 days old


def test_a_segments_report_says_whose_figures_they_are(app: Flask, db: Database) -> None:
    ids = build(db)
    client = app.test_client()
    login(client, Role.VIEWER)
    page = _page(client, f"/reports/service?scope=segment:{ids['segment']}")

    assert "Segment “Long-standing”" in page
    assert "not the segment's members today" in page
    assert re.search(r'id="customers-sent">4 customers<', page)
    assert "this campaign's letters" not in page
    assert "No figures yet" in page  # the holdout comparison waits for the report figures
    # The campaign report links here, and the reports page too.
    assert f"scope=campaign:{ids['policy']}" in _page(
        client, f"/reports/campaign/{ids['policy']}")  # fmt: skip
    assert 'href="/reports/service"' in _page(client, "/reports")


def test_without_a_policy_campaign_the_page_asks_for_a_choice(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, Role.VIEWER)
    page = _page(client, "/reports/service")

    assert "No policy re-statement has gone out yet" in page
    assert "Side by side" not in page
    _page(client, "/reports/service?scope=campaign:x", status=400)
    _page(client, "/reports/service?campaign_id=999", status=404)
