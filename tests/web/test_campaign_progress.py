"""The campaign page's live figures: counts, pace and time left, as JSON for its script."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import update

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import ledger, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Campaign, CampaignStatus, Delivery, Role
from campaigns.models import DeliveryState as State
from tests.factories import launch_now, ledger_rows, schedule_campaign
from tests.web.conftest import login

EMAILS = [f"{name}@example.com" for name in ("ann", "bob", "cy", "dee", "eve")]


def test_a_viewer_reads_the_counts_of_a_campaign_partway_through(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    campaign_id = schedule_campaign(db, "Offer", EMAILS)
    first, *_rest = launch_now(db, size=2)
    mailer = SMTPMailer(smtp_server.url)
    sending.deliver_batch(db, first, mailer=mailer, settings=settings)
    mailer.close()
    client = app.test_client()
    login(client, Role.VIEWER)

    answer = client.get(f"/campaigns/{campaign_id}/progress")

    assert answer.status_code == 200 and answer.mimetype == "application/json"
    figures = answer.get_json()
    assert figures["status"] == "running" and figures["status_reason"] == ""
    assert figures["counts"] == {
        "queued": 3, "sending": 0, "sent": 2, "failed": 0, "suppressed": 0, "held_out": 0,
        "ambiguous": 0,
    }  # fmt: skip
    assert (figures["total"], figures["done"]) == (5, 2)
    # Two letters just went: the pace is measured since the launch, not over a whole minute.
    assert figures["rate_per_second"] > 0
    assert figures["eta_seconds"] is not None and figures["eta_seconds"] >= 0
    assert figures["started_at"] is not None and figures["completed_at"] is None


def test_a_finished_campaign_reports_everything_done_and_no_time_left(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    campaign_id = schedule_campaign(db, "Offer", EMAILS[:2])
    smtp_server.reply = lambda r: "554 5.7.1 no such user" if "bob@" in r.recipients[0] else None
    mailer = SMTPMailer(smtp_server.url)
    for batch in launch_now(db):
        sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    mailer.close()
    client = app.test_client()
    login(client, Role.VIEWER)

    figures = client.get(f"/campaigns/{campaign_id}/progress").get_json()

    assert figures["status"] == "completed" and figures["completed_at"] is not None
    assert (figures["counts"]["sent"], figures["counts"]["failed"]) == (1, 1)
    assert (figures["total"], figures["done"]) == (2, 2)
    assert figures["eta_seconds"] is None


def test_the_pace_counts_the_letters_sent_in_the_last_minute(db: Database) -> None:
    campaign_id = schedule_campaign(db, "Offer", EMAILS)
    launch_now(db)
    now = utcnow()
    with db.unit_of_work() as s:
        just_launched = ledger.progress(s, campaign_id, now=now)
    rows = ledger_rows(db, campaign_id)
    sent_at = {"ann@example.com": now - timedelta(seconds=20),
               "bob@example.com": now - timedelta(seconds=50),
               "cy@example.com": now - timedelta(minutes=5)}  # fmt: skip
    with db.unit_of_work() as s:
        s.execute(update(Campaign).where(Campaign.id == campaign_id)
                  .values(started_at=now - timedelta(minutes=10)))  # fmt: skip
        for email, moment in sent_at.items():
            s.execute(update(Delivery).where(Delivery.id == rows[email].id)
                      .values(state=State.SENT, sent_at=moment))  # fmt: skip

    with db.unit_of_work() as s:
        figures = ledger.progress(s, campaign_id, now=now)

    # Nothing had gone yet: no pace, so no guess at the time left.
    assert (just_launched.total, just_launched.done) == (5, 0)
    assert (just_launched.rate_per_second, just_launched.eta_seconds) == (0, None)
    assert figures.status == CampaignStatus.RUNNING
    assert (figures.total, figures.done, figures.counts[State.QUEUED]) == (5, 3, 2)
    assert figures.rate_per_second == pytest.approx(2 / 60)  # two letters in the last minute
    assert figures.eta_seconds == pytest.approx(60)  # two left at two a minute


def test_the_progress_of_an_unknown_campaign_is_a_json_404_and_needs_a_login(
    app: Flask,
) -> None:
    client = app.test_client()
    assert client.get("/campaigns/1/progress").status_code == 302  # to the login page
    login(client, Role.VIEWER)

    answer = client.get("/campaigns/999/progress", headers={"Accept": "application/json"})

    assert answer.status_code == 404
    assert answer.get_json() == {"error": "no campaign #999"}


def test_the_campaign_page_marks_its_live_figures_for_the_script(app: Flask, db: Database) -> None:
    campaign_id = schedule_campaign(db, "Offer", EMAILS)
    client = app.test_client()
    login(client, Role.VIEWER)

    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)

    assert f'data-progress-url="/campaigns/{campaign_id}/progress"' in page
    assert "data-progress-status>scheduled</span>" in page
    assert 'data-progress-count="sent">0<' in page
    assert "/static/progress.js" in page
    script = client.get("/static/progress.js")
    assert script.status_code == 200 and b"data-progress-" in script.data
    script.close()
