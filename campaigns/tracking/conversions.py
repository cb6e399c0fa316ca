"""Renewals (conversions): recorded from the CRM or detected, and credited to a letter.

A renewal is one contract term renewed, recorded once:

- **From the CRM** (`record`, the API's `POST /conversions`) with an idempotency key: a
  replay of the key returns the first record and changes nothing.
- **Detected** (`detect`) when an import, the API or the admin moved a contract's end date
  forward: the audience area keeps the past term (`contract_terms`), and each past term
  without a conversion becomes one, worth the new term's price, keyed `renewal:ID:TERM`.
- The two are the same renewal: a CRM conversion within the attribution window of a
  detected one takes it over (its amount, time and key win); a term detected after the CRM
  told us is not counted again. A second CRM conversion for one term is refused (409).

Credit (`attribute`) goes to the last renewal-related letter (an expiry reminder or a
renewal offer) delivered for the contract — or, for a letter about no contract in
particular, to its holder — within the attribution window before the renewal: last touch.
The first touch, the number of touches and their ids (`detail["touches"]`, oldest first)
are kept beside it. A renewal with no such letter is organic (`delivery_id` NULL).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from babel.numbers import list_currencies
from sqlalchemy import String, and_, exists, func, literal, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from campaigns.db import JSONType, checked_key, replayed, utcnow
from campaigns.delivery.ledger import insert_ignoring_duplicates
from campaigns.errors import Conflict, NotFound, ValidationError
from campaigns.models import (
    DELIVERED_STATES,
    Contract,
    ContractTerm,
    Conversion,
    Delivery,
    Letter,
    LetterKind,
    LetterVersion,
)

# The letters that can earn a renewal.
RENEWAL_KINDS = (LetterKind.EXPIRY, LetterKind.RENEWAL)
API = "api"
_CHUNK = 5000
# A renewal dated this far ahead of the server's clock is refused (clock skew allowed).
_FUTURE = timedelta(minutes=10)


@dataclass(frozen=True)
class Recorded:
    """A conversion as recorded, and whether this call recorded it."""

    conversion: Conversion
    created: bool
    # True when a renewal already detected from a moved end date was taken over.
    took_over: bool = False


def record(
    session: Session, *, contract_id: int, amount: Decimal | str | float, currency: str,
    idempotency_key: str, window: timedelta, occurred_at: datetime | None = None,
    detail: dict[str, Any] | None = None, now: datetime | None = None,
) -> Recorded:  # fmt: skip
    """Record a renewal the CRM reports, once per idempotency key; credit it to a letter."""
    now = now or utcnow()
    key = checked_key(idempotency_key)
    value, code = _amount(amount), _currency(currency)
    when = occurred_at or now
    if when.tzinfo is None:
        raise ValidationError("give occurred_at with a time zone", field="occurred_at")
    if when > now + _FUTURE:
        raise ValidationError("occurred_at is in the future", field="occurred_at")
    replay = _replay(session, key, contract_id, value, code)
    if replay is not None:
        return replay
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise NotFound(f"there is no contract #{contract_id}")
    detected = session.scalars(
        select(Conversion)
        .where(Conversion.contract_id == contract_id, Conversion.source != API,
               Conversion.occurred_at.between(when - window, when + window))
        .order_by(Conversion.occurred_at.desc()).limit(1).with_for_update()
    ).first()  # fmt: skip
    if detected is not None:
        detected.detail = {**detected.detail, **(detail or {}),
                           "detected": {"source": detected.source,
                                        "key": detected.idempotency_key,
                                        "amount": str(detected.amount),
                                        "currency": detected.currency}}  # fmt: skip
        detected.amount, detected.currency, detected.occurred_at = value, code, when
        detected.idempotency_key, detected.source = key, API
        session.flush()
        attribute(session, [detected.id], window=window)
        return Recorded(detected, created=True, took_over=True)
    conversion = Conversion(
        contract_id=contract_id, term=contract.term, amount=value, currency=code,
        occurred_at=when, idempotency_key=key, source=API, detail=dict(detail or {}),
        recorded_at=now,
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(conversion)
    except IntegrityError:
        replay = _replay(session, key, contract_id, value, code)
        if replay is not None:  # the same key, recorded a moment ago by a concurrent call
            return replay
        taken = session.scalar(select(Conversion.id).where(
            Conversion.contract_id == contract_id, Conversion.term == contract.term))  # fmt: skip
        raise Conflict(
            f"contract #{contract_id} already has a renewal of its term {contract.term} "
            f"recorded (conversion #{taken}); a term is renewed once"
        ) from None
    attribute(session, [conversion.id], window=window)
    return Recorded(conversion, created=True)


def _replay(
    session: Session, key: str, contract_id: int, amount: Decimal, currency: str
) -> Recorded | None:
    found = replayed(
        session, Conversion, key,
        same=lambda c: (c.contract_id, c.amount, c.currency) == (contract_id, amount, currency),
        used_for=lambda c: f"conversion #{c.id} (contract #{c.contract_id}, {c.amount} "
                           f"{c.currency}), a renewal of its own",
    )  # fmt: skip
    return None if found is None else Recorded(found, created=False)


def _amount(raw: Decimal | str | float) -> Decimal:
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValidationError("amount is not a number", field="amount") from None
    if not value.is_finite() or value < 0 or value >= Decimal("1e10"):
        raise ValidationError("amount must be between 0 and 9,999,999,999.99", field="amount")
    if value != value.quantize(Decimal("0.01")):
        raise ValidationError("amount has more than two decimals", field="amount")
    return value.quantize(Decimal("0.01"))


def _currency(raw: str) -> str:
    code = raw.strip().upper()
    if code not in list_currencies():
        raise ValidationError(
            f"{raw!r} is not an ISO 4217 currency code such as EUR, USD or GBP", field="currency"
        )
    return code


def detect(session: Session, *, window: timedelta, now: datetime | None = None) -> int:
    """Turn every past contract term without a conversion into one; return how many.

    One `INSERT … SELECT`, then the new ones are credited. Safe to run at any time and
    from several processes: a term is converted once (unique contract and term).
    """
    now = now or utcnow()
    past, following, k = ContractTerm, aliased(ContractTerm), Contract
    key = (literal("renewal:") + sql_cast(past.contract_id, String) + literal(":")
           + sql_cast(past.term, String))  # fmt: skip
    recorded = exists().where(Conversion.contract_id == past.contract_id,
                              Conversion.term == past.term)  # fmt: skip
    new = (
        select(past.contract_id, past.term,
               func.coalesce(following.price, k.price),
               func.coalesce(following.currency, k.currency),
               past.recorded_at, key, past.source, literal(now), literal(0),
               literal({}, JSONType))
        .join(k, k.id == past.contract_id)
        .outerjoin(following, and_(following.contract_id == past.contract_id,
                                   following.term == past.term + 1))
        .where(~recorded)
    )  # fmt: skip
    statement = (
        insert_ignoring_duplicates(session, Conversion)
        .from_select(["contract_id", "term", "amount", "currency", "occurred_at",
                      "idempotency_key", "source", "recorded_at", "touches", "detail"], new)
        .returning(Conversion.id)
    )  # fmt: skip
    ids = list(session.scalars(statement))
    attribute(session, ids, window=window)
    return len(ids)


@dataclass(frozen=True)
class _Touch:
    delivery_id: int
    contract_id: int | None
    contact_id: int
    sent_at: datetime


def attribute(session: Session, conversion_ids: Sequence[int], *, window: timedelta) -> None:
    """Credit each conversion to its last touch within `window` (two queries a chunk)."""
    for chunk in _chunks(list(conversion_ids), _CHUNK):
        renewals = session.execute(
            select(Conversion.id, Conversion.contract_id, Contract.contact_id,
                   Conversion.occurred_at, Conversion.detail)
            .join(Contract, Contract.id == Conversion.contract_id)
            .where(Conversion.id.in_(chunk))
        ).all()  # fmt: skip
        if not renewals:
            continue
        by_contract, by_holder = _touches(session, renewals, window)
        changes = []
        for conversion_id, contract_id, holder, occurred_at, detail in renewals:
            start = occurred_at - window
            touches = sorted(
                (t for t in (*by_contract[contract_id], *by_holder[holder])
                 if start < t.sent_at <= occurred_at),
                key=lambda t: (t.sent_at, t.delivery_id),
            )  # fmt: skip
            ids = [t.delivery_id for t in touches]
            changes.append({
                "id": conversion_id,
                "delivery_id": ids[-1] if ids else None,
                "first_delivery_id": ids[0] if ids else None,
                "touches": len(ids),
                "detail": {**(detail or {}), "touches": ids},
            })  # fmt: skip
        session.execute(update(Conversion), changes)


def _touches(
    session: Session, renewals: Sequence[Any], window: timedelta
) -> tuple[dict[int, list[_Touch]], dict[int, list[_Touch]]]:
    """The renewal-related letters delivered about these contracts (or to their holders,
    about no contract) in the span the renewals' windows cover."""
    contracts = {r.contract_id for r in renewals}
    holders = {r.contact_id for r in renewals}
    earliest = min(r.occurred_at for r in renewals) - window
    latest = max(r.occurred_at for r in renewals)
    rows = session.execute(
        select(Delivery.id, Delivery.contract_id, Delivery.contact_id, Delivery.sent_at)
        .join(LetterVersion, LetterVersion.id == Delivery.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .where(Delivery.state.in_(DELIVERED_STATES), Letter.kind.in_(RENEWAL_KINDS),
               Delivery.sent_at > earliest, Delivery.sent_at <= latest,
               or_(Delivery.contract_id.in_(contracts),
                   and_(Delivery.contract_id.is_(None), Delivery.contact_id.in_(holders))))
    ).all()  # fmt: skip
    by_contract: dict[int, list[_Touch]] = defaultdict(list)
    by_holder: dict[int, list[_Touch]] = defaultdict(list)
    for delivery_id, contract_id, contact_id, sent_at in rows:
        touch = _Touch(delivery_id, contract_id, contact_id, cast(datetime, sent_at))
        if touch.contract_id is None:
            by_holder[touch.contact_id].append(touch)
        else:
            by_contract[touch.contract_id].append(touch)
    return by_contract, by_holder


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def touches_of(session: Session, conversion: Conversion) -> list[Delivery]:
    """The letters a conversion was credited over, oldest (first touch) to newest (last)."""
    ids = cast(list[int], conversion.detail.get("touches") or [])
    if not ids:
        return []
    found = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    return [found[i] for i in ids if i in found]
