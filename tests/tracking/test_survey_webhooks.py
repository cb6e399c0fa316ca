"""The `survey.detractor` webhook: once per response, with the comment written after the
click, never for a scanner's clicks or a rating changed at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from campaigns.db import Database
from campaigns.models import Delivery, WebhookDelivery, WebhookType
from campaigns.service import surveys
from campaigns.tracking import webhooks
from tests.service.survey_data import PERSON, person_clicks, survey_row, survey_version

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CLICKED = SENT + timedelta(hours=2)


def _letter(db: Database, email: str, scale: str = "csat") -> int:
    with db.unit_of_work() as s:
        return survey_row(s, email, survey_version(s, scale=scale, name=email), SENT)


def _collect(db: Database, now: datetime) -> int:
    with db.unit_of_work() as s:
        return webhooks.collect(s, now=now)


def _sent(db: Database) -> list[dict[str, object]]:
    with db.unit_of_work() as s:
        return list(s.scalars(select(WebhookDelivery.payload).order_by(WebhookDelivery.id)))


def test_a_detractor_is_sent_once_with_the_comment_written_after_the_click(db: Database) -> None:
    with db.unit_of_work() as s:
        webhooks.create_subscription(s, "https://crm.example.com/hooks", user_id=None,
                                     kinds=[WebhookType.SURVEY_DETRACTOR.value],
                                     now=SENT - timedelta(days=1))  # fmt: skip
    unhappy = _letter(db, "ann@example.com")
    with db.unit_of_work() as s:
        person_clicks(s, unhappy, 1, CLICKED)
    with db.unit_of_work() as s:
        surveys.answer(s, unhappy, 1, comment="Three days without an answer", client=PERSON,
                       now=CLICKED + timedelta(minutes=2))  # fmt: skip
    assert _collect(db, CLICKED + timedelta(minutes=5)) == 0  # waiting for the comment
    assert _collect(db, CLICKED + timedelta(minutes=11)) == 1
    (payload,) = _sent(db)
    with db.unit_of_work() as s:
        row = s.get_one(Delivery, unhappy)
        response = surveys.response_of(s, unhappy)
        assert response is not None
        assert payload == {
            "id": f"survey:{response.id}", "type": "survey.detractor",
            "occurred_at": CLICKED.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "data": {"contact_id": row.contact_id, "email": "ann@example.com",
                     "delivery_id": unhappy, "campaign_id": None, "automation_step_id": None,
                     "scale": "csat", "score": 1, "comment": "Three days without an answer",
                     "responded_at": CLICKED.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
        }  # fmt: skip
    # Changes do not send it again: to 2 (still a detractor), to 5 and back to 1.
    for minutes, score in ((30, 2), (40, 5), (50, 1)):
        with db.unit_of_work() as s:
            surveys.answer(s, unhappy, score, client=PERSON,
                           now=CLICKED + timedelta(minutes=minutes))  # fmt: skip
    assert _collect(db, CLICKED + timedelta(hours=2)) == 0
    assert len(_sent(db)) == 1


def test_no_webhook_for_scanners_or_a_rating_changed_within_minutes(db: Database) -> None:
    with db.unit_of_work() as s:
        webhooks.create_subscription(s, "https://crm.example.com/hooks", user_id=None,
                                     now=SENT - timedelta(days=1))  # fmt: skip
    scanned, corrected, nps = (_letter(db, "bo@example.com"), _letter(db, "cy@example.com"),
                               _letter(db, "di@example.com", scale="nps"))  # fmt: skip
    for n in range(5):  # a scanner: every link within a second
        with db.unit_of_work() as s:
            person_clicks(s, scanned, n + 1, CLICKED + timedelta(seconds=0.2 * n))
    with db.unit_of_work() as s:
        person_clicks(s, corrected, 1, CLICKED)  # a slip of the finger …
    with db.unit_of_work() as s:
        surveys.answer(s, corrected, 5, client=PERSON, now=CLICKED + timedelta(minutes=1))
    with db.unit_of_work() as s:
        person_clicks(s, nps, 7, CLICKED)  # a passive on 0–10: no detractor
    assert _collect(db, CLICKED + timedelta(hours=1)) == 0
