"""The points ledger: replays recorded once, no overdraw under concurrent debits, expiry,
and a balance that is always the sum of the entries."""

from __future__ import annotations

import threading
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from campaigns.audience import contacts
from campaigns.db import Database, utcnow
from campaigns.errors import Conflict, ValidationError
from campaigns.models import PointsEntry
from campaigns.service import points

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=utcnow().tzinfo)


def _contact(db: Database, email: str = "ada@example.com") -> int:
    with db.unit_of_work() as s:
        return contacts.create_contact(s, email, first_name="Ada").id


def _entries(db: Database, contact_id: int) -> list[tuple[str, int, int]]:
    with db.unit_of_work() as s:
        rows = s.scalars(select(PointsEntry).where(PointsEntry.contact_id == contact_id)
                         .order_by(PointsEntry.id))  # fmt: skip
        return [(str(e.kind), e.amount, e.balance_after) for e in rows]


def test_grants_and_debits_replayed_are_recorded_once(db: Database) -> None:
    ada = _contact(db)
    for _ in range(3):
        with db.unit_of_work() as s:
            points.record(s, ada, "grant", 3, source="admin", reason="welcome gift",
                          idempotency_key="gift-1")  # fmt: skip
            points.record(s, ada, "use", 1, source="api", idempotency_key="incident-7")
    assert _entries(db, ada) == [("grant", 3, 3), ("use", -1, 2)]
    with db.unit_of_work() as s, pytest.raises(Conflict, match="already used"):
        points.record(s, ada, "use", 2, source="api", idempotency_key="incident-7")


def test_a_debit_past_the_floor_is_refused_and_nothing_written(db: Database) -> None:
    ada = _contact(db)
    with db.unit_of_work() as s:
        points.record(s, ada, "purchase", 2, source="api", reason="package")
    with db.unit_of_work() as s, pytest.raises(Conflict, match="the balance is 2, 3 asked"):
        points.record(s, ada, "use", 3, source="api")
    with db.unit_of_work() as s:
        points.record(s, ada, "use", 3, source="api", floor=-1)  # a house that allows credit
        points.record(s, ada, "adjust", 5, source="admin", reason="goodwill")
        assert points.balance(s, ada) == 4
    for bad, field in (({"kind": "gift"}, "kind"), ({"amount": 0}, "amount"),
                       ({"amount": 1.5}, "amount"), ({"kind": "refund", "reason": ""}, "reason"),
                       ({"kind": "use", "expires_on": date(2030, 1, 1)}, "expires_on"),
                       ({"expires_on": date(2020, 1, 1)}, "expires_on"),
                       ({"source": "phone"}, "source")):  # fmt: skip
        given = {"kind": "grant", "amount": 1, "source": "admin", "reason": "x", **bad}
        with db.unit_of_work() as s, pytest.raises(ValidationError) as caught:
            points.record(s, ada, given.pop("kind"), given.pop("amount"), **given)  # type: ignore[arg-type]
        assert caught.value.field == field


def test_concurrent_debits_never_overdraw(db: Database) -> None:
    ada = _contact(db)
    with db.unit_of_work() as s:
        points.record(s, ada, "grant", 5, source="admin", reason="gift")
    start, outcomes = threading.Barrier(12), []

    def debit(n: int) -> None:
        start.wait()
        try:
            with db.unit_of_work() as s:
                points.record(s, ada, "use", 1, source="api", idempotency_key=f"i{n}")
            outcomes.append("used")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=debit, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["used"] * 5
    entries = _entries(db, ada)
    assert [after for _, _, after in entries] == [5, 4, 3, 2, 1, 0]
    with db.unit_of_work() as s:
        assert points.balance(s, ada) == 0


def test_unused_points_expire_and_uses_take_the_soonest_expiring_first(db: Database) -> None:
    ada = _contact(db)
    with db.unit_of_work() as s:
        points.record(s, ada, "grant", 3, source="campaign", reason="policy letter",
                      expires_on=date(2026, 12, 31), now=NOW)  # fmt: skip
        points.record(s, ada, "purchase", 5, source="api", reason="package", now=NOW)
        points.record(s, ada, "use", 2, source="api", now=NOW)
    with db.unit_of_work() as s:
        assert points.expire_due(s, today=date(2026, 12, 30)) == 0  # not yet
        assert points.expire_due(s, today=date(2026, 12, 31)) == 1
        assert points.expire_due(s, today=date(2027, 1, 5)) == 0  # once
        # 3 granted to expire, 2 of them used: 1 expires; the 5 bought stay.
        assert points.balance(s, ada) == 5
    assert _entries(db, ada)[-1] == ("expire", -1, 5)


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(st.tuples(st.sampled_from(["grant", "use", "purchase", "refund", "adjust"]),
                          st.integers(min_value=-4, max_value=6), st.booleans()),
                max_size=25))  # fmt: skip
def test_the_balance_is_always_the_sum_of_the_entries(
    db: Database, steps: list[tuple[str, int, bool]]
) -> None:
    ada = _contact(db, f"h{utcnow().timestamp()}@example.com")
    expected = 0
    for n, (kind, amount, replay) in enumerate(steps):
        for _ in range(2 if replay else 1):
            try:
                with db.unit_of_work() as s:
                    made = points.record(s, ada, kind, amount, source="admin", reason="r",
                                         idempotency_key=f"{ada}-{n}")  # fmt: skip
                    if made.created:
                        expected += made.entry.amount
            except (Conflict, ValidationError):
                pass
        assert expected >= 0  # never below the floor
    entries = _entries(db, ada)
    with db.unit_of_work() as s:
        assert points.balance(s, ada) == expected == sum(a for _, a, _ in entries)
        running = 0
        for _, amount, after in entries:
            running += amount
            assert after == running
        s.execute(delete(PointsEntry).where(PointsEntry.contact_id == ada))
        assert s.scalar(select(func.count()).select_from(PointsEntry)
                        .where(PointsEntry.contact_id == ada)) == 0  # fmt: skip
