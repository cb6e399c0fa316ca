"""Renewals: recorded once (scenario 17), detected from moved end dates, credited last-touch."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.audience import upserts
from campaigns.db import Database, utcnow
from campaigns.errors import Conflict, NotFound, ValidationError
from campaigns.models import Contract, Conversion, DeliveryState, LetterKind
from campaigns.tracking import conversions
from tests.tracking.ledger_rows import customer, letter, version

WINDOW = timedelta(days=30)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=utcnow().tzinfo)


def test_a_replayed_conversion_is_recorded_once_scenario_17(db: Database) -> None:
    with db.unit_of_work() as s:
        _, contract = customer(s, "ada@example.com")
    for _ in range(3):
        with db.unit_of_work() as s:
            recorded = conversions.record(s, contract_id=contract, amount="120.00",
                                          currency="eur", idempotency_key="crm-1",
                                          window=WINDOW)  # fmt: skip
    with db.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Conversion)) == 1
        assert not recorded.created and recorded.conversion.amount == Decimal("120.00")
        with pytest.raises(Conflict, match="already used for conversion"):
            conversions.record(s, contract_id=contract, amount="99", currency="EUR",
                               idempotency_key="crm-1", window=WINDOW)  # fmt: skip


def test_concurrent_replays_record_one_conversion(db: Database) -> None:
    with db.unit_of_work() as s:
        _, contract = customer(s, "ada@example.com")
    start, outcomes = threading.Barrier(6), []

    def post() -> None:
        start.wait()
        with db.unit_of_work() as s:
            outcomes.append(conversions.record(
                s, contract_id=contract, amount=120, currency="EUR", idempotency_key="same",
                window=WINDOW).created)  # fmt: skip

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 5 + [True]
    with db.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Conversion)) == 1


def test_bad_input_names_the_field(db: Database) -> None:
    with db.unit_of_work() as s:
        _, contract = customer(s, "ada@example.com")
        for kwargs, field in (({"amount": "-1"}, "amount"), ({"amount": "1.234"}, "amount"),
                              ({"currency": "EURO"}, "currency"),
                              ({"occurred_at": utcnow() + timedelta(days=1)}, "occurred_at"),
                              ({"idempotency_key": " "}, "Idempotency-Key")):  # fmt: skip
            given = {"amount": "1", "currency": "EUR", "idempotency_key": "k", **kwargs}
            with pytest.raises(ValidationError) as caught:
                conversions.record(s, contract_id=contract, window=WINDOW, **given)  # type: ignore[arg-type]
            assert caught.value.field == field
        with pytest.raises(NotFound):
            conversions.record(s, contract_id=contract + 99, amount=1, currency="EUR",
                               idempotency_key="k2", window=WINDOW)  # fmt: skip


def test_credit_goes_to_the_last_renewal_letter_within_the_window(db: Database) -> None:
    with db.unit_of_work() as s:
        contact, contract = customer(s, "ada@example.com")
        expiry, renewal = version(s, LetterKind.EXPIRY), version(s, LetterKind.RENEWAL)
        welcome = version(s, LetterKind.WELCOME)
        letter(s, contact, contract, expiry, NOW - timedelta(days=40))  # too early
        first = letter(s, contact, contract, expiry, NOW - timedelta(days=20))
        last = letter(s, contact, None, renewal, NOW - timedelta(days=5))
        letter(s, contact, contract, welcome, NOW - timedelta(days=1))  # not renewal
        letter(s, contact, contract, expiry, NOW - timedelta(days=2),
                DeliveryState.HELD_OUT)  # never went  # fmt: skip
        letter(s, contact, contract, expiry, NOW + timedelta(hours=1))  # after
        other_contact, other = customer(s, "bob@example.com")
        letter(s, other_contact, other, expiry, NOW - timedelta(days=3))
        recorded = conversions.record(s, contract_id=contract, amount=120, currency="EUR",
                                      idempotency_key="r1", occurred_at=NOW, window=WINDOW,
                                      now=NOW + timedelta(days=1))  # fmt: skip
        made = recorded.conversion
        s.refresh(made)
        assert (made.delivery_id, made.first_delivery_id, made.touches) == (last, first, 2)
        assert [d.id for d in conversions.touches_of(s, made)] == [first, last]
        organic = conversions.record(s, contract_id=other, amount=50, currency="EUR",
                                     idempotency_key="r2", occurred_at=NOW - timedelta(days=10),
                                     window=WINDOW, now=NOW)  # fmt: skip
        s.refresh(organic.conversion)
        assert organic.conversion.delivery_id is None and organic.conversion.touches == 0


def _extend(s: Session, email: str, ends_on: date, price: str = "150") -> None:
    upserts.upsert(s, [{"email": email, "contracts": [
        {"external_id": f"K-{email}", "product": "Gold Support", "ends_on": ends_on,
         "price": Decimal(price)}]}], source="import")  # fmt: skip


def test_a_moved_end_date_is_a_renewal_detected_once(db: Database) -> None:
    with db.unit_of_work() as s:
        contact, contract = customer(s, "ada@example.com")
        expiry = version(s, LetterKind.EXPIRY)
        sent = letter(s, contact, contract, expiry, utcnow() - timedelta(days=3))
        _extend(s, "ada@example.com", date(2027, 12, 1))
    with db.unit_of_work() as s:
        assert conversions.detect(s, window=WINDOW) == 1
        assert conversions.detect(s, window=WINDOW) == 0
        (made,) = s.scalars(select(Conversion))
        assert (made.contract_id, made.term, made.source) == (contract, 1, "import")
        assert (made.amount, made.currency, made.delivery_id) == (Decimal("150.00"), "EUR", sent)
        assert made.idempotency_key == f"renewal:{contract}:1"
        # The CRM reports the same renewal: it takes the detected one over, counted once.
        taken = conversions.record(s, contract_id=contract, amount="155.50", currency="EUR",
                                   idempotency_key="crm-9", window=WINDOW)  # fmt: skip
        assert taken.took_over and taken.conversion.id == made.id
        assert s.scalar(select(func.count()).select_from(Conversion)) == 1
        assert made.detail["detected"]["amount"] == "150.00" and made.delivery_id == sent


def test_a_crm_conversion_first_is_not_counted_again_when_the_end_date_moves(
    db: Database,
) -> None:
    with db.unit_of_work() as s:
        _, contract = customer(s, "ada@example.com")
        conversions.record(s, contract_id=contract, amount=120, currency="EUR",
                           idempotency_key="crm-1", window=WINDOW)  # fmt: skip
        with pytest.raises(Conflict, match="term 1"):
            conversions.record(s, contract_id=contract, amount=120, currency="EUR",
                               idempotency_key="crm-2", window=timedelta(0))  # fmt: skip
    with db.unit_of_work() as s:
        _extend(s, "ada@example.com", date(2027, 12, 1))
        assert conversions.detect(s, window=WINDOW) == 0
        assert s.scalar(select(Contract.term).where(Contract.id == contract)) == 2
        _extend(s, "ada@example.com", date(2028, 12, 1))  # the next year's renewal
        assert conversions.detect(s, window=WINDOW) == 1
        terms = s.scalars(select(Conversion.term).order_by(Conversion.term)).all()
        assert terms == [1, 2]
