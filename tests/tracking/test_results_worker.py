"""The scheduler has a real worker rebuild the report figures every REPORT_SECONDS."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from campaigns.db import Database
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import ReportCell, ReportRefresh
from tests.conftest import scheduler_once, wait_until
from tests.factories import schedule_campaign


def test_a_scheduler_tick_has_a_worker_rebuild_the_figures(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, worker: Path
) -> None:
    campaign_id = schedule_campaign(db, "Autumn offer", [f"c{n}@example.com" for n in range(3)])
    assert "launched 1 campaign(s)" in scheduler_once(env)

    def rebuilt() -> int | None:
        with db.unit_of_work() as s:
            if s.get(ReportRefresh, 1) is None:
                return None
            return s.scalar(select(func.sum(ReportCell.audience))
                            .where(ReportCell.campaign_id == campaign_id))  # fmt: skip

    assert wait_until(rebuilt, timeout=60, what="the worker's rebuild of the figures") == 3

    def sent() -> int | None:  # the rebuild that follows the letters out
        with db.unit_of_work() as s:
            found = s.scalar(select(func.sum(ReportCell.sent))
                             .where(ReportCell.campaign_id == campaign_id))  # fmt: skip
        return found if found == 3 else None

    assert wait_until(sent, timeout=60, what="the figures after the letters went out") == 3
    assert "reports rebuilt in" in worker.read_text()
