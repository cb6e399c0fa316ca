"""A policy re-statement 100 days ago, and its customers' points, incidents and ratings around
it — written straight into the database, for the service report's tests.

Campaign "Policy" (a legal letter, segment "Long-standing") was decided at T (100 days before
NOW); sent 30 minutes later to ada, bob (sent) and cyd (ambiguous: may have gone); hal and
hef were held out; fay failed and sue was suppressed (neither counts). A second campaign,
"Upsell" (to the same segment), sent hal a letter at T + 10 days. Everyone's contract ends
at T+60d; ada renewed at T+20d and hef at T+25d.

Points (entries):
- ada: grant 10 at T-30d; the campaign's grant of 3 at T+1h; use 2 at T+5d; purchase 6 at
  T+20d; expire 1 at T+40d.
- bob: grant 4 at T-60d; use 1 at T-10d; refund 2 at T+2d; adjust -1 at T+3d.
- hal: "Upsell"'s grant of 2 at T+10d+1h.   hef: grant 5 at T-50d; use 1 at T+10d.
- fay: grant 100 at T+1d (not counted: her letter failed).
Incidents (opened): ada T-95d (outside 90 days), T-10d (chargeable, 1 point), T+3d
(chargeable, 1 point), T+30d; bob T+100d (outside); hef T-25d, T+60d (chargeable); fay T+1d.
Ratings: ada NPS 9 at T-5d and CSAT 5 at T+21d; hef CSAT 2 at T+30d.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from campaigns.audience import contacts, segments
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling
from campaigns.models import (
    Delivery,
    DeliveryState,
    Incident,
    IncidentChannel,
    LetterCategory,
    LetterKind,
    PointsEntry,
    PointsKind,
    SurveyResponse,
    SurveyScale,
)
from campaigns.tracking import conversions
from tests.factories import approve_legal, make_version
from tests.service.survey_data import survey_version

# Today, 09:00 UTC: the pages read retention and spans at the real time, within hours of it.
NOW = datetime.combine(utcnow().date(), time(9), UTC)
T = NOW - timedelta(days=100)
DAY = timedelta(days=1)
STATES = {"ada": DeliveryState.SENT, "bob": DeliveryState.SENT, "cyd": DeliveryState.AMBIGUOUS,
          "hal": DeliveryState.HELD_OUT, "hef": DeliveryState.HELD_OUT,
          "fay": DeliveryState.FAILED, "sue": DeliveryState.SUPPRESSED}  # fmt: skip
POLICY = '<p>Dear {{ contact.first_name }}, our terms.</p><a href="{{ acknowledge_url }}">Read</a>'
_keys = count()


def build(db: Database) -> dict[str, Any]:
    """Write the data above; the ids of the campaigns, the segment and the customers."""
    with db.unit_of_work() as s:
        segment = segments.create_segment(s, "Long-standing",
                                          rules={"match": "all", "conditions": []})  # fmt: skip
        policy = approve_legal(s, make_version(s, name="Policy re-statement",
                                               kind=LetterKind.POLICY, html=POLICY,
                                               category=LetterCategory.LEGAL))  # fmt: skip
        upsell = make_version(s, name="Points running low")
        campaign = scheduling.create_campaign(
            s, "Policy", segment_id=segment.id, letter_version_id=policy.id, holdout_percent=40
        )
        second = scheduling.create_campaign(s, "Upsell", segment_id=segment.id,
                                            letter_version_id=upsell.id)  # fmt: skip
        ids: dict[str, Any] = {"segment": segment.id, "policy": campaign.id,
                               "upsell": second.id}  # fmt: skip
        contracts = {}
        for name, state in STATES.items():
            contact = contacts.create_contact(s, f"{name}@example.com", first_name=name.title())
            ids[name] = contact.id
            contracts[name] = contacts.add_contract(
                s, contact.id, product="Premium Support", starts_on=(T - 300 * DAY).date(),
                ends_on=(T + 60 * DAY).date(), price=Decimal("480.00"),
            ).id  # fmt: skip
            _row(s, contact.id, policy.id, campaign.id, segment.id, state, T,
                 contract_id=contracts[name])  # fmt: skip
        for name, days in (("ada", 20), ("hef", 25)):
            conversions.record(s, contract_id=contracts[name], amount="480.00", currency="EUR",
                               idempotency_key=f"renewal-{name}", window=30 * DAY,
                               occurred_at=T + days * DAY, now=NOW)  # fmt: skip
        _row(s, ids["hal"], upsell.id, second.id, segment.id, DeliveryState.SENT, T + 10 * DAY)
        for name, kind, amount, at, campaign_id in (
            ("ada", PointsKind.GRANT, 10, T - 30 * DAY, None),
            ("ada", PointsKind.GRANT, 3, T + timedelta(hours=1), campaign.id),
            ("ada", PointsKind.USE, -2, T + 5 * DAY, None),
            ("ada", PointsKind.PURCHASE, 6, T + 20 * DAY, None),
            ("ada", PointsKind.EXPIRE, -1, T + 40 * DAY, None),
            ("bob", PointsKind.GRANT, 4, T - 60 * DAY, None),
            ("bob", PointsKind.USE, -1, T - 10 * DAY, None),
            ("bob", PointsKind.REFUND, 2, T + 2 * DAY, None),
            ("bob", PointsKind.ADJUST, -1, T + 3 * DAY, None),
            ("hal", PointsKind.GRANT, 2, T + 10 * DAY + timedelta(hours=1), second.id),
            ("hef", PointsKind.GRANT, 5, T - 50 * DAY, None),
            ("hef", PointsKind.USE, -1, T + 10 * DAY, None),
            ("fay", PointsKind.GRANT, 100, T + DAY, None),
        ):
            s.add(PointsEntry(contact_id=ids[name], kind=kind, amount=amount, balance_after=0,
                              source="admin", campaign_id=campaign_id, occurred_at=at))  # fmt: skip
        for name, at, chargeable, used in (
            ("ada", T - 95 * DAY, True, 1), ("ada", T - 10 * DAY, True, 1),
            ("ada", T + 3 * DAY, True, 1), ("ada", T + 30 * DAY, False, 0),
            ("bob", T + 100 * DAY, True, 0), ("hef", T - 25 * DAY, False, 0),
            ("hef", T + 60 * DAY, True, 0), ("fay", T + DAY, True, 0),
        ):  # fmt: skip
            s.add(Incident(contact_id=ids[name], channel=IncidentChannel.PHONE,
                           chargeable=chargeable, points_used=used, opened_at=at,
                           idempotency_key=f"incident-{next(_keys)}"))  # fmt: skip
        survey = survey_version(s)
        for name, scale, score, at in (("ada", SurveyScale.NPS, 9, T - 5 * DAY),
                                       ("ada", SurveyScale.CSAT, 5, T + 21 * DAY),
                                       ("hef", SurveyScale.CSAT, 2, T + 30 * DAY)):  # fmt: skip
            row = _row(s, ids[name], survey, None, None, DeliveryState.SENT, at - DAY)
            s.add(SurveyResponse(delivery_id=row, contact_id=ids[name], scale=scale,
                                 score=score, responded_at=at))  # fmt: skip
    return ids


def _row(s: Any, contact_id: int, version_id: int, campaign_id: int | None,
         segment_id: int | None, state: DeliveryState, at: datetime,
         contract_id: int | None = None) -> int:  # fmt: skip
    """A ledger row decided at `at` (and, when delivered, sent 30 minutes later)."""
    sent = state == DeliveryState.SENT
    row = Delivery(contact_id=contact_id, contract_id=contract_id, term=1,
                   email=f"{contact_id}@example.com",
                   letter_version_id=version_id, campaign_id=campaign_id,
                   segment_id=segment_id, state=state, created_at=at,
                   sent_at=at + timedelta(minutes=30) if sent else None)  # fmt: skip
    s.add(row)
    s.flush()
    return row.id
