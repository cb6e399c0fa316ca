"""From a 60/30/7 series and a broadcast to the renewals each letter earned.

Six customers, one contract each. A 60/30/7 expiry series (for the segment "All support
contracts") and a renewal offer to the segment "Gold plans" go out through the real send
path to a real SMTP server:

| who | plan, ends in | letters             | what they do                                  |
|-----|---------------|---------------------|-----------------------------------------------|
| Ann | gold, 60 days | 60-day step, offer  | opens and clicks the offer, renews (API, 200) |
| Ben | basic, 30     | 30-day step         | opens, clicks renew; renewed by an import (130)|
| Cat | basic, 7      | 7-day step          | clicks renew (no images), renews (API, 120)    |
| Dan | basic, 7      | 7-day step          | opens, does not renew                          |
| Eve | gold, 200     | offer               | a link scanner fetches everything              |
| Fay | basic, 300    | none                | renews on her own (API, 90): organic           |

The reports per segment and per step must then show exactly these figures, each renewal
credited to the right letter, Fay's renewal not credited, the scanner's hits not counted.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from email.message import Message
from pathlib import Path

from flask import Flask
from sqlalchemy import select, update

from campaigns.audience import contacts, segments
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import automations, scheduling
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Conversion, Delivery, LetterCategory, LetterKind, SegmentTarget
from campaigns.tracking import results
from tests.audience.importfiles import new_job, run, write
from tests.factories import deliver, make_version
from tests.tracking.test_end_to_end import CHROME, SCANNER
from tests.web.conftest import app
from tests.web.test_api import Api, make_key

__all__ = ["app"]  # the web app fixture, shared with the web tests

LETTER = ('<p>Dear {{ contact.first_name }}, your {{ contract.product }} ends on '
          '{{ format_date(contract.ends_on) }}.</p>'
          '<p><a href="{{ renewal_url }}">Renew now</a></p>'
          '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')  # fmt: skip
PEOPLE = {"ann": ("gold", 60), "ben": ("basic", 30), "cat": ("basic", 7), "dan": ("basic", 7),
          "eve": ("gold", 200), "fay": ("basic", 300)}  # fmt: skip


def _contracts_segment(s: object, name: str, conditions: list[dict[str, object]]) -> int:
    made = segments.create_segment(s, name, target=SegmentTarget.CONTRACTS,  # type: ignore[arg-type]
                                   rules={"match": "all", "conditions": conditions})  # fmt: skip
    return made.id


def _setup(db: Database) -> dict[str, int]:
    today, ids = utcnow().date(), {}
    with db.unit_of_work() as s:
        everyone = _contracts_segment(s, "All support contracts", [])
        plan = {"field": "contract.plan", "op": "eq", "value": "gold"}
        gold = _contracts_segment(s, "Gold plans", [plan])
        expiry = make_version(s, name="Expiry reminder", kind=LetterKind.EXPIRY,
                              category=LetterCategory.MARKETING, html=LETTER)  # fmt: skip
        offer = make_version(s, name="Gold renewal offer", kind=LetterKind.RENEWAL,
                             category=LetterCategory.MARKETING, html=LETTER)  # fmt: skip
        series = automations.create_automation(
            s, "Expiry series", trigger="before_end", enabled=True, segment_id=everyone,
            steps=[automations.StepInput(days, expiry.id) for days in (60, 30, 7)],
        )  # fmt: skip
        campaign = scheduling.create_campaign(s, "Gold renewal offer", segment_id=gold,
                                              letter_version_id=offer.id)  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        for name, (plan, days) in PEOPLE.items():
            person = contacts.create_contact(s, f"{name}@example.com", first_name=name.title())
            contract = contacts.add_contract(
                s, person.id, product="Premium Support", plan=plan, price=Decimal("120"),
                currency="EUR", starts_on=today - timedelta(days=365 - days),
                ends_on=today + timedelta(days=days),
                renewal_url=f"https://shop.example.com/renew/{name}",
            )  # fmt: skip
            ids[name] = contract.id
        ids |= {"everyone": everyone, "gold": gold, "campaign": campaign.id,
                **{f"step{step.offset_days}": step.id for step in series.steps}}  # fmt: skip
    return ids


def _links(letter: Message) -> dict[str, str]:
    html = next(p for p in letter.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    found = re.findall(r'(?:href|src)="https?://[^/"]+(/([a-z])/[^"]+)"', body)
    return {kind: path for path, kind in found}


def test_renewals_are_credited_to_the_right_step_campaign_and_segment(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher, tmp_path: Path
) -> None:
    ids = _setup(db)
    with db.unit_of_work() as s:
        tick = scheduling.run_tick(s, now=utcnow(), caps=settings.caps)
    (launch,) = tick.launches
    assert sorted(tick.written.values()) == [1, 1, 2]  # 60: Ann; 30: Ben; 7: Cat and Dan
    # The series goes first, the offer after: Ann's last touch is the offer.
    deliver(db, tick.batches, smtp_url=smtp_server.url, settings=settings)
    deliver(db, launch.batches, smtp_url=smtp_server.url, settings=settings)
    received = smtp_server.wait_for(6)
    letters: dict[str, list[Message]] = {}
    for m in received:
        letters.setdefault(m.recipients[0].split("@")[0], []).append(m.message)
    assert {name: len(found) for name, found in letters.items()} == {
        "ann": 2, "ben": 1, "cat": 1, "dan": 1, "eve": 1}  # fmt: skip
    # The letters were read days later (and the series had gone out a day before the offer).
    with db.unit_of_work() as s:
        s.execute(update(Delivery).where(Delivery.campaign_id.is_(None))
                  .values(sent_at=utcnow() - timedelta(days=3)))  # fmt: skip
        s.execute(update(Delivery).where(Delivery.campaign_id.is_not(None))
                  .values(sent_at=utcnow() - timedelta(days=2)))  # fmt: skip
    offer = next(m for m in letters["ann"] if _sent_for(db, m) == "campaign")
    web = app.test_client(use_cookies=False)
    person = {"User-Agent": CHROME}

    def visit(path: str, expect: int) -> None:
        assert web.get(path, headers=person).status_code == expect, path

    visit(_links(offer)["o"], 200)  # Ann opens and clicks the offer
    visit(_links(offer)["r"], 302)
    ben, cat, dan, eve = (_links(letters[n][0]) for n in ("ben", "cat", "dan", "eve"))
    visit(ben["o"], 200)
    visit(ben["r"], 302)
    visit(cat["r"], 302)  # Cat's mail program shows no images: a click, no open
    visit(dan["o"], 200)
    for path in eve.values():  # a link scanner fetches all of Eve's letter
        web.head(path, headers={"User-Agent": SCANNER})
        web.get(path, headers={"User-Agent": SCANNER})

    # Renewals: Ann, Cat and Fay through the API; Ben's contract extended by an import.
    api = Api(app.test_client(), make_key(db))
    for name, amount in (("ann", "200.00"), ("cat", "120.00"), ("fay", "90.00")):
        answer = api.post("/api/v1/conversions",
                          {"contract_id": ids[name], "amount": amount, "currency": "EUR"},
                          headers={"Idempotency-Key": f"order-{name}"})  # fmt: skip
        assert answer.status_code == 201, answer.get_json()
    ends = (utcnow().date() + timedelta(days=30 + 365)).isoformat()
    csv = ("E-mail;Product;Plan;End;Price;Currency\n"
           f"ben@example.com;Premium Support;basic;{ends};130.00;EUR\n")  # fmt: skip
    job_id = new_job(db, tmp_path / "var", write(tmp_path / "renewals.csv", csv), dry_run=False)
    job = run(db, job_id)
    assert "Contracts: 1 renewed." in job.message
    with db.unit_of_work() as s:
        refreshed = results.refresh(s, window=timedelta(days=settings.results.attribution_days))
    assert refreshed.detected == 1  # Ben's moved end date

    with db.unit_of_work() as s:
        credits = {c.contract_id: (c.source, c.delivery_id, c.first_delivery_id, c.touches)
                   for c in s.scalars(select(Conversion))}  # fmt: skip
        rows = {(d.contract_id, d.campaign_id is not None): d.id
                for d in s.scalars(select(Delivery))}  # fmt: skip
        by_segment = {line.label: line.figures for line in results.report(s, "segment").lines}
        by_step = {line.label: line.figures for line in results.report(s, "step").lines}
        by_campaign = results.report(s, "campaign")
    # Each renewal credited to the right letter; Ann's first touch was the 60-day step.
    assert credits == {
        ids["ann"]: ("api", rows[(ids["ann"], True)], rows[(ids["ann"], False)], 2),
        ids["ben"]: ("import", rows[(ids["ben"], False)], rows[(ids["ben"], False)], 1),
        ids["cat"]: ("api", rows[(ids["cat"], False)], rows[(ids["cat"], False)], 1),
        ids["fay"]: ("api", None, None, 0),
    }

    def figures(f: results.Figures) -> dict[str, object]:
        names = ("audience", "sent", "opened", "opened_machine", "clicked", "clicked_machine",
                 "renewal_clicks")  # fmt: skip
        return {**{n: f.counts[n] for n in names}, "renewed": f.renewed, "revenue": f.revenue}

    assert figures(by_segment["All support contracts"]) == {
        "audience": 4, "sent": 4, "opened": 2, "opened_machine": 0, "clicked": 2,
        "clicked_machine": 0, "renewal_clicks": 2, "renewed": 2,
        "revenue": {"EUR": Decimal("250.00")},
    }  # fmt: skip
    assert figures(by_segment["Gold plans"]) == {
        "audience": 2, "sent": 2, "opened": 1, "opened_machine": 1, "clicked": 1,
        "clicked_machine": 1, "renewal_clicks": 1, "renewed": 1,
        "revenue": {"EUR": Decimal("200.00")},
    }  # fmt: skip
    assert by_segment["Gold plans"].rate("opened") == 0.5
    assert by_segment["All support contracts"].rate("renewed") == 0.5
    assert figures(by_step["60 days before the end"]) == {
        "audience": 1, "sent": 1, "opened": 0, "opened_machine": 0, "clicked": 0,
        "clicked_machine": 0, "renewal_clicks": 0, "renewed": 0, "revenue": {},
    }  # fmt: skip
    assert figures(by_step["30 days before the end"]) == {
        "audience": 1, "sent": 1, "opened": 1, "opened_machine": 0, "clicked": 1,
        "clicked_machine": 0, "renewal_clicks": 1, "renewed": 1,
        "revenue": {"EUR": Decimal("130.00")},
    }  # fmt: skip
    assert figures(by_step["7 days before the end"]) == {
        "audience": 2, "sent": 2, "opened": 1, "opened_machine": 0, "clicked": 1,
        "clicked_machine": 0, "renewal_clicks": 1, "renewed": 1,
        "revenue": {"EUR": Decimal("120.00")},
    }  # fmt: skip
    assert by_step["7 days before the end"].rate("opened") == 0.5
    assert {line.label: line.figures.renewed for line in by_campaign.lines} == {
        "Gold renewal offer": 1, "Expiry series": 2}  # fmt: skip
    # Fay renewed without a letter: organic, beside the total, credited to nothing.
    assert (by_campaign.organic.renewed, by_campaign.organic.revenue) == (
        1, {"EUR": Decimal("90.00")})  # fmt: skip
    assert by_campaign.total.renewed == 3


def _sent_for(db: Database, message: Message) -> str:
    """Whether a received letter was the campaign's or the series' (by its Message-ID)."""
    with db.unit_of_work() as s:
        campaign_id = s.scalar(select(Delivery.campaign_id)
                               .where(Delivery.message_id == message["Message-ID"]))  # fmt: skip
    return "campaign" if campaign_id else "series"
