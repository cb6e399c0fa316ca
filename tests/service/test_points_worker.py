"""The scheduler has a real worker write the expiry of service points past their date."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from campaigns.audience import contacts
from campaigns.db import Database, utcnow
from campaigns.service import points
from tests.conftest import scheduler_once, wait_until


def test_points_past_their_date_expire_through_the_scheduler_and_a_worker(
    db: Database, env: dict[str, str], worker: Path
) -> None:
    weeks_ago = utcnow() - timedelta(days=14)
    with db.unit_of_work() as s:
        ada = contacts.create_contact(s, "ada@example.com", first_name="Ada").id
        points.record(s, ada, "grant", 3, source="admin", reason="policy gift",
                      expires_on=(utcnow() - timedelta(days=1)).date(), now=weeks_ago)  # fmt: skip
        points.record(s, ada, "purchase", 5, source="api", reason="package", now=weeks_ago)
        points.record(s, ada, "use", 1, source="api", now=weeks_ago)
    scheduler_once(env)

    def balance() -> int | None:
        with db.unit_of_work() as s:
            found = points.balance(s, ada)
        return found if found != 7 else None

    # 3 granted to expire yesterday, 1 of them used: 2 expire; the 5 bought stay.
    assert wait_until(balance, timeout=60, what="the worker's expiry of the points") == 5
    with db.unit_of_work() as s:
        (latest, *_) = points.history(s, ada)
        assert (str(latest.kind), latest.amount, latest.source) == ("expire", -2, "system")
