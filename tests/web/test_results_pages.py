"""The report pages in the admin: every figure per segment, campaign, step and version, the
filters, the button that rebuilds the figures, one campaign's and one automation's report,
and the CSV exports of reports and of the ledger (RELIABILITY.md 29)."""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
from dataclasses import replace
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaigns.db import Database
from campaigns.models import Role
from campaigns.tracking import exports, results
from campaigns.web.admin import results as results_pages
from tests.web.conftest import csrf_token, login
from tests.web.report_data import WINDOW, build

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Tables(HTMLParser):
    """The rows of a page's tables as lists of cell texts (white space folded)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rows_of(page: str, first: str) -> dict[str, list[str]]:
    """The rows of the first report table whose header starts with `first`, by their name."""
    for table in Tables(page).tables:
        if table and table[0] and table[0][0] == first:
            return {row[0]: row[1:] for row in table[1:] if row}
    raise AssertionError(f"no table headed {first!r}")


def editor(app: Flask, role: Role = Role.EDITOR) -> FlaskClient:
    client = app.test_client()
    login(client, role)
    return client


def parse(answer: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(answer.decode())))


def test_a_report_never_built_says_so_and_the_button_builds_it(app: Flask, db: Database) -> None:
    build(db, refresh=False)
    client = editor(app)
    page = client.get("/reports?by=campaign").get_data(as_text=True)
    assert "the report has never been built" in page
    assert "No figures yet: build the report first." in page
    token = csrf_token(client, "/reports?by=campaign")
    answer = client.post("/reports/refresh", data={"csrf_token": token,
                                                   "next": "/reports?by=campaign"})  # fmt: skip
    assert answer.status_code == 302 and answer.headers["Location"] == "/reports?by=campaign"
    page = client.get("/reports?by=campaign").get_data(as_text=True)
    assert re.search(r"Figures rebuilt in \d+\.\d s from 37 ledger rows", page)
    assert re.search(
        r"Figures as of <time[^>]+>\d\d:\d\d UTC</time>\s*\(just now; rebuilt in 0\.\d\d s\)", page
    )
    assert "+Renew" in page and "-Expiry series" in page


def test_the_refresh_button_needs_its_csrf_token_and_an_editor(app: Flask, db: Database) -> None:
    build(db, refresh=False)
    client = editor(app)
    assert client.post("/reports/refresh", data={}).status_code == 400
    assert "never been built" in client.get("/reports").get_data(as_text=True)
    viewer = editor(app, Role.VIEWER)
    page = viewer.get("/reports").get_data(as_text=True)
    assert "never been built" in page and "Build the report now" not in page
    token = csrf_token(viewer, "/reports")  # the log-out form's
    assert viewer.post("/reports/refresh", data={"csrf_token": token}).status_code == 403
    # A "next" that leaves the site is not followed.
    answer = client.post("/reports/refresh", data={"csrf_token": csrf_token(client, "/reports"),
                                                   "next": "//evil.example/"})  # fmt: skip
    assert answer.headers["Location"] == "/reports"


def test_refresh_now_while_the_scheduler_rebuilds_waits_and_counts_once(
    app: Flask, db: Database
) -> None:
    build(db)
    client = editor(app)
    token = csrf_token(client, "/reports")
    answers: list[int] = []
    scheduler = db.sessions()  # a refresh under way, not committed yet
    results.refresh(scheduler, window=WINDOW)
    button = threading.Thread(target=lambda: answers.append(
        client.post("/reports/refresh", data={"csrf_token": token}).status_code))  # fmt: skip
    button.start()
    button.join(timeout=1)
    assert button.is_alive() and answers == []  # it waits for the other one
    scheduler.commit()
    scheduler.close()
    button.join(timeout=30)
    assert answers == [302]
    rows = rows_of(client.get("/reports").get_data(as_text=True), "Segment")
    assert rows["Total"][:2] == ["37", "31"]  # not 74: each rebuild replaced the cells


def test_the_report_by_segment_shows_every_figure_and_its_rate(app: Flask, db: Database) -> None:
    build(db)
    page = editor(app).get("/reports").get_data(as_text=True)
    rows = rows_of(page, "Segment")
    header = [c.title for c in exports.COLUMNS]
    assert header.index("Renewed") == 10  # revenue comes right after it
    gold = rows["=Gold"]
    # audience, sent, failed, suppressed, held out, opened, machine opens, clicked, machine
    # clicks, renewal clicks, renewed, revenue, acknowledged, unsubscribed, bounced, complained
    assert gold == [
        "20", "16", "0 0.0 %", "1", "3", "10 62.5 %", "8 50.0 %", "6 37.5 %", "2 12.5 %",
        "4 25.0 %", "8 50.0 %", "EUR 840.00 USD 50.00", "1 6.2 %", "1 6.2 %", "1 6.2 %",
        "1 6.2 %",
    ]  # fmt: skip
    assert rows["Basic"][:3] == ["6", "5", "1 20.0 %"]  # the tab is in the name, not shown
    assert rows["No segment (automations for every contract)"][10:12] == [
        "3 30.0 %", "EUR 360.00"]  # fmt: skip
    assert rows["Total"][:2] == ["37", "31"] and rows["Total"][10] == "12 38.7 %"
    assert rows["Total"][11] == "EUR 1,320.00 USD 50.00"  # no USD rate: no converted total
    assert "Organic renewals:</strong> 2 · EUR 160.00" in page
    for title in header:  # long ones with soft hyphens, to break on a laptop's width
        assert f">{title}</th>" in page.replace("&shy;", "")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_revenue_is_also_shown_converted_when_rates_allow(app: Flask, db: Database) -> None:
    build(db)
    config = app.extensions["campaigns"]["settings"]
    rates = replace(config.results, rates=(("USD", Decimal("0.9")),))
    app.extensions["campaigns"]["settings"] = replace(config, results=rates)
    rows = rows_of(editor(app).get("/reports").get_data(as_text=True), "Segment")
    assert rows["Total"][11] == "EUR 1,320.00 USD 50.00 ≈ EUR 1,365.00"


def test_the_other_tabs_and_the_filters(app: Flask, db: Database) -> None:
    ids = build(db)
    client = editor(app)
    by_campaign = rows_of(client.get("/reports?by=campaign").get_data(as_text=True),
                          "Campaign & automation")  # fmt: skip
    assert by_campaign["+Renew campaign"][:2] == ["26", "21"]
    assert by_campaign["-Expiry series automation"][10] == "3 30.0 %"
    steps = rows_of(client.get("/reports?by=step").get_data(as_text=True), "Reminder step")
    assert steps["60 days before the end -Expiry series"][:2] == ["6", "6"]
    assert steps["30 days before the end -Expiry series"][:5] == ["5", "4", "0 0.0 %", "0", "1"]
    assert steps["30 days before the end -Expiry series"][10] == "2 50.0 %"
    versions = rows_of(client.get("/reports?by=version").get_data(as_text=True),
                       "Letter version")  # fmt: skip
    assert versions["@Expiry reminder v1 expiry"][:2] == ["11", "10"]

    only_basic = client.get(f"/reports?segment_id={ids['basic']}").get_data(as_text=True)
    assert list(rows_of(only_basic, "Segment")) == ["Basic", "Total"]
    assert "Organic renewals:" not in only_basic  # they belong to no segment
    assert "they belong to no segment, campaign or step" in only_basic
    series = client.get(f"/reports?by=step&automation_id={ids['automation']}&campaign_id=")
    assert len(rows_of(series.get_data(as_text=True), "Reminder step")) == 3  # 2 steps, total
    first_day = ids["start"].date().isoformat()
    on_the_day = client.get(f"/reports?since={first_day}&until={first_day}")
    assert rows_of(on_the_day.get_data(as_text=True), "Segment")["Total"][:2] == ["7", "6"]
    before = client.get("/reports?until=2000-01-01").get_data(as_text=True)
    assert "No letters in this report with these filters." in before

    wrong = client.get("/reports?since=yesterday")
    assert wrong.status_code == 400 and "since must be a date like" in wrong.get_data(True)
    swapped = client.get("/reports?since=2026-02-01&until=2026-01-01")
    assert swapped.status_code == 400 and "swap the two dates" in swapped.get_data(True)
    assert client.get("/reports?by=contact").status_code == 400


def test_a_campaigns_report_compares_with_its_holdout_and_shows_retention(
    app: Flask, db: Database
) -> None:
    ids = build(db)
    page = editor(app).get(f"/reports/campaign/{ids['campaign']}").get_data(as_text=True)
    assert ("Recipients renewed at 42.9 % against 33.3 % for the 3 held out: 9.5 points more "
            "(95 % interval -47.9 to +66.9 points)") in page  # fmt: skip
    assert "not statistically significant yet" in page
    holdout = rows_of(page, "")
    assert holdout["Sent the letter"] == ["21", "9", "42.9 %", "—"]  # USD without a rate
    assert holdout["Held out"] == ["3", "1", "33.3 %", "EUR 33.33"]
    assert list(rows_of(page, "Segment")) == ["=Gold", "Basic", "Total"]
    retention = rows_of(page, "After")
    # 1 month: nobody's cover had ended yet; 3 months: the unrenewed ones churned.
    assert retention["1 month"] == ["Sent the letter", "21", "9 42.9 %", "0 0.0 %"]
    assert retention["3 months"] == ["Sent the letter", "21", "9 42.9 %", "12 57.1 %"]
    assert retention["6 months"] == ["Sent the letter", "0", "—", "—"]
    charts = re.search(r'<script type="application/json" id="report-charts">(.*?)</script>',
                       page).group(1)  # type: ignore[union-attr]  # fmt: skip
    assert '"curves": {"days": [0, 1,' in charts and '"held_out": [' in charts
    assert '"sent": [6, 5, 5, 5, 0, 0,' in charts  # the campaign's four days, then renewals
    assert f'href="/reports?format=csv&amp;by=segment&amp;campaign_id={ids["campaign"]}"' in page
    assert f'href="/reports/ledger.csv?campaign_id={ids["campaign"]}"' in page


def test_an_automations_report_has_its_steps_segments_and_versions(
    app: Flask, db: Database
) -> None:
    ids = build(db)
    page = editor(app).get(f"/reports/automation/{ids['automation']}").get_data(as_text=True)
    steps = rows_of(page, "Reminder step")
    assert list(steps) == ["60 days before the end -Expiry series",
                           "30 days before the end -Expiry series", "Total"]  # fmt: skip
    assert list(rows_of(page, "Segment")) == [
        "No segment (automations for every contract)", "Total"]  # fmt: skip
    assert list(rows_of(page, "Letter version")) == ["@Expiry reminder v1 expiry", "Total"]
    assert "Recipients renewed at 30.0 % against 0.0 % for the 1 held out" in page
    assert '"labels": [["60 days before the end", "-Expiry series"], ["30 days' in page
    assert editor(app).get("/reports/automation/999").status_code == 404


def test_the_campaign_page_links_to_its_full_report(app: Flask, db: Database) -> None:
    ids = build(db)
    page = editor(app).get(f"/campaigns/{ids['campaign']}").get_data(as_text=True)
    assert f'href="/reports/campaign/{ids["campaign"]}"' in page


def test_report_csv_has_every_figure_with_names_neutralised(app: Flask, db: Database) -> None:
    ids = build(db)
    client = editor(app)
    answer = client.get("/reports?format=csv&by=segment")
    assert answer.mimetype == "text/csv"
    assert 'filename="report-by-segment.csv"' in answer.headers["Content-Disposition"]
    header, *rows = parse(answer.data)
    assert header[:4] == ["line", "detail", "Audience", "Sent"]
    assert header[-2:] == ["Revenue USD", "Revenue in EUR"]
    named = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    gold = named["'=Gold"]  # RELIABILITY.md 29: the spreadsheet shows it, never runs it
    assert (gold["Audience"], gold["Opened"], gold["Opened rate"]) == ("20", "10", "0.6250")
    assert (gold["Renewed"], gold["Revenue EUR"], gold["Revenue USD"]) == ("8", "840.00", "50.00")
    assert gold["Revenue in EUR"] == ""  # USD has no rate
    assert named["'\tBasic"]["Failed"] == "1"
    assert named["Total"]["Sent"] == "31"
    organic = named["Organic renewals (no letter earned them)"]
    assert (organic["Renewed"], organic["Revenue EUR"], organic["Sent"]) == ("2", "160.00", "")

    by_campaign = parse(client.get("/reports?format=csv&by=campaign").data)
    assert {row[0] for row in by_campaign[1:3]} == {"'+Renew", "'-Expiry series"}
    by_version = parse(client.get(f"/reports?format=csv&by=version&automation_id="
                                  f"{ids['automation']}").data)  # fmt: skip
    assert by_version[1][:4] == ["'@Expiry reminder v1", "expiry", "11", "10"]
    for table in (rows, by_campaign, by_version):
        for row in table:
            assert not any(cell.startswith(FORMULA_STARTS) for cell in row), row


def test_the_ledger_csv_streams_every_row_in_pages_with_cells_neutralised(
    app: Flask, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = build(db)
    monkeypatch.setattr(exports, "LEDGER_PAGE", 4)  # 26 rows: seven pages, the last short
    answer = editor(app).get(f"/reports/ledger.csv?campaign_id={ids['campaign']}")
    assert answer.is_streamed
    header, *rows = parse(answer.data)
    assert tuple(header) == exports.LEDGER_HEADER
    assert len(rows) == 26 and len({row[0] for row in rows}) == 26
    by_email = {row[5]: dict(zip(header, row, strict=True)) for row in rows}
    ann = by_email["'=1+2@example.com"]
    assert (ann["campaign"], ann["segment"], ann["state"]) == ("'+Renew", "'=Gold", "sent")
    assert (ann["opened"], ann["clicked"], ann["renewal_clicked"]) == ("1", "1", "1")
    assert by_email["g1@example.com"]["contract_external_id"] == "'+K-g1"
    assert by_email["g10@example.com"]["clicked"] == "0"  # a scanner's click is no person's
    assert by_email["g19@example.com"]["reason"] == "'-suppressed by an admin"
    failed = by_email["b5@example.com"]
    assert (failed["segment"], failed["reason"], failed["state"]) == (
        "'\tBasic", "'\r550 no such mailbox", "failed")  # fmt: skip
    for row in rows:
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row), row

    series = parse(editor(app).get(f"/reports/ledger.csv?automation_id={ids['automation']}"
                                   f"&until={ids['start'].date()}").data)  # fmt: skip
    assert series[0] == header and len(series) == 1  # the series started a day later
    series = parse(editor(app).get(f"/reports/ledger.csv?automation_id={ids['automation']}").data)
    assert len(series) == 12 and {row[3] for row in series[1:]} == {
        "60 days before the end", "30 days before the end"}  # fmt: skip
    assert {row[2] for row in series[1:]} == {"'-Expiry series"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_chart_js_is_served_from_node_modules_or_the_page_goes_without(
    app: Flask, db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    build(db)
    client = editor(app)
    if not (results_pages.CHART_JS / "chart.umd.js").is_file():
        pytest.fail("Chart.js is not installed: run `npm ci` (./test.sh does)")
    with client.get("/static/vendor/chart.umd.js") as script:
        assert script.status_code == 200 and script.mimetype == "text/javascript"
        assert script.get_data(as_text=True).startswith("/*!\n * Chart.js v4.")
    monkeypatch.setattr(results_pages, "CHART_JS", tmp_path / "nowhere")
    with caplog.at_level(logging.WARNING):
        assert client.get("/static/vendor/chart.umd.js").status_code == 404
    assert "Chart.js is not installed" in caplog.text and "npm ci" in caplog.text
    page = client.get("/reports").get_data(as_text=True)
    assert "=Gold" in page and "The chart library did not load" in page
