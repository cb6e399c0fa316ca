"""The service report's figures against hand-computed ones (tests/service/report_data.py):
points before and after the letter, incidents in the same span either side, ratings; per
campaign and per segment; sent the letter against held out."""

from __future__ import annotations

from datetime import timedelta

from campaigns.db import Database
from campaigns.service import reports
from campaigns.service.reports import Incidents, Points, Scope
from tests.service.report_data import NOW, T, build


def test_a_campaigns_report_counts_its_recipients_against_its_held_out(db: Database) -> None:
    ids = build(db)
    with db.unit_of_work() as s:
        shown = reports.report(s, Scope(campaign_id=ids["policy"]), now=NOW)

    sent, held = shown.groups["recipients"], shown.groups["held_out"]
    # ada, bob and cyd (ambiguous: may have read it); hal and hef. fay and sue: not at all.
    assert (sent.customers, held.customers, shown.customers) == (3, 2, 5)
    assert round(sent.days, 3) == round(held.days, 3) == 90
    assert (shown.first, shown.last) == (T, T + timedelta(minutes=30))
    # Before: ada 10, bob 4 - 1. After: the campaign's 3 to ada; hal's 2 from another one.
    assert sent.points == Points(before=13, granted=3, by_campaign=3, purchased=6, refunded=2,
                                 used=2, expired=1, adjusted=-1, outstanding=20)  # fmt: skip
    assert held.points == Points(before=5, granted=2, used=1, outstanding=6)
    # ada: one chargeable incident in the 90 days before (not the one 95 days before), two
    # after; bob's came 100 days after. hef: one before, one after.
    assert sent.incidents == Incidents(before=1, after=2, chargeable_before=1, chargeable_after=1,
                                       points_before=1, points_after=1, customers_before=1,
                                       customers_after=1)  # fmt: skip
    assert held.incidents == Incidents(before=1, after=1, chargeable_after=1, customers_before=1,
                                       customers_after=1)  # fmt: skip
    assert sent.per_customer(sent.incidents.after) == 2 / 3
    assert (sent.satisfaction_before.nps, sent.satisfaction_before.csat) == (100, None)
    assert (sent.satisfaction_after.csat, sent.satisfaction_after.csat_responses) == (1.0, 1)
    assert (held.satisfaction_after.csat, held.satisfaction_after.to_follow_up) == (0.0, 1)
    assert held.satisfaction_before.responses == 0


def test_a_segments_report_takes_each_customer_from_their_first_letter(db: Database) -> None:
    ids = build(db)
    with db.unit_of_work() as s:
        shown = reports.report(s, Scope(segment_id=ids["segment"]), now=NOW)

    sent, held = shown.groups["recipients"], shown.groups["held_out"]
    # hal, held out of the policy letter, was sent the upsell 10 days later: sent from then.
    assert (sent.customers, held.customers) == (4, 1)
    assert sent.points == Points(before=13, granted=5, purchased=6, refunded=2, used=2,
                                 expired=1, adjusted=-1, outstanding=22)  # fmt: skip
    assert held.points == Points(before=5, used=1, outstanding=4)
    assert shown.last == T + 10 * timedelta(days=1) + timedelta(minutes=30)


def test_a_young_letter_is_compared_over_the_days_it_has_had_on_both_sides(db: Database) -> None:
    ids = build(db)
    with db.unit_of_work() as s:
        shown = reports.report(s, Scope(campaign_id=ids["policy"]), now=T + timedelta(days=20))

    sent, held = shown.groups["recipients"], shown.groups["held_out"]
    # ada's and bob's letters went 30 minutes after the decision; cyd's has no sending time.
    assert round(held.days, 3) == 20 and round(sent.days, 4) == round(20 - 2 / 3 / 48, 4)
    # 20 days each side: ada's incidents 10 days before and 3 after; hef's are further out.
    assert (sent.incidents.before, sent.incidents.after) == (1, 1)
    assert (held.incidents.before, held.incidents.after) == (0, 0)


def test_a_scope_without_letters_has_empty_groups(db: Database) -> None:
    with db.unit_of_work() as s:
        shown = reports.report(s, Scope(campaign_id=999), now=NOW)

    assert shown.customers == 0 and shown.first is None
    assert shown.groups["recipients"] == reports.Group("recipients")


def test_the_report_starts_from_the_latest_policy_campaign_that_wrote_letters(
    db: Database,
) -> None:
    with db.unit_of_work() as s:
        assert reports.latest_policy_campaign(s) is None
    ids = build(db)
    with db.unit_of_work() as s:
        assert reports.latest_policy_campaign(s) == ids["policy"]
