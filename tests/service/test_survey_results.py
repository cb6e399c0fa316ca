"""Survey results against figures worked out by hand (tests/service/survey_data.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from campaigns.db import Database
from campaigns.service import survey_results
from campaigns.service.survey_results import Filters
from tests.service.survey_data import respond, results_data, survey_row, survey_version

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday


def test_csat_nps_responses_and_discarded_clicks_per_segment_campaign_and_step(
    db: Database,
) -> None:
    ids = results_data(db, START)
    with db.unit_of_work() as s:
        by_segment = survey_results.results(s, "segment")
        by_campaign = survey_results.results(s, "campaign")
        by_step = survey_results.results(s, "step")
    gold, nobody = by_segment.lines
    assert (gold.key, gold.label, nobody.key) == (f"segment:{ids['gold']}", "Gold", "segment:none")
    g = gold.figures
    assert (g.sent, g.responses, g.csat_responses, g.satisfied, g.to_follow_up) == (10, 6, 6, 3, 2)
    assert (g.csat, g.nps, g.response_rate, g.discarded) == (0.5, None, 0.6, 5)
    n = nobody.figures
    assert (n.sent, n.responses, n.promoters, n.detractors, n.discarded) == (8, 7, 3, 2, 2)
    assert n.csat is None and n.nps == pytest.approx(100 / 7)  # (3 − 2) / 7 = 14.3
    total = by_segment.total
    assert (total.sent, total.responses, total.discarded, total.to_follow_up) == (18, 13, 7, 4)
    assert total.response_rate == pytest.approx(13 / 18)
    assert [(line.key, line.label, line.detail) for line in by_campaign.lines] == [
        (f"campaign:{ids['campaign']}", "Gold survey", "campaign"),
        (f"automation:{ids['automation']}", "After the end", "automation"),
    ]
    (step,) = by_step.lines
    assert (step.key, step.label) == (f"step:{ids['step']}", "14 days after the end")
    assert step.detail == "After the end"
    assert step.figures == nobody.figures


def test_filters_narrow_the_letters_by_the_day_they_were_sent(db: Database) -> None:
    ids = results_data(db, START)
    first_two_days = Filters(since=START.date(), until=START.date() + timedelta(days=1))
    with db.unit_of_work() as s:
        early = survey_results.results(s, "segment", first_two_days).total
        step = survey_results.results(s, "campaign", Filters(automation_id=ids["automation"]))
        gold = survey_results.results(s, "step", Filters(segment_id=ids["gold"]))
    # Days 0 and 1: g0, g5 and g1, g6 (g10 failed); g0, g1 and g5 answered 5, 5 and 2.
    assert (early.sent, early.responses, early.satisfied, early.unsatisfied) == (4, 3, 2, 1)
    assert [line.label for line in step.lines] == ["After the end"]
    assert gold.lines == []  # no step wrote to Gold


def test_responses_over_time_by_day_and_by_week(db: Database) -> None:
    results_data(db, START)
    with db.unit_of_work() as s:
        days = survey_results.over_time(s)
        first_day = survey_results.over_time(s, Filters(since=START.date(), until=START.date()))
    # g_i answered the day after day i % 5 (g0 and g5 on day 1), n0–n6 on day 8: days 1 to
    # 8, quiet ones as zeros.
    assert [p.start for p in days] == [START.date() + timedelta(days=n) for n in range(1, 9)]
    assert [p.figures.responses for p in days] == [2, 1, 1, 1, 1, 0, 0, 7]
    assert [p.figures.satisfied for p in days[:5]] == [1, 1, 1, 0, 0]  # 5, 2 | 5 | 4 | 3 | 1
    assert days[-1].figures.nps == pytest.approx(100 / 7)
    assert [(p.start, p.figures.responses) for p in first_day] == [(date(2026, 10, 6), 2)]
    with db.unit_of_work() as s:
        late = survey_row(s, "late@example.com", survey_version(s, name="Late"), START)
        respond(s, late, "csat", 4, START + timedelta(days=100), "")
        spread = survey_results.over_time(s)
    # Day 1 to day 100 is more than 62 days: weekly, each week from a Monday.
    assert [p.start for p in spread][:2] == [date(2026, 10, 5), date(2026, 10, 12)]
    assert all(p.start.weekday() == 0 for p in spread) and len(spread) == 15
    assert [p.figures.responses for p in spread][:2] == [6, 7]
    assert sum(p.figures.responses for p in spread) == 14


def test_detractors_list_and_csv_name_who_to_follow_up(db: Database) -> None:
    results_data(db, START)
    with db.unit_of_work() as s:
        listed = survey_results.detractors(s)
        body = "".join(survey_results.detractors_csv(s))
    assert [(d.email, d.scale, d.score, d.comment) for d in listed] == [
        ("n6@example.com", "nps", 0, "Nobody called back"),
        ("n5@example.com", "nps", 6, ""),
        ("g4@example.com", "csat", 1, "=Waited three days for a call back"),  # day 5
        ("g5@example.com", "csat", 2, ""),  # day 1
    ]
    assert listed[0].sent_by == "After the end: 14 days after the end"
    assert listed[2].sent_by == "Gold survey" and listed[2].letter == "Support survey"
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == list(survey_results.CSV_HEADER)
    assert [row[1] for row in rows[1:]] == ["g4@example.com", "g5@example.com",
                                            "n5@example.com", "n6@example.com"]  # fmt: skip
    # A comment a spreadsheet would run as a formula is shown, never run.
    assert rows[1][5] == "'=Waited three days for a call back" and rows[1][4] == "1"
    assert rows[1][0] == listed[2].responded_at.isoformat()
