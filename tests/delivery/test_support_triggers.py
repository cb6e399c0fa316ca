"""Automations on the support side, day by day with a controllable clock: once per occasion
(balance crossing, expiry date, closed incident), on the step's day, never again."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from campaigns.audience import contacts
from campaigns.config import Caps
from campaigns.db import Database
from campaigns.delivery import automations
from campaigns.delivery.automations import StepInput
from campaigns.errors import ValidationError
from campaigns.models import Delivery, DeliveryState, LetterCategory
from campaigns.service import incidents, points
from tests.delivery.test_automations import START, rows, tick
from tests.factories import make_version

LETTER = ("<p>Hi {{ contact.first_name }}, you have {{ contact.service_points }} points.</p>"
          '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')  # fmt: skip


def at(day: int, hour: int = 9) -> datetime:
    return START + timedelta(days=day, hours=hour - START.hour)


def support_automation(db: Database, trigger: str, offset: int, **fields: object) -> int:
    with db.unit_of_work() as s:
        version = make_version(s, name=f"{trigger} letter", html=LETTER,
                               category=LetterCategory.SERVICE)  # fmt: skip
        return automations.create_automation(
            s, trigger, trigger=trigger, steps=[StepInput(offset, version.id)], enabled=True,
            **fields,  # type: ignore[arg-type]
        ).id  # fmt: skip


def person(db: Database, email: str) -> int:
    with db.unit_of_work() as s:
        return contacts.create_contact(s, email, first_name="Ada").id


def change(
    db: Database, contact_id: int, kind: str, amount: int, day: int, **extra: object
) -> None:
    with db.unit_of_work() as s:
        points.record(s, contact_id, kind, amount, source="api", now=at(day),
                      reason="test", **extra)  # type: ignore[arg-type]  # fmt: skip


def letters(db: Database) -> list[tuple[int, str, int]]:
    """(contact, occasion, day sent) of every letter that went."""
    return [(r.contact_id, r.occasion or "", (r.sent_at - START).days) for r in rows(db)
            if r.state == DeliveryState.SENT and r.sent_at is not None]  # fmt: skip


def test_a_low_balance_sends_once_per_crossing_and_not_once_topped_up_again(
    db: Database,
) -> None:
    support_automation(db, "points_low", 0, threshold=1)
    ada, bob = person(db, "ada@example.com"), person(db, "bob@example.com")
    change(db, ada, "grant", 3, 0)
    change(db, bob, "grant", 2, 0)
    for day in range(0, 12):
        if day == 1:
            change(db, ada, "use", 1, day)  # 2: above the threshold still
        if day == 2:
            change(db, ada, "use", 1, day)  # 1: the crossing
        if day == 3:
            change(db, ada, "use", 1, day)  # 0: still low, no new crossing
        if day == 5:
            change(db, ada, "purchase", 5, day)  # 5
        if day == 7:
            change(db, ada, "use", 4, day)  # 1: a second crossing, a second letter
        if day == 9:  # bob crosses in the night and buys before the morning's tick
            with db.unit_of_work() as s:
                points.record(s, bob, "use", 1, source="api", now=at(day, hour=1))
                points.record(s, bob, "purchase", 5, source="api", now=at(day, hour=2))
        tick(db, at(day, hour=10))
    sent = letters(db)
    assert [(c, d) for c, _, d in sent] == [(ada, 2), (ada, 7)]
    assert len({occasion for _, occasion, _ in sent}) == 2
    assert all(occasion.startswith("points:") for _, occasion, _ in sent)


def test_a_survey_goes_n_days_after_an_incident_is_closed_once(db: Database) -> None:
    support_automation(db, "incident_closed", 3)
    ada = person(db, "ada@example.com")
    with db.unit_of_work() as s:
        opened = incidents.record(s, contact_id=ada, channel="phone", idempotency_key="i-1",
                                  opened_at=at(0), now=at(0)).incident.id  # fmt: skip
        still_open = incidents.record(s, contact_id=ada, channel="email",
                                      idempotency_key="i-2", opened_at=at(0),
                                      now=at(0)).incident.id  # fmt: skip
    for day in range(0, 10):
        if day == 1:
            with db.unit_of_work() as s:
                incidents.close(s, opened, closed_at=at(1))
        tick(db, at(day, hour=10))
    assert letters(db) == [(ada, f"incident:{opened}", 4)]
    assert still_open != opened


def test_points_about_to_expire_are_announced_n_days_before_while_held(db: Database) -> None:
    support_automation(db, "points_expiring", 7)
    ada, bob = person(db, "ada@example.com"), person(db, "bob@example.com")
    expiry = at(20).date()
    change(db, ada, "grant", 3, 0, expires_on=expiry)
    change(db, ada, "grant", 2, 0, expires_on=expiry)  # same day: one letter
    change(db, bob, "grant", 3, 0, expires_on=expiry)
    change(db, bob, "use", 3, 1)  # nothing left to lose: no letter
    for day in range(0, 25):
        tick(db, at(day, hour=10))
    assert letters(db) == [(ada, f"expiry:{ada}:{expiry.isoformat()}", 13)]


def test_the_preview_foresees_expiries_and_closed_incidents_then_not_once_written(
    db: Database,
) -> None:
    """What the help desk has already done is foreseeable: points that expire on a known
    date, incidents already closed. A spent balance, and a letter written, drop out."""
    expiring = support_automation(db, "points_expiring", 7)
    survey = support_automation(db, "incident_closed", 3)
    ada, bob = person(db, "ada@example.com"), person(db, "bob@example.com")
    change(db, ada, "grant", 3, 0, expires_on=at(12).date())
    change(db, bob, "grant", 3, 0, expires_on=at(12).date())
    change(db, bob, "use", 3, 0)  # nothing left to lose: no letter foreseen
    with db.unit_of_work() as s:
        case = incidents.record(s, contact_id=bob, channel="phone", idempotency_key="c-1",
                                opened_at=at(0), now=at(0)).incident.id  # fmt: skip
        incidents.close(s, case, closed_at=at(1))

    def foreseen(automation_id: int, day: int) -> list[tuple[str, str, int]]:
        with db.unit_of_work() as s:
            automation = automations.get_automation(s, automation_id)
            return [(p.email, p.product, (p.day - START.date()).days)
                    for p in automations.preview(s, automation, today=at(day).date())]  # fmt: skip

    assert foreseen(expiring, 1) == [("ada@example.com", "points expiring", 5)]
    assert foreseen(survey, 1) == [("bob@example.com", f"incident #{case} closed", 4)]
    with db.unit_of_work() as s:
        upcoming = automations.upcoming(s, bob, today=at(1).date())
    assert [(u.automation.id, u.planned.day, u.state) for u in upcoming] == [
        (survey, at(4).date(), DeliveryState.QUEUED)]  # fmt: skip
    for day in range(1, 6):
        tick(db, at(day, hour=10))
    assert foreseen(expiring, 5) == [] and foreseen(survey, 5) == []  # written: no longer due


@pytest.mark.parametrize(
    ("trigger", "offset", "fields", "field"),
    [
        ("points_low", 0, {}, "threshold"),
        ("points_low", 0, {"threshold": -1}, "threshold"),
        ("points_expiring", 0, {}, "steps.1.offset_days"),
    ],
)
def test_a_support_trigger_without_what_it_needs_is_refused(
    db: Database, trigger: str, offset: int, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        support_automation(db, trigger, offset, **fields)
    assert refused.value.field == field


def test_support_letters_keep_the_holdout_and_wait_for_a_free_slot_under_the_caps(
    db: Database,
) -> None:
    """Half the occasions held out (the same draw every tick); a survey due on a day the
    customer already had a service letter waits for the next free slot, then goes once."""
    support_automation(db, "incident_closed", 1, holdout_percent=50)
    people = [person(db, f"p{n}@example.com") for n in range(20)]
    with db.unit_of_work() as s:
        for n, contact_id in enumerate(people):
            incidents.record(s, contact_id=contact_id, channel="email",
                             idempotency_key=f"i-{n}", opened_at=at(0),
                             closed_at=at(0, hour=10), now=at(0, hour=11))  # fmt: skip
    one_a_day = Caps(service_per_day=1)
    with db.unit_of_work() as s:  # each had another service letter an hour before the survey
        other = make_version(s, name="Note", html=LETTER, category=LetterCategory.SERVICE)
        s.add_all(Delivery(contact_id=c, letter_version_id=other.id, email=f"p{n}@example.com",
                           state=DeliveryState.SENT, sent_at=at(1, hour=9))
                  for n, c in enumerate(people))  # fmt: skip
    for day in range(1, 5):
        tick(db, at(day, hour=10), caps=one_a_day)
    found = [r for r in rows(db) if r.occasion]
    assert len(found) == 20 and len({r.occasion for r in found}) == 20  # once per occasion
    held = [r for r in found if r.state == DeliveryState.HELD_OUT]
    assert 3 <= len(held) <= 17 and all(r.sent_at is None for r in held)
    sent = [r for r in found if r.state == DeliveryState.SENT]
    assert len(sent) + len(held) == 20
    # Due on day 1 behind the day's other letter: deferred, then sent on day 2, once.
    assert {(r.sent_at - START).days for r in sent if r.sent_at} == {2}
    assert all(r.reason == "" for r in sent)
