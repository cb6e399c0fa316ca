"""A campaign with a holdout and an expiry series, 100 days on: letters, what people did with
them, renewals — for the report pages' tests. Names start with the characters a spreadsheet
runs as formulas (RELIABILITY.md 29), so the exports must neutralise them.

The campaign "+Renew" (holdout 20 %) wrote to two segments:
- "=Gold", 20 rows: g0–g15 sent, g16–g18 held out, g19 suppressed. Of the 16 sent, g0–g9
  opened (people), the even ones were opened by a machine too (8), g0–g5 clicked and g0–g3
  used the renewal link, g10 and g11 were clicked by a scanner; g0 acknowledged, g13
  complained, g14 bounced, g15 unsubscribed. g0–g6 renewed (EUR 120 each), g7 (USD 50);
  held-out g16 renewed too (EUR 100).
- "\\tBasic", 6 rows: b0–b4 sent, b5 failed; b0 opened and clicked; b1 renewed (EUR 120).
The series "-Expiry series" (60/30/7 days before the end, holdout 10 %, letter
"@Expiry reminder"): step 60 sent to a0–a5; step 30 to a0, a1, a3, a4 and held out a5;
a2 renewed after step 60, a0 and a1 after step 30 (EUR 120 each).
One more customer renewed with no letter (EUR 60): organic.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from campaigns.audience import contacts, segments
from campaigns.db import Database, utcnow
from campaigns.delivery import automations, scheduling
from campaigns.models import (
    Automation,
    AutomationStep,
    Campaign,
    Contract,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    Letter,
    LetterKind,
    LetterVersion,
    Segment,
    SegmentTarget,
)
from campaigns.tracking import conversions, results
from tests.tracking.ledger_rows import version

WINDOW = timedelta(days=30)
SENT, HELD_OUT = DeliveryState.SENT, DeliveryState.HELD_OUT


def build(db: Database, *, refresh: bool = True) -> dict[str, Any]:
    """Write the data above; the ids and the moment the letters started going out."""
    # Midnight (UTC): each letter's hour keeps it on the day the description says.
    start = datetime.combine(utcnow().date() - timedelta(days=100), time(), UTC)
    ids: dict[str, Any] = {"start": start}
    with db.unit_of_work() as s:
        gold, basic = (segments.create_segment(s, name, target=SegmentTarget.CONTRACTS,
                                               rules={"match": "all", "conditions": []})
                       for name in ("Gold", "Basic"))  # fmt: skip
        offer, reminder = version(s, name="Renewal offer"), version(s, LetterKind.EXPIRY, "Expiry")
        campaign = scheduling.create_campaign(
            s, "Renew", segment_id=gold.id, letter_version_id=offer, holdout_percent=20
        )
        series = automations.create_automation(
            s, "Expiry series", trigger="before_end", holdout_percent=10,
            steps=[automations.StepInput(days, reminder) for days in (60, 30, 7)],
        )  # fmt: skip
        step = {st.offset_days: st.id for st in series.steps}
        ids |= {
            "gold": gold.id,
            "basic": basic.id,
            "campaign": campaign.id,
            "automation": series.id,
            "offer": offer,
            "step60": step[60],
            "step30": step[30],
        }
        # The names a spreadsheet would run (set after creation: the forms trim them).
        s.get_one(Segment, gold.id).name = "=Gold"
        s.get_one(Segment, basic.id).name = "\tBasic"
        s.get_one(Campaign, campaign.id).name = "+Renew"
        s.get_one(Automation, series.id).name = "-Expiry series"
        s.get_one(Letter, s.get_one(LetterVersion, reminder).letter_id).name = "@Expiry reminder"
        _campaign_rows(s, ids, start)
        _series_rows(s, ids, start)
        other = _customer(s, "organic", start)
        _renew(s, other, start + timedelta(days=20), "60")
        if refresh:
            results.refresh(s, window=WINDOW)
    return ids


def _customer(s: Session, name: str, start: datetime) -> int:
    """A customer whose contract ends 40 days after the letters start; its contract id."""
    person = contacts.create_contact(s, f"{name}@example.com", first_name=name.title())
    contract = contacts.add_contract(
        s, person.id, product="Gold Support", price=Decimal("120"), external_id=f"K-{name}",
        starts_on=(start - timedelta(days=325)).date(), ends_on=(start + timedelta(days=40)).date(),
        renewal_url=f"https://shop.example.com/renew/{name}",
    )  # fmt: skip
    return contract.id


def _row(s: Session, contract_id: int, at: datetime, state: DeliveryState, **fields: Any) -> int:
    contract = s.get_one(Contract, contract_id)
    row = Delivery(contact_id=contract.contact_id, contract_id=contract_id, term=1,
                   email=f"{contract.external_id[2:]}@example.com", state=state, created_at=at,
                   sent_at=at if state == SENT else None, **fields)  # fmt: skip
    s.add(row)
    s.flush()
    return row.id


def _event(s: Session, delivery_id: int, kind: EventKind, at: datetime, *, machine: bool = False
           ) -> None:  # fmt: skip
    contact_id = s.get_one(Delivery, delivery_id).contact_id
    s.add(Event(kind=kind, delivery_id=delivery_id, contact_id=contact_id, occurred_at=at,
                is_machine=machine))  # fmt: skip


def _renew(s: Session, contract_id: int, at: datetime, amount: str, currency: str = "EUR") -> None:
    conversions.record(
        s,
        contract_id=contract_id,
        amount=amount,
        currency=currency,
        idempotency_key=f"renewal-{contract_id}",
        occurred_at=at,
        window=WINDOW,
    )


def _campaign_rows(s: Session, ids: dict[str, Any], start: datetime) -> None:
    common = {"campaign_id": ids["campaign"], "letter_version_id": ids["offer"]}
    for i in range(20):
        at = start + timedelta(days=i % 4, hours=9)
        state = SENT if i < 16 else HELD_OUT if i < 19 else DeliveryState.SUPPRESSED
        contract = _customer(s, f"g{i}", start)
        row = _row(s, contract, at, state, segment_id=ids["gold"], **common)
        later = at + timedelta(hours=3)
        if i < 10:
            _event(s, row, EventKind.OPEN, later)
        if i < 16 and i % 2 == 0:
            _event(s, row, EventKind.OPEN, at + timedelta(seconds=2), machine=True)
        if i < 6:
            _event(s, row, EventKind.CLICK, later + timedelta(days=1))
        if i < 4:
            _event(s, row, EventKind.RENEWAL_CLICK, later + timedelta(days=1, minutes=1))
        if i in (10, 11):
            _event(s, row, EventKind.CLICK, at + timedelta(seconds=3), machine=True)
        extra = {0: EventKind.ACKNOWLEDGMENT, 13: EventKind.COMPLAINT, 14: EventKind.BOUNCE,
                 15: EventKind.UNSUBSCRIBE}  # fmt: skip
        if i in extra:
            _event(s, row, extra[i], later)
        if i < 7:
            _renew(s, contract, at + timedelta(days=3 + i), "120")
        elif i == 7:
            _renew(s, contract, at + timedelta(days=10), "50", "USD")
        elif i == 16:
            _renew(s, contract, at + timedelta(days=12), "100")
        if i == 0:
            s.get_one(Delivery, row).email = "=1+2@example.com"
        if i == 1:
            s.get_one(Contract, contract).external_id = "+K-g1"
        if i == 19:
            s.get_one(Delivery, row).reason = "-suppressed by an admin"
    for i in range(6):
        at = start + timedelta(days=i % 4, hours=10)
        contract = _customer(s, f"b{i}", start)
        state = SENT if i < 5 else DeliveryState.FAILED
        row = _row(s, contract, at, state, segment_id=ids["basic"], **common)
        if i == 0:
            _event(s, row, EventKind.OPEN, at + timedelta(hours=1))
            _event(s, row, EventKind.CLICK, at + timedelta(hours=1, minutes=1))
        if i == 1:
            _renew(s, contract, at + timedelta(days=6), "120")
        if i == 5:
            s.get_one(Delivery, row).reason = "\r550 no such mailbox"


def _series_rows(s: Session, ids: dict[str, Any], start: datetime) -> None:
    reminder = s.get_one(AutomationStep, ids["step60"]).letter_version_id
    for i in range(6):
        contract = _customer(s, f"a{i}", start)
        first = start + timedelta(days=1, hours=8)
        _row(s, contract, first, SENT, automation_step_id=ids["step60"],
             letter_version_id=reminder)  # fmt: skip
        if i == 2:
            _renew(s, contract, first + timedelta(days=4), "120")
            continue
        second = first + timedelta(days=30)
        _row(s, contract, second, SENT if i < 5 else HELD_OUT,
             automation_step_id=ids["step30"], letter_version_id=reminder)  # fmt: skip
        if i < 2:
            _renew(s, contract, second + timedelta(days=2 + i), "120")
