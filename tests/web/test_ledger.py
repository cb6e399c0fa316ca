"""Resend to failed, from the campaign page's ledger filtered to what failed."""

from __future__ import annotations

from flask import Flask

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Campaign, CampaignStatus, Role
from campaigns.models import DeliveryState as State
from tests.factories import launch_now, ledger_rows, schedule_campaign
from tests.web.conftest import csrf_token, login


def test_resend_to_failed_from_the_admin_sends_the_failed_letters_again(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    campaign_id = schedule_campaign(db, "Offer", ["ann@example.com", "bob@example.com"])
    smtp_server.reply = lambda r: "554 5.7.1 try tomorrow" if "bob@" in r.recipients[0] else None
    mailer = SMTPMailer(smtp_server.url)
    sending.deliver_batch(db, launch_now(db)[0], mailer=mailer, settings=settings)
    client = app.test_client()
    login(client, Role.EDITOR)
    page = client.get(f"/campaigns/{campaign_id}?state=failed").get_data(as_text=True)
    assert "bob@example.com" in page and "554 5.7.1 try tomorrow" in page
    assert "Resend to failed (1)" in page

    token = csrf_token(client, f"/campaigns/{campaign_id}")
    answer = client.post(f"/campaigns/{campaign_id}/resend", data={"csrf_token": token})
    assert answer.status_code == 302
    (batch,) = app.config["ENQUEUED"]
    smtp_server.reply = None
    sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    mailer.close()
    rows = ledger_rows(db, campaign_id)
    assert [rows[e].state for e in ("ann@example.com", "bob@example.com")] == [State.SENT] * 2
    assert sorted(m.recipients[0] for m in smtp_server.messages).count("ann@example.com") == 1
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign_id).status == CampaignStatus.COMPLETED
