"""Automations per contract, with a controllable clock: once per term, late entry, renewal,
caps and priority, holdout, send windows across DST (RELIABILITY.md 42)."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date as babel_date
from sqlalchemy import select, update

from campaigns.accounts import users
from campaigns.audience import contacts, upserts
from campaigns.config import Caps, Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import automations, scheduling
from campaigns.delivery.automations import StepInput
from campaigns.embedded.services import SMTPCatcher
from campaigns.letters import approvals, stock
from campaigns.models import (
    Acknowledgment,
    Campaign,
    CampaignStatus,
    Contact,
    Contract,
    Delivery,
    DeliveryState,
    Letter,
    LetterCategory,
    LetterKind,
    LetterVersion,
    Role,
)
from tests.conftest import scheduler_once, wait_until
from tests.factories import deliver, make_contact, make_segment, make_version
from workers.scheduler import Cadence

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC
CAPS = Caps()
EXPIRY = ('<p>{{ contact.first_name }}, your {{ contract.product }} ends on '
          '{{ format_date(contract.ends_on) }}.</p><a href="{{ renewal_url }}">Renew</a>'
          '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')  # fmt: skip


def day(n: int) -> date:
    return START.date() + timedelta(days=n)


def series(db: Database, *, offsets: tuple[int, ...] = (60, 30, 7), holdout: int = 0,
           trigger: str = "before_end", kind: LetterKind = LetterKind.EXPIRY,
           category: LetterCategory = LetterCategory.SERVICE, name: str = "Expiry series",
           html: str = EXPIRY, **window: object) -> int:  # fmt: skip
    with db.unit_of_work() as s:
        steps = [
            StepInput(offset, make_version(s, name=f"{name} {offset}", kind=kind,
                                           category=category, html=html).id)
            for offset in offsets
        ]  # fmt: skip
        if category == LetterCategory.LEGAL:  # legal letters need a second person's approval
            lawyer = users.create_user(s, f"legal-{name}@example.com".lower().replace(" ", ""),
                                       "a long password", role=Role.ADMIN)  # fmt: skip
            for step in steps:
                approvals.approve(s, step.letter_version_id, user_id=lawyer.id)
        automation = automations.create_automation(
            s, name, trigger=trigger, steps=steps, holdout_percent=holdout, enabled=True,
            **window,  # type: ignore[arg-type]
        )  # fmt: skip
        return automation.id


def customer(db: Database, email: str, *, ends: date, starts: date | None = None,
             zone: str = "UTC", external_id: str | None = None) -> int:  # fmt: skip
    with db.unit_of_work() as s:
        contact = contacts.create_contact(s, email, first_name="Ada", time_zone=zone)
        return contacts.add_contract(
            s, contact.id, product="Gold Support", starts_on=starts or ends - timedelta(365),
            ends_on=ends, renewal_url="https://shop.example.com/renew", external_id=external_id,
        ).id  # fmt: skip


def tick(db: Database, now: datetime, caps: Caps = CAPS) -> scheduling.Tick:
    """One scheduler tick at `now`, then every queued letter "sent" at once (the send path
    has its own tests; here what matters is what was decided, and when)."""
    with db.unit_of_work() as s:
        decided = scheduling.run_tick(s, now=now, caps=caps)
    with db.unit_of_work() as s:
        s.execute(
            update(Delivery)
            .where(Delivery.state == DeliveryState.QUEUED, Delivery.due_at <= now)
            .values(state=DeliveryState.SENT, sent_at=now)
        )
    return decided


def rows(db: Database) -> list[Delivery]:
    with db.unit_of_work() as s:
        found = list(s.scalars(select(Delivery).order_by(Delivery.id)))
        s.expunge_all()
        return found


def offsets_by_step(db: Database, automation_id: int) -> dict[int, int]:
    with db.unit_of_work() as s:
        steps = automations.get_automation(s, automation_id).steps
        return {step.id: step.offset_days for step in steps}


def test_each_contract_gets_each_step_once_per_term_and_renewal_rearms_it(db: Database) -> None:
    automation = series(db)
    offsets = offsets_by_step(db, automation)
    steady = customer(db, "steady@example.com", ends=day(100))
    renews = customer(db, "renews@example.com", ends=day(120), external_id="C-RENEW")
    lapsed = customer(db, "lapsed@example.com", ends=day(200))
    for n in range(0, 400):
        if n == 70:  # after the 60-day step, before the 30-day one: renewed for 200 days
            with db.unit_of_work() as s:
                upserts.upsert(s, [{"email": "renews@example.com", "contracts": [{
                    "external_id": "C-RENEW", "product": "Gold Support",
                    "starts_on": day(120), "ends_on": day(320)}]}], source="test")  # fmt: skip
        tick(db, START + timedelta(days=n))
    sent = [(r.contract_id, r.term, offsets[r.automation_step_id or 0], r.sent_at)
            for r in rows(db)]  # fmt: skip
    assert all(r.state == DeliveryState.SENT for r in rows(db))
    # Each step once per term, on its day.
    assert sorted((c, t, o) for c, t, o, _ in sent) == sorted([
        (steady, 1, 60), (steady, 1, 30), (steady, 1, 7),
        (renews, 1, 60),  # the series stopped at the renewal ...
        (renews, 2, 60), (renews, 2, 30), (renews, 2, 7),  # ... and re-armed for term 2
        (lapsed, 1, 60), (lapsed, 1, 30), (lapsed, 1, 7),
    ])  # fmt: skip
    ends = {steady: day(100), lapsed: day(200)}
    for contract, term, offset, sent_at in sent:
        end = ends.get(contract, day(120) if term == 1 else day(320))
        assert sent_at is not None and sent_at.date() == end - timedelta(days=offset)


def test_a_contract_that_comes_in_late_gets_only_the_step_still_due(db: Database) -> None:
    """RELIABILITY.md 42: imported 10 days before its end into a 60/30/7 series → one
    letter, the 7-day one, on its day; never three at once."""
    automation = series(db)
    offsets = offsets_by_step(db, automation)
    for n in range(0, 5):
        tick(db, START + timedelta(days=n))  # the series runs; the contract is not there yet
    contract = customer(db, "late@example.com", ends=day(15))  # imported on day 5
    for n in range(5, 30):
        decided = tick(db, START + timedelta(days=n))
        assert sum(decided.written.values()) <= 1
    (row,) = rows(db)
    assert (row.contract_id, offsets[row.automation_step_id or 0]) == (contract, 7)
    assert row.sent_at is not None and row.sent_at.date() == day(8)


def test_a_scheduler_down_for_weeks_sends_the_latest_step_not_a_burst(db: Database) -> None:
    automation = series(db)
    offsets = offsets_by_step(db, automation)
    customer(db, "ada@example.com", ends=day(70))
    tick(db, START)  # day 0: nothing due yet (the 60-day step is on day 10)
    tick(db, START + timedelta(days=45))  # back after 45 days: the 30-day step is 5 late
    tick(db, START + timedelta(days=62))  # the 7-day step is due on day 63
    tick(db, START + timedelta(days=63))
    assert [offsets[r.automation_step_id or 0] for r in rows(db)] == [7]


def test_caps_defer_marketing_letters_by_priority_and_never_legal_ones(db: Database) -> None:
    """Two automations and a broadcast compete for one customer's day: the renewal offer
    (renewal rank) goes, the welcome (lower) waits a day, the broadcast (lowest) is
    suppressed with the cap's reason; the legal letter due the next day goes in the same
    tick as the welcome all the same."""
    marketing = LetterCategory.MARKETING
    series(db, offsets=(0,), trigger="on_end", kind=LetterKind.RENEWAL, category=marketing,
           name="Renewal offer")  # fmt: skip
    series(db, offsets=(0,), trigger="on_start", kind=LetterKind.WELCOME, category=marketing,
           name="Welcome")  # fmt: skip
    series(db, offsets=(1,), trigger="on_start", kind=LetterKind.POLICY,
           category=LetterCategory.LEGAL, name="Terms",
           html='<p>Our terms changed.</p><a href="{{ acknowledge_url }}">I agree</a>')  # fmt: skip
    ending = customer(db, "ada@example.com", ends=day(3))
    with db.unit_of_work() as s:
        contact_id = s.get(Contract, ending).contact_id  # type: ignore[union-attr]
        new = contacts.add_contract(s, contact_id, product="Basic", starts_on=day(3),
                                    ends_on=day(368)).id  # fmt: skip
        broadcast = scheduling.create_campaign(
            s, "Spring offer", segment_id=make_segment(s).id,
            letter_version_id=make_version(s, name="Spring").id,
        ).id  # fmt: skip
        scheduling.schedule(s, broadcast, send_at=START + timedelta(days=3))
    for n in range(0, 12):
        tick(db, START + timedelta(days=n))
    by_letter = {}
    with db.unit_of_work() as s:
        found = s.execute(
            select(Letter.name, Delivery)
            .join(LetterVersion, LetterVersion.id == Delivery.letter_version_id)
            .join(Letter)
        )
        for name, row in found:
            by_letter[name.split(" ")[0]] = (row.state, row.reason, row.sent_at, row.contract_id)
    assert by_letter["Renewal"][:1] == (DeliveryState.SENT,)
    assert by_letter["Renewal"][2].date() == day(3)  # type: ignore[union-attr]
    assert by_letter["Terms"][0] == DeliveryState.SENT  # legal: never capped
    assert by_letter["Terms"][2].date() == day(4)  # type: ignore[union-attr]
    # The welcome waited for a free slot: the next day, once 24 hours had passed.
    assert by_letter["Welcome"][0] == DeliveryState.SENT and by_letter["Welcome"][3] == new
    assert by_letter["Welcome"][2].date() == day(4)  # type: ignore[union-attr]
    assert by_letter["Spring"][:2] == (
        DeliveryState.SUPPRESSED,
        "frequency cap: another letter within 24 hours",
    )


def test_a_deferred_letter_is_given_up_once_no_longer_due(db: Database) -> None:
    marketing = LetterCategory.MARKETING
    series(db, offsets=(0,), trigger="on_start", kind=LetterKind.WELCOME, category=marketing,
           name="Welcome", max_late_days=1)  # fmt: skip
    contract = customer(db, "ada@example.com", starts=day(1), ends=day(366))
    with db.unit_of_work() as s:
        contact_id = s.get(Contract, contract).contact_id  # type: ignore[union-attr]
        other = make_version(s, name="Earlier")
        s.add(Delivery(contact_id=contact_id, email="ada@example.com", letter_version_id=other.id,
                       state=DeliveryState.SENT, sent_at=START + timedelta(days=1)))  # fmt: skip
    caps = Caps(marketing_per_week=1, marketing_gap_hours=0, service_per_day=3)
    for n in range(0, 6):
        tick(db, START + timedelta(days=n, hours=1), caps)
    (welcome,) = [r for r in rows(db) if r.automation_step_id is not None]
    assert welcome.state == DeliveryState.SUPPRESSED
    assert welcome.reason == ("frequency cap: 1 marketing letters in 7 days; no free slot while "
                              "the letter was still due")  # fmt: skip


def test_holdout_is_recorded_with_the_same_step_contract_and_term(db: Database) -> None:
    automation = series(db, offsets=(7,), holdout=20)
    for n in range(200):
        customer(db, f"c{n}@example.com", ends=day(8))
    tick(db, START + timedelta(days=1))
    found = rows(db)
    states = Counter(r.state for r in found)
    assert states[DeliveryState.HELD_OUT] + states[DeliveryState.SENT] == 200
    assert 20 <= states[DeliveryState.HELD_OUT] <= 60
    held = [r for r in found if r.state == DeliveryState.HELD_OUT]
    assert all(r.contract_id and r.term == 1 and r.automation_step_id for r in held)
    assert {r.reason for r in held} == {"holdout group"}
    with db.unit_of_work() as s:  # the same contracts, whenever it is asked
        step = automations.get_automation(s, automation).steps[0]
        assert all(r.automation_step_id == step.id for r in found)


@pytest.mark.parametrize(
    ("zone", "due", "expected_utc"),
    [
        # Due Sunday 25 Oct 2026, the night Berlin leaves summer time: Monday 09:00 CET.
        ("Europe/Berlin", date(2026, 10, 25), datetime(2026, 10, 26, 8, tzinfo=UTC)),
        # New York is still on summer time that week: Monday 09:00 EDT.
        ("America/New_York", date(2026, 10, 25), datetime(2026, 10, 26, 13, tzinfo=UTC)),
        # ... and leaves it on 1 Nov: Monday 2 Nov 09:00 EST.
        ("America/New_York", date(2026, 11, 1), datetime(2026, 11, 2, 14, tzinfo=UTC)),
    ],
)
def test_the_send_window_follows_the_contacts_time_zone_across_dst(
    db: Database, zone: str, due: date, expected_utc: datetime
) -> None:
    series(db, offsets=(7,), window_days="12345", window_start_hour=9, window_end_hour=17)
    customer(db, "ada@example.com", ends=due + timedelta(days=7), zone=zone)
    now = datetime.combine(due - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    while now < datetime.combine(due + timedelta(days=3), datetime.min.time(), tzinfo=UTC):
        tick(db, now)
        now += timedelta(hours=1)
    (row,) = rows(db)
    assert row.sent_at == expected_utc
    local = expected_utc.astimezone(ZoneInfo(zone))
    assert (local.isoweekday(), local.hour) == (1, 9)


def test_the_preview_lists_who_gets_what_in_the_next_14_days(db: Database) -> None:
    automation = series(db)
    soon = customer(db, "soon@example.com", ends=day(35))  # 30-day step on day 5
    customer(db, "later@example.com", ends=day(100))  # the 60-day step on day 40: not shown
    week = customer(db, "week@example.com", ends=day(10))  # the 7-day step on day 3
    with db.unit_of_work() as s:
        planned = automations.preview(s, automations.get_automation(s, automation),
                                      today=day(0))  # fmt: skip
        assert [(p.day, p.step.offset_days, p.contract_id) for p in planned] == [
            (day(3), 7, week), (day(5), 30, soon)]  # fmt: skip


def test_caps_are_checked_again_as_letters_are_sent(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    """A letter decided before another went out to the same customer (a paused campaign
    resumed a day later, say) is held back as it is sent: a broadcast letter suppressed, an
    automation letter deferred to its next slot."""
    marketing = LetterCategory.MARKETING
    series(db, offsets=(0,), trigger="on_start", kind=LetterKind.WELCOME, category=marketing,
           name="Welcome")  # fmt: skip
    now = utcnow()
    customer(db, "ada@example.com", starts=now.date(), ends=now.date() + timedelta(365))
    with db.unit_of_work() as s:
        make_contact(s, "bob@example.com", first_name="Bob")
        campaign = scheduling.create_campaign(s, "Offer", segment_id=make_segment(s).id,
                                              letter_version_id=make_version(s).id).id  # fmt: skip
        scheduling.schedule(s, campaign, send_at=now)
    with db.unit_of_work() as s:
        decided = scheduling.run_tick(s, now=now, caps=CAPS)
    batches = decided.batches + [b for launch in decided.launches for b in launch.batches]
    assert sorted(len(b) for b in batches) == [1, 1]  # the welcome to Ada, the offer to both
    with db.unit_of_work() as s:  # meanwhile a letter went out to each of them
        other = make_version(s, name="Meanwhile").id
        for person in s.scalars(select(Contact)):
            s.add(Delivery(contact_id=person.id, email=person.email, letter_version_id=other,
                           state=DeliveryState.SENT, sent_at=now))  # fmt: skip
    settings = dataclasses.replace(settings, caps=CAPS)  # the test environment has none
    deliver(db, batches, smtp_url=smtp_server.url, settings=settings)
    held = {(r.campaign_id is not None, r.email): (r.state, r.reason) for r in rows(db)
            if r.letter_version_id != other}  # fmt: skip
    gap = "frequency cap: another letter within 24 hours"
    assert held == {
        (True, "ada@example.com"): (DeliveryState.SUPPRESSED, gap),
        (True, "bob@example.com"): (DeliveryState.SUPPRESSED, gap),
        (False, "ada@example.com"): (DeliveryState.DEFERRED, gap),
    }
    assert smtp_server.messages == []


def test_the_scheduler_sends_the_stock_expiry_reminder_through_a_real_worker(
    db: Database, env: dict[str, str], smtp_server: SMTPCatcher, worker: Path
) -> None:
    """The whole way: the scheduler command's tick decides the 7-day step of a 60/30/7
    series, a Dramatiq worker sends the stock expiry reminder, the SMTP server has it."""
    today = utcnow().date()
    with db.unit_of_work() as s:
        expiry = stock.load(s)[LetterKind.EXPIRY]
        automations.create_automation(
            s, "Expiry series", trigger="before_end", enabled=True,
            steps=[StepInput(days, expiry.id) for days in (60, 30, 7)],
        )  # fmt: skip
    contract = customer(db, "ada@example.com", ends=today + timedelta(days=7))
    customer(db, "bob@example.com", ends=today + timedelta(days=90))  # nothing due yet
    assert "automations wrote 1 ledger row(s)" in scheduler_once(env)
    (received,) = smtp_server.wait_for(1)
    assert received.recipients == ["ada@example.com"]
    html = next(p for p in received.message.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    ends = babel_date(today + timedelta(days=7), "long", locale="en")
    assert "Gold Support" in body and ends in body and "/r/" in body

    def sent() -> bool:
        with db.unit_of_work() as s:
            row = s.scalars(select(Delivery)).one()
            return row.state == DeliveryState.SENT and row.contract_id == contract

    wait_until(sent, what="the ledger row to be sent")


def test_a_policy_letter_not_acknowledged_is_reminded_of_until_it_is(db: Database) -> None:
    """Reminders 3 and 10 days after a policy letter: Ada never acknowledges and gets both;
    Bob acknowledged the letter first and gets none; Cyd acknowledges the first reminder
    and gets no second."""
    ack = '<p>Our terms changed.</p><a href="{{ acknowledge_url }}">I agree</a>'
    with db.unit_of_work() as s:
        policy = make_version(s, name="Terms", kind=LetterKind.POLICY,
                              category=LetterCategory.LEGAL, html=ack)  # fmt: skip
    reminders = series(db, offsets=(3, 10), trigger="unacknowledged", kind=LetterKind.POLICY,
                       category=LetterCategory.LEGAL, name="Terms reminder", html=ack,
                       letter_id=policy.letter_id)  # fmt: skip
    offsets = offsets_by_step(db, reminders)
    with db.unit_of_work() as s:
        sent = {}
        for name in ("ada", "bob", "cyd"):
            person = contacts.create_contact(s, f"{name}@example.com", first_name=name.title())
            letter = Delivery(contact_id=person.id, email=person.email, state=DeliveryState.SENT,
                              letter_version_id=policy.id, sent_at=START)  # fmt: skip
            s.add(letter)
            s.flush()
            sent[name] = (person.id, letter.id)

    def acknowledge(name: str, delivery_id: int) -> None:
        with db.unit_of_work() as s:
            s.add(Acknowledgment(delivery_id=delivery_id, contact_id=sent[name][0],
                                 letter_version_id=policy.id, text_sha256="0" * 64))  # fmt: skip

    acknowledge("bob", sent["bob"][1])
    for n in range(0, 20):
        tick(db, START + timedelta(days=n, hours=1))
        if n == 5:  # Cyd answers the first reminder
            (first,) = [r for r in rows(db) if r.email == "cyd@example.com" and r.reminds_id]
            acknowledge("cyd", first.id)
    got = sorted((r.email, offsets[r.automation_step_id or 0], r.sent_at.date())  # type: ignore[union-attr]
                 for r in rows(db) if r.reminds_id)  # fmt: skip
    assert got == [("ada@example.com", 3, day(3)), ("ada@example.com", 10, day(10)),
                   ("cyd@example.com", 3, day(3))]  # fmt: skip
    assert {r.reminds_id for r in rows(db) if r.email == "ada@example.com" and r.reminds_id} == {
        sent["ada"][1]}  # fmt: skip


def test_the_holdout_holds_for_large_ids(db: Database) -> None:
    """The holdout's bucket is computed in 64 bits: a contract or contact id past ~270,000
    (or a campaign id past ~20,500) overflowed PostgreSQL's integers and stopped the tick."""
    automation = series(db, offsets=(7,), holdout=50)
    with db.unit_of_work() as s:
        s.add(Contact(id=300_001, email="big@example.com", first_name="Big"))
        s.flush()
        s.add(Contract(id=300_002, contact_id=300_001, product="Gold Support",
                       starts_on=day(-300), ends_on=day(8)))  # fmt: skip
        s.add(Campaign(id=30_000, name="Offer", segment_id=make_segment(s).id,
                       letter_version_id=make_version(s).id, status=CampaignStatus.SCHEDULED,
                       send_at=START + timedelta(days=1), holdout_percent=50))  # fmt: skip
    tick(db, START + timedelta(days=1))
    states = {(r.campaign_id, r.automation_step_id is not None): r.state for r in rows(db)}
    seed = automation * 31 + 7
    held = (300_002 * 7919 + seed * 104729) % 100 < 50
    assert states[(None, True)] == (DeliveryState.HELD_OUT if held else DeliveryState.SENT)
    held = (300_001 * 7919 + 30_000 * 104729) % 100 < 50
    assert states[(30_000, False)] == (DeliveryState.HELD_OUT if held else DeliveryState.SENT)


