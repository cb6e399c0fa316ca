"""Contact and contract records: raw values (CSV text or JSON) checked and typed field by field.

The CSV import and the REST API both turn what they receive into records here, so a date, an
address or a currency is accepted or refused the same way wherever it comes from. Only the
fields present in the raw mapping are kept: an update that leaves a field out leaves it alone.
A value that is refused becomes a `FieldError` naming the field, the value and the reason;
checking goes on, so one pass reports every bad field of a row.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from babel.numbers import list_currencies

from campaigns.errors import ValidationError
from campaigns.models import ContactStatus, ContractStatus
from campaigns.models.contacts import normalise_email

MAX_AMOUNT = Decimal("9999999999.99")  # what Numeric(12, 2) holds
_LOCALE = re.compile(r"^[a-z]{2,3}(_[A-Z][a-z]{3})?(_[A-Z]{2}|_\d{3})?$")


@dataclass(frozen=True, slots=True)
class FieldError:
    """One refused value: which field, what it held, and why."""

    field: str
    value: str
    reason: str


class RecordError(ValidationError):
    """A record has refused fields; `errors` lists every one of them."""

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.field}: {first.reason}{more}", field=first.field)
        self.errors = errors


Parser = Callable[[Any], Any]


def _text(limit: int) -> Parser:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str | int):
            raise ValueError("must be text")
        value = str(raw).strip()
        if len(value) > limit:
            raise ValueError(f"is longer than {limit} characters")
        return value

    return parse


_id_text = _text(100)


def _optional_id(raw: Any) -> str | None:
    value = _id_text(raw) if raw is not None else ""
    return value or None


def _email(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("must be text")
    try:
        return normalise_email(raw)
    except ValidationError:
        raise ValueError("is not a valid e-mail address") from None


def _date(raw: Any) -> date:
    if isinstance(raw, date):
        return raw
    if not isinstance(raw, str):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError("is not a date; write it YYYY-MM-DD, e.g. 2026-12-31") from None


def _optional_date(raw: Any) -> date | None:
    return None if raw is None or raw == "" else _date(raw)


def _amount(raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise ValueError("must be a number such as 1250.00")
    try:
        value = Decimal(str(raw).strip() or "0")
    except InvalidOperation:
        raise ValueError("is not a number; write it like 1250.00 (a dot for decimals)") from None
    if not value.is_finite() or value < 0 or value > MAX_AMOUNT:
        raise ValueError(f"must be between 0 and {MAX_AMOUNT}")
    return value.quantize(Decimal("0.01"))


def _count(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("must be a whole number")
    try:
        value = int(str(raw).strip() or "0")
    except ValueError:
        raise ValueError("must be a whole number") from None
    if not 0 <= value <= 1_000_000:
        raise ValueError("must be between 0 and 1000000")
    return value


_currency_text, _locale_text, _zone_text, _url_text = _text(10), _text(20), _text(64), _text(2000)


def _currency(raw: Any) -> str:
    value = _currency_text(raw).upper()
    if value not in _currencies():
        raise ValueError("is not an ISO 4217 currency code such as EUR, USD or GBP")
    return value


@cache
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def _locale(raw: Any) -> str:
    value = _locale_text(raw).replace("-", "_")
    language, *rest = value.split("_")
    # pt_br → pt_BR, zh_hant_tw → zh_Hant_TW: the spelling Babel and the CLDR use.
    value = "_".join([language.lower(), *(p.title() if len(p) == 4 else p.upper() for p in rest)])
    if not _LOCALE.match(value):
        raise ValueError("is not a locale such as en, de or pt_BR")
    return value


def _time_zone(raw: Any) -> str:
    value = _zone_text(raw)
    if value not in _zones():
        raise ValueError("is not a time zone such as Europe/Berlin or UTC")
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _url(raw: Any) -> str | None:
    value = _url_text(raw) if raw is not None else ""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError("must be a web address starting with https://")
    return value


def _choice(kind: type[ContactStatus] | type[ContractStatus]) -> Parser:
    def parse(raw: Any) -> str:
        value = _text(20)(raw).lower()
        if value not in {member.value for member in kind}:
            raise ValueError(f"must be one of: {', '.join(member.value for member in kind)}")
        return value

    return parse


def _attributes(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("must be an object of names and values")
    for key, value in raw.items():
        if not isinstance(key, str) or not key or len(key) > 100:
            raise ValueError("names must be text of 1 to 100 characters")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"{key!r} must be text, a number, true/false or empty")
    return dict(raw)


CONTACT_FIELDS: dict[str, Parser] = {
    "email": _email,
    "external_id": _optional_id,
    "first_name": _text(100),
    "last_name": _text(100),
    "locale": _locale,
    "time_zone": _time_zone,
    "status": _choice(ContactStatus),
    "customer_since": _optional_date,
    "lifetime_spend": _amount,
    "attributes": _attributes,
}

CONTRACT_FIELDS: dict[str, Parser] = {
    "external_id": _optional_id,
    "product": _text(255),
    "plan": _text(100),
    "starts_on": _date,
    "ends_on": _date,
    "status": _choice(ContractStatus),
    "price": _amount,
    "currency": _currency,
    "renewal_url": _url,
    "service_points": _count,
    "attributes": _attributes,
}


def check(
    raw: Mapping[str, Any], fields: Mapping[str, Parser], *, prefix: str
) -> tuple[dict[str, Any], list[FieldError]]:
    """Type the known fields present in `raw`; return the record and every refused value."""
    record: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, value in raw.items():
        parse = fields.get(name)
        if parse is None:
            errors.append(FieldError(f"{prefix}.{name}", _shown(value), "is not a known field"))
            continue
        try:
            record[name] = parse(value)
        except ValueError as exc:
            errors.append(refusal(prefix, name, value, exc))
    return record, errors


def contact_record(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """Check a contact's fields; it must carry an e-mail address or an external id."""
    record, errors = check(raw, CONTACT_FIELDS, prefix="contact")
    contact_rules(errors, has_email="email" in raw, external_id=record.get("external_id"))
    return record, errors


def contact_rules(errors: list[FieldError], *, has_email: bool, external_id: Any) -> None:
    """Add what is wrong with a contact's fields together (each field itself being valid)."""
    if not has_email and not external_id:
        errors.append(FieldError("contact.email", "", "is required (or an external_id)"))


def contract_record(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """Check a contract's fields, and that it ends on or after its start."""
    record, errors = check(raw, CONTRACT_FIELDS, prefix="contract")
    contract_rules(errors, record.get("starts_on"), record.get("ends_on"), record.get("product"))
    return record, errors


def contract_rules(errors: list[FieldError], starts: date | None, ends: date | None,
                   product: str | None) -> None:  # fmt: skip
    """Add what is wrong with a contract's fields together: an end before the start, an empty
    product (None: not given)."""
    if starts is not None and ends is not None and ends < starts:
        errors.append(FieldError("contract.ends_on", str(ends), f"is before the start {starts}"))
    if product is not None and not product:
        errors.append(FieldError("contract.product", "", "is required"))


def refusal(prefix: str, name: str, value: Any, exc: ValueError) -> FieldError:
    """The FieldError of a value a parser refused."""
    return FieldError(f"{prefix}.{name}", _shown(value), str(exc))


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "…"
