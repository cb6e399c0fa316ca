"""An editor composes, schedules, pauses and resumes a campaign through the admin."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import select

from campaigns.audience import suppressions
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling
from campaigns.models import Campaign, CampaignStatus, Role
from tests.factories import make_contact, make_segment, make_version
from tests.web.conftest import csrf_token, login


def test_an_editor_creates_schedules_pauses_and_resumes_a_campaign(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        for name in ("ann", "bob"):
            make_contact(s, f"{name}@example.com", first_name=name)
        segment_id = make_segment(s).id
        version_id = make_version(s).id
    client = app.test_client()
    login(client, Role.EDITOR)
    token = csrf_token(client, "/campaigns/new")
    answer = client.post("/campaigns", data={
        "name": "Spring offer", "segment_id": segment_id, "letter_version_id": version_id,
        "holdout_percent": "0", "csrf_token": token,
    })  # fmt: skip
    assert answer.status_code == 302
    detail = answer.headers["Location"]
    with db.unit_of_work() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert campaign.status == CampaignStatus.DRAFT

    # The draft shows who would get it now (one address is on the suppression list) ...
    with db.unit_of_work() as s:
        suppressions.suppress(s, "bob@example.com", reason="asked by phone", source="admin")
    page = client.get(detail).get_data(as_text=True)
    assert "<strong>1</strong> of 2 recipients would get the letter" in page
    assert "1 — address is on the suppression list" in page
    # ... and scheduling it asks to confirm that audience.
    answer = client.post(f"{detail}/schedule", data={"send_at": "", "csrf_token": token},
                         follow_redirects=True)  # fmt: skip
    assert "tick the box to confirm the audience" in answer.get_data(as_text=True)
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign.id).status == CampaignStatus.DRAFT
    client.post(f"{detail}/schedule",
                data={"send_at": "", "confirm": "yes", "csrf_token": token})  # fmt: skip
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign.id).status == CampaignStatus.SCHEDULED
        scheduling.launch_due(s, now=utcnow())

    client.post(f"{detail}/pause", data={"csrf_token": token})
    page = client.get(detail).get_data(as_text=True)
    assert "paused by a user" in page and "Resume" in page

    client.post(f"{detail}/resume", data={"csrf_token": token})
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign.id).status == CampaignStatus.RUNNING
    # Resuming hands the still-queued row (Ann's: Bob's was suppressed) back to the
    # workers, after the commit.
    assert [sorted(batch) for batch in app.config["ENQUEUED"]] == [[1]]


def test_an_illegal_action_is_explained_not_crashed(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        make_contact(s, "ann@example.com")
        campaign = scheduling.create_campaign(
            s, "Offer", segment_id=make_segment(s).id, letter_version_id=make_version(s).id
        )
    client = app.test_client()
    login(client, Role.EDITOR)
    token = csrf_token(client, "/campaigns")
    answer = client.post(f"/campaigns/{campaign.id}/pause", data={"csrf_token": token},
                         follow_redirects=True)  # fmt: skip
    assert answer.status_code == 200
    assert "a draft campaign cannot become paused" in answer.get_data(as_text=True)


def test_a_campaign_can_be_paced_and_a_bad_pace_is_explained(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        segment_id, version_id = make_segment(s).id, make_version(s).id
    client = app.test_client()
    login(client, Role.EDITOR)
    token = csrf_token(client, "/campaigns/new")
    fields = {"segment_id": segment_id, "letter_version_id": version_id, "csrf_token": token}
    bad = client.post("/campaigns", data={**fields, "name": "Too slow", "rate_per_minute": "-5"})
    assert bad.status_code == 400 and "at least 1 letter a minute" in bad.get_data(as_text=True)
    answer = client.post("/campaigns", data={**fields, "name": "Paced", "rate_per_minute": "30"})
    assert "at most 30 letters a minute" in client.get(answer.headers["Location"]).get_data(
        as_text=True
    )
    with db.unit_of_work() as s:
        assert [c.rate_per_minute for c in s.scalars(select(Campaign))] == [30]


def test_a_campaign_is_scheduled_in_the_users_time_zone_with_its_priority_and_caps(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        make_contact(s, "ann@example.com")
        segment_id, version_id = make_segment(s).id, make_version(s).id
    client = app.test_client()
    login(client, Role.EDITOR)
    token = csrf_token(client, "/campaigns/new")
    detail = client.post("/campaigns", data={
        "name": "Spring offer", "segment_id": segment_id, "letter_version_id": version_id,
        "priority": "5", "cap_per_week": "", "cap_gap_hours": "6", "csrf_token": token,
    }).headers["Location"]  # fmt: skip
    client.post(f"{detail}/schedule", data={
        "send_at": "2027-03-29T09:00", "confirm": "yes", "zone": "Europe/Berlin",
        "csrf_token": token,
    })  # fmt: skip
    with db.unit_of_work() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert campaign.priority == 5
        assert (campaign.cap_per_week, campaign.cap_gap_hours) == (None, 6)
        # 09:00 in Berlin on the first Monday of summer time is 07:00 UTC.
        assert campaign.send_at == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)


def test_a_campaign_carries_a_points_grant_shown_on_its_page(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        segment_id, version_id = make_segment(s).id, make_version(s).id
    client = app.test_client()
    login(client, Role.EDITOR)
    fields = {"segment_id": segment_id, "letter_version_id": version_id,
              "csrf_token": csrf_token(client, "/campaigns/new"), "name": "Gift"}  # fmt: skip
    bad = client.post("/campaigns", data={**fields, "grant_points": "3", "grant_loyal_points": "5"})
    assert bad.status_code == 400 and "give both the loyal customers" in bad.get_data(as_text=True)
    answer = client.post("/campaigns", data={**fields, "grant_points": "3",
                                             "grant_loyal_points": "5", "grant_loyal_years": "5",
                                             "grant_expires_days": "365"})  # fmt: skip
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert ("3 points (5 for customers of 5 years or more), expiring 365 days after the letter"
            " — so far 0 points to 0 recipients") in page  # fmt: skip
    with db.unit_of_work() as s:
        (campaign,) = s.scalars(select(Campaign))
        assert (campaign.grant_points, campaign.grant_loyal_points) == (3, 5)


def test_a_refused_campaign_form_comes_back_with_everything_typed(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        make_segment(s, name="Everyone")
        segment_id, version_id = make_segment(s, name="Gold customers").id, make_version(s).id
    client = app.test_client()
    login(client, Role.EDITOR)
    answer = client.post("/campaigns", data={
        "name": "Spring <offer>", "segment_id": segment_id, "letter_version_id": version_id,
        "holdout_percent": "60", "priority": "7", "cap_gap_hours": "12", "grant_points": "2",
        "csrf_token": csrf_token(client, "/campaigns/new"),
    })  # fmt: skip
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "Campaign not created: the holdout must be between 0 and 50 percent" in page
    assert 'value="Spring &lt;offer&gt;"' in page
    assert f'<option value="{segment_id}" selected>Gold customers' in page
    assert f'<option value="{version_id}" selected' in page
    for name, value in (("holdout_percent", "60"), ("priority", "7"), ("cap_gap_hours", "12"),
                        ("grant_points", "2")):  # fmt: skip
        assert re.search(rf'name="{name}"[^>]*value="{value}"', page), name
    with db.unit_of_work() as s:
        assert s.scalars(select(Campaign)).all() == []


def test_duplicate_opens_the_form_filled_from_the_campaign(app: Flask, db: Database) -> None:
    with db.unit_of_work() as s:
        segment_id, version_id = make_segment(s, name="Gold customers").id, make_version(s).id
        campaign_id = scheduling.create_campaign(
            s, "Spring offer", segment_id=segment_id, letter_version_id=version_id,
            holdout_percent=10, rate_per_minute=120, priority=3, cap_per_week=1,
            grant=scheduling.Grant(2, loyal_points=5, loyal_years=3, expires_days=90),
        ).id  # fmt: skip
    client = app.test_client()
    login(client, Role.EDITOR)
    detail = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert f'href="/campaigns/new?from={campaign_id}"' in detail
    page = client.get(f"/campaigns/new?from={campaign_id}").get_data(as_text=True)
    assert 'value="Spring offer (copy)"' in page
    assert f'<option value="{segment_id}" selected>Gold customers' in page
    filled = {"holdout_percent": "10", "rate_per_minute": "120", "priority": "3",
              "cap_per_week": "1", "cap_gap_hours": "", "grant_points": "2",
              "grant_loyal_points": "5", "grant_loyal_years": "3",
              "grant_expires_days": "90"}  # fmt: skip
    for name, value in filled.items():
        assert re.search(rf'name="{name}"[^>]*value="{value}"', page), name
    viewer = app.test_client()
    login(viewer, Role.VIEWER)
    assert "Duplicate" not in viewer.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert viewer.get(f"/campaigns/new?from={campaign_id}").status_code == 403


def test_a_draft_is_edited_through_its_form_and_a_scheduled_one_is_not(
    app: Flask, db: Database
) -> None:
    with db.unit_of_work() as s:
        everyone = make_segment(s).id
        gold, version_id = make_segment(s, name="Gold customers").id, make_version(s).id
        campaign_id = scheduling.create_campaign(
            s, "Spring offer", segment_id=everyone, letter_version_id=version_id,
            grant=scheduling.Grant(2),
        ).id  # fmt: skip
    client = app.test_client()
    login(client, Role.EDITOR)
    assert f'href="/campaigns/{campaign_id}/edit"' in client.get(f"/campaigns/{campaign_id}").text
    form = client.get(f"/campaigns/{campaign_id}/edit").text
    assert "<h1>Edit draft</h1>" in form and 'value="Spring offer"' in form
    assert re.search(r'name="grant_points"[^>]*value="2"', form)
    fields = {"name": "Spring offer to gold", "segment_id": gold, "letter_version_id": version_id,
              "holdout_percent": "10", "priority": "2", "grant_points": "",
              "csrf_token": csrf_token(client, f"/campaigns/{campaign_id}/edit")}  # fmt: skip
    refused = client.post(f"/campaigns/{campaign_id}/edit", data={**fields, "priority": "900"})
    assert refused.status_code == 400
    assert "Not saved: the priority must be between -100 and 100" in refused.text
    assert 'value="Spring offer to gold"' in refused.text  # kept as typed
    saved = client.post(f"/campaigns/{campaign_id}/edit", data=fields)
    assert "Draft saved." in client.get(saved.headers["Location"]).text
    with db.unit_of_work() as s:
        campaign = s.get_one(Campaign, campaign_id)
        assert (campaign.name, campaign.segment_id, campaign.holdout_percent) == (
            "Spring offer to gold", gold, 10)  # fmt: skip
        assert (campaign.priority, campaign.grant_points) == (2, None)  # the grant removed
        scheduling.schedule(s, campaign_id, send_at=utcnow())
    page = client.get(f"/campaigns/{campaign_id}").text
    assert f'href="/campaigns/{campaign_id}/edit"' not in page
    opened = client.get(f"/campaigns/{campaign_id}/edit")
    assert opened.status_code == 302
    assert "Only a draft can be edited, and this campaign is scheduled" in client.get(
        opened.headers["Location"]).text  # fmt: skip
    late = client.post(f"/campaigns/{campaign_id}/edit", data={**fields, "name": "Too late"})
    assert "Not saved: a scheduled campaign cannot be edited" in client.get(
        late.headers["Location"]).text  # fmt: skip
    with db.unit_of_work() as s:
        assert s.get_one(Campaign, campaign_id).name == "Spring offer to gold"
    viewer = app.test_client()
    login(viewer, Role.VIEWER)
    assert viewer.get(f"/campaigns/{campaign_id}/edit").status_code == 403
