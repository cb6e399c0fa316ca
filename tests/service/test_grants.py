"""A campaign's points grant: counted in the letter's balance, written once when it is sent."""

from __future__ import annotations

import email
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from campaigns.audience import contacts
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling
from campaigns.embedded.services import SMTPCatcher
from campaigns.errors import ValidationError
from campaigns.models import Delivery, DeliveryState, LetterCategory, LetterKind, PointsEntry
from campaigns.service import points
from tests.factories import approve_legal, deliver, launch_now, make_segment, make_version

LETTER = (
    "<p>Dear {{ contact.first_name }}, you now have {{ contact.service_points }} points.</p>"
    '<p><a href="{{ acknowledge_url }}">I have read the terms</a></p>'
)
TODAY = utcnow().date()


def _policy_campaign(db: Database, grant: scheduling.Grant, *, holdout: int = 0) -> int:
    """Ten customers (the first five of over five years), a policy letter with the grant."""
    with db.unit_of_work() as s:
        for n in range(10):
            since = TODAY - timedelta(days=365 * (8 if n < 5 else 2))
            contact = contacts.create_contact(s, f"c{n}@example.com", first_name=f"C{n}",
                                              customer_since=since)  # fmt: skip
            if n in (0, 7):  # two had points before: 4 bought, 1 used
                points.record(s, contact.id, "purchase", 4, source="api")
                points.record(s, contact.id, "use", 1, source="api")
        terms = make_version(s, name="Terms", kind=LetterKind.POLICY,
                             category=LetterCategory.LEGAL, html=LETTER)  # fmt: skip
        version = approve_legal(s, terms)
        campaign = scheduling.create_campaign(
            s, "Terms re-stated", segment_id=make_segment(s).id,
            letter_version_id=version.id, holdout_percent=holdout, grant=grant,
        )  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        return campaign.id


def _letters(smtp_server: SMTPCatcher) -> dict[str, str]:
    found = {}
    for raw in smtp_server.messages:
        message = email.message_from_bytes(raw.data)
        (part,) = [p for p in message.walk() if p.get_content_type() == "text/plain"]
        found[str(message["To"])] = part.get_payload(decode=True).decode()
    return found


def test_each_letter_shows_the_balance_with_its_grant_and_the_grant_is_written_once(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    grant = scheduling.Grant(3, loyal_points=5, loyal_years=5, expires_days=365)
    campaign_id = _policy_campaign(db, grant, holdout=20)
    deliver(db, launch_now(db), smtp_url=smtp_server.url, settings=settings)

    with db.unit_of_work() as s:
        rows = list(s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)))
        assert points.apply_grants(s) == len([r for r in rows if r.state == DeliveryState.SENT])
    with db.unit_of_work() as s:
        assert points.apply_grants(s) == 0  # once: a second sweep writes nothing
        by_contact = {e.contact_id: e for e in s.scalars(
            select(PointsEntry).where(PointsEntry.kind == "grant"))}  # fmt: skip
        balances = points.balances(s, [r.contact_id for r in rows])

    letters = _letters(smtp_server)
    held_out = [r for r in rows if r.state == DeliveryState.HELD_OUT]
    sent = [r for r in rows if r.state == DeliveryState.SENT]
    assert held_out and len(sent) + len(held_out) == 10
    for row in sent:
        n = int(row.email[1])
        expected = (5 if n < 5 else 3) + (3 if n in (0, 7) else 0)
        assert f"you now have {expected} points" in letters[row.email]
        assert balances[row.contact_id] == expected  # the ledger agrees with the letter
        entry = by_contact[row.contact_id]
        assert (entry.delivery_id, entry.campaign_id, entry.source) == (row.id, campaign_id,
                                                                        "campaign")  # fmt: skip
        assert entry.expires_on == row.sent_at.date() + timedelta(days=365)
        assert row.detail["points_granted"] == (5 if n < 5 else 3)
    for row in held_out:  # the experiment: held-out recipients get no points
        assert row.contact_id not in by_contact and row.email not in letters
        assert balances[row.contact_id] == (3 if int(row.email[1]) in (0, 7) else 0)
    with db.unit_of_work() as s:
        assert points.granted_by_campaign(s, campaign_id) == (
            len(sent),
            sum(by_contact[r.contact_id].amount for r in sent),
        )


def test_a_batch_applies_only_its_own_rows_and_unsent_letters_get_nothing(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    campaign_id = _policy_campaign(db, scheduling.Grant(2))
    batches = launch_now(db, size=5)
    deliver(db, batches, smtp_url=smtp_server.url, settings=settings)
    with db.unit_of_work() as s:
        assert points.apply_grants(s, batches[0]) == 5
        assert points.apply_grants(s, batches[0]) == 0
        assert points.apply_grants(s, [999_999]) == 0
        assert points.apply_grants(s) == 5
        assert points.granted_by_campaign(s, campaign_id) == (10, 20)


@pytest.mark.parametrize(
    ("grant", "field"),
    [
        (scheduling.Grant(0), "grant_points"),
        (scheduling.Grant(3, loyal_points=5), "grant_loyal_points"),
        (scheduling.Grant(3, loyal_points=5, loyal_years=0), "grant_loyal_years"),
        (scheduling.Grant(3, expires_days=0), "grant_expires_days"),
    ],
)
def test_a_bad_grant_is_refused_naming_the_field(grant: scheduling.Grant, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        grant.check()
    assert refused.value.field == field


def test_the_describe_line_of_the_campaign_page() -> None:
    grant = scheduling.Grant(3, loyal_points=5, loyal_years=5, expires_days=365)
    assert grant.describe() == ("3 points (5 for customers of 5 years or more), expiring 365 "
                                "days after the letter")  # fmt: skip
    assert date(2020, 1, 1) < TODAY  # the loyal customers above are 8 years old
