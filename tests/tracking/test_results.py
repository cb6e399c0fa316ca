"""Reports from the pre-aggregated cells: every figure of a small known ledger."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.audience import segments
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling
from campaigns.models import DeliveryState, EventKind, ReportActivity, SegmentTarget
from campaigns.tracking import conversions, results, retention
from tests.tracking.ledger_rows import customer, event, letter, version

WINDOW = timedelta(days=30)
DAY = datetime(2026, 11, 2, 9, 0, tzinfo=utcnow().tzinfo)


def _ledger(db: Database) -> dict[str, int]:
    """Campaign "Renew" to two segments (Gold: 4 rows, Basic: 2) and what customers did."""
    ids: dict[str, int] = {}
    with db.unit_of_work() as s:
        gold, basic = (segments.create_segment(s, name, target=SegmentTarget.CONTRACTS,
                                               rules={"match": "all", "conditions": []}).id
                       for name in ("Gold", "Basic"))  # fmt: skip
        offer = version(s, name="Renewal offer")
        campaign = scheduling.create_campaign(s, "Renew", segment_id=gold, letter_version_id=offer)
        ids |= {"gold": gold, "basic": basic, "campaign": campaign.id, "version": offer}
        people = {}
        for name, segment, state in (
            ("ann", gold, DeliveryState.SENT), ("ben", gold, DeliveryState.SENT),
            ("cat", gold, DeliveryState.HELD_OUT), ("dan", gold, DeliveryState.SUPPRESSED),
            ("eve", basic, DeliveryState.SENT), ("fay", basic, DeliveryState.FAILED),
        ):  # fmt: skip
            contact, contract = customer(s, f"{name}@example.com")
            row = letter(s, contact, contract, offer, DAY, state, campaign_id=campaign.id,
                         segment_id=segment)  # fmt: skip
            people[name] = (contact, contract, row)
            ids[name] = contract
        ann, ben, eve = people["ann"], people["ben"], people["eve"]
        later = DAY + timedelta(hours=2)
        event(s, ann[2], ann[0], EventKind.OPEN, later)
        event(s, ann[2], ann[0], EventKind.OPEN, DAY + timedelta(days=1))  # counted once
        event(s, ann[2], ann[0], EventKind.OPEN, DAY, machine=True)
        event(s, ann[2], ann[0], EventKind.RENEWAL_CLICK, later + timedelta(days=1))
        event(s, ben[2], ben[0], EventKind.OPEN, DAY, machine=True)
        event(s, ben[2], ben[0], EventKind.CLICK, DAY, machine=True)
        event(s, eve[2], eve[0], EventKind.UNSUBSCRIBE, later)
        _, other = customer(s, "gus@example.com")
        for key, contract, amount, currency, days in (
            ("a", ann[1], "100", "EUR", 3),  # credited to Ann's letter
            ("c", people["cat"][1], "80", "EUR", 4),  # held out: organic, but an outcome
            ("g", other, "50", "USD", 5),  # organic
        ):  # fmt: skip
            conversions.record(s, contract_id=contract, amount=amount, currency=currency,
                               idempotency_key=key, occurred_at=DAY + timedelta(days=days),
                               window=WINDOW, now=DAY + timedelta(days=9))  # fmt: skip
        results.refresh(s, window=WINDOW, now=DAY + timedelta(days=10))
    return ids


def test_the_report_per_segment_counts_people_and_machines_apart(db: Database) -> None:
    ids = _ledger(db)
    with db.unit_of_work() as s:
        report = results.report(s, "segment")
    gold, basic = report.lines
    assert (gold.key, gold.label, basic.label) == (f"segment:{ids['gold']}", "Gold", "Basic")
    assert gold.figures.counts == {
        "audience": 4, "sent": 2, "failed": 0, "suppressed": 1, "held_out": 1, "deferred": 0,
        "opened": 1, "opened_machine": 2, "clicked": 1, "clicked_machine": 1,
        "renewal_clicks": 1, "acknowledged": 0, "unsubscribed": 0, "bounced": 0,
        "complained": 0, "renewed_sent": 1, "renewed_held_out": 1,
    }  # fmt: skip
    assert (gold.figures.renewed, gold.figures.revenue) == (1, {"EUR": Decimal("100.00")})
    assert gold.figures.held_out_revenue == {"EUR": Decimal("80.00")}
    assert gold.figures.rate("opened") == 0.5 and gold.figures.rate("renewed") == 0.5
    assert basic.figures.counts["sent"] == 1 and basic.figures.counts["failed"] == 1
    assert basic.figures.counts["unsubscribed"] == 1 and basic.figures.renewed == 0
    assert report.total.counts["audience"] == 6 and report.total.renewed == 1
    assert (report.organic.renewed, report.organic.revenue) == (
        2, {"EUR": Decimal("80.00"), "USD": Decimal("50.00")})  # fmt: skip
    assert report.refreshed_at == DAY + timedelta(days=10)


def test_the_other_dimensions_and_the_filters(db: Database) -> None:
    ids = _ledger(db)
    with db.unit_of_work() as s:
        (by_campaign,) = results.report(s, "campaign").lines
        (by_version,) = results.report(s, "version").lines
        assert results.report(s, "step").lines == []  # no automation sent anything
        only_basic = results.report(s, "segment", results.Filters(segment_id=ids["basic"]))
        before = results.report(s, "segment", results.Filters(until=date(2026, 11, 1)))
        day = date(2026, 11, 2)
        on_the_day = results.report(s, "campaign", results.Filters(since=day, until=day))
    assert (by_campaign.key, by_campaign.label) == (f"campaign:{ids['campaign']}", "Renew")
    assert (by_version.label, by_version.figures.counts["audience"]) == ("Renewal offer v1", 6)
    assert [line.label for line in only_basic.lines] == ["Basic"]
    assert only_basic.organic.renewed == 0  # organic renewals belong to no segment
    assert before.lines == [] and before.organic.renewed == 0
    assert on_the_day.total.counts["sent"] == 3


def test_daily_activity_counts_first_human_opens_and_clicks(db: Database) -> None:
    _ledger(db)
    with db.unit_of_work() as s:
        days: dict[date, tuple[int, ...]] = {}
        for a in s.scalars(select(ReportActivity)):  # one row per segment and day
            figures = (a.sent, a.opened, a.clicked, a.renewed)
            before = days.get(a.day, (0, 0, 0, 0))
            days[a.day] = tuple(x + y for x, y in zip(before, figures, strict=True))
    assert days == {
        date(2026, 11, 2): (3, 1, 0, 0),
        date(2026, 11, 3): (0, 0, 1, 0),
        date(2026, 11, 5): (0, 0, 0, 1),
    }


def test_retention_of_recipients_against_the_held_out(db: Database) -> None:
    ids = _ledger(db)  # letters on 2 Nov 2026 about contracts ending 1 Dec 2026
    with db.unit_of_work() as s:
        later = results_retention(s, ids["campaign"], DAY + timedelta(days=200))
        early = results_retention(s, ids["campaign"], DAY + timedelta(days=60))
    by = {(h.months, h.group): (h.measured, h.renewed, h.churned) for h in later.horizons}
    # Recipients: Ann renewed on day 3; Ben and Eve's cover ended on 1 Dec, unrenewed.
    # Held out: Cat renewed on day 4. Fay (failed) and Dan (suppressed) are in neither.
    assert by[(1, "recipients")] == (3, 1, 2) and by[(1, "held_out")] == (1, 1, 0)
    assert by[(6, "recipients")] == (3, 1, 2)
    assert later.sizes == {"recipients": 3, "held_out": 1}
    assert [h.measured for h in early.horizons if h.months == 3] == [0, 0]
    assert later.curves["recipients"][:5] == [0, 0, 0, 1 / 3, 1 / 3]
    assert later.curves["held_out"][:5] == [0, 0, 0, 0, 1]


def test_retention_of_a_segment_counts_the_letters_written_for_it(db: Database) -> None:
    ids = _ledger(db)
    with db.unit_of_work() as s:
        gold = retention.retention(s, segment_id=ids["gold"], now=DAY + timedelta(days=200))
        basic = retention.retention(s, segment_id=ids["basic"], now=DAY + timedelta(days=200))
    by = {(h.months, h.group): (h.measured, h.renewed, h.churned) for h in gold.horizons}
    # Gold: Ann renewed, Ben churned; Cat, held out, renewed. Basic: Eve alone, churned.
    assert by[(1, "recipients")] == (2, 1, 1) and by[(1, "held_out")] == (1, 1, 0)
    assert (gold.sizes, basic.sizes) == ({"recipients": 2, "held_out": 1},
                                         {"recipients": 1, "held_out": 0})  # fmt: skip


def results_retention(s: Session, campaign_id: int, now: datetime) -> retention.Retention:
    return retention.retention(s, campaign_id=campaign_id, now=now)