def test_a_campaign_may_set_its_own_caps(db: Database) -> None:
    """A campaign that allows a letter 1 hour after another goes to a customer who got one
    yesterday evening; one that goes by the settings' 24 hours does not."""
    with db.unit_of_work() as s:
        ada = make_contact(s, "ada@example.com", first_name="Ada")
        earlier = make_version(s, name="Earlier").id
        s.add(Delivery(contact_id=ada.id, email=ada.email, letter_version_id=earlier,
                       state=DeliveryState.SENT, sent_at=START - timedelta(hours=12)))  # fmt: skip
        segment = make_segment(s).id
        for name, gap in (("Strict", None), ("Relaxed", 1)):
            campaign = scheduling.create_campaign(
                s, name, segment_id=segment, letter_version_id=make_version(s, name=name).id,
                cap_gap_hours=gap,
            )  # fmt: skip
            scheduling.schedule(s, campaign.id, send_at=START)
    tick(db, START)
    with db.unit_of_work() as s:
        got = {
            c.name: (d.state, d.reason)
            for d, c in s.execute(
                select(Delivery, Campaign).join(Campaign, Campaign.id == Delivery.campaign_id)
            )
        }
    assert got == {
        "Strict": (DeliveryState.SUPPRESSED, "frequency cap: another letter within 24 hours"),
        "Relaxed": (DeliveryState.SENT, ""),
    }


def test_a_tick_may_launch_campaigns_without_deciding_automations(db: Database) -> None:
    """The scheduler decides automations every AUTOMATION_SECONDS, campaigns every tick."""
    series(db, offsets=(7,))
    customer(db, "ada@example.com", ends=day(8))
    with db.unit_of_work() as s:
        campaign = scheduling.create_campaign(s, "Offer", segment_id=make_segment(s).id,
                                              letter_version_id=make_version(s).id).id  # fmt: skip
        scheduling.schedule(s, campaign, send_at=START)
    with db.unit_of_work() as s:
        decided = scheduling.run_tick(s, now=START + timedelta(days=1), caps=CAPS,
                                      with_automations=False)  # fmt: skip
    assert [launch.campaign_id for launch in decided.launches] == [campaign]
    assert (decided.written, decided.batches) == ({}, [])
    assert [r.campaign_id for r in rows(db)] == [campaign]
    cadence = Cadence()
    assert cadence.due(60)
    cadence.last = time.monotonic()
    assert not cadence.due(60) and cadence.due(0)
