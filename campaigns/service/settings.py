"""The service settings: the incident fee, the points packages on offer, the policy text.

One row (`ServiceSettings`, id 1) that the stock letters quote (`service.policy_text`,
`service.packages`; the fee as `company.incident_price`) and the help desk charges by. The
policy text may have translations: a contact gets the one of their locale (`de_CH`), else
of their language (`de`), else the text itself.
Until an admin saves it there is no row, and `read` gives the defaults. `update` checks
every field at once and refuses the lot with each bad field named (`SettingsRefused`),
so the form can say all that is wrong in one go; a change records who made it and when,
and goes into the audit trail.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from babel.numbers import list_currencies
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.accounts import audit
from campaigns.db import utcnow
from campaigns.errors import ValidationError
from campaigns.letters import locales
from campaigns.models import ServiceSettings, User

MAX_PACKAGES = 10
MAX_TRANSLATIONS = 20
MAX_NAME = 80
MAX_POINTS = 1000
MAX_POLICY = 20_000
MAX_AMOUNT = Decimal("1000000")  # the column keeps 12 digits, 2 of them decimals
_CENT = Decimal("0.01")
T = TypeVar("T")


class SettingsRefused(ValidationError):
    """The service settings form has refused fields; `errors` names each with what to do."""

    def __init__(self, errors: dict[str, str]) -> None:
        field, reason = next(iter(errors.items()))
        super().__init__(f"{field}: {reason}", field=field)
        self.errors = errors


@dataclass(frozen=True)
class Package:
    """A points package on offer: "Buy 5, get 6" — 6 points for 250.00."""

    name: str
    points: int
    price: Decimal

    def stored(self) -> dict[str, object]:
        """As the row keeps it (JSON: the price as a string, exact)."""
        return {"name": self.name, "points": self.points, "price": str(self.price)}


@dataclass(frozen=True)
class Terms:
    """The service settings as saved (or the defaults, before anyone saved them)."""

    incident_fee: Decimal | None
    currency: str
    packages: list[Package] = field(default_factory=list)
    policy_text: str = ""
    policy_translations: dict[str, str] = field(default_factory=dict)  # locale → text
    updated_at: datetime | None = None
    updated_by: str = ""  # the e-mail address of who saved them last


def read(session: Session, *, default_currency: str = "EUR") -> Terms:
    """The service settings; the defaults (no fee, no packages, no policy text, the
    company's currency) while none are saved."""
    row = session.get(ServiceSettings, 1)
    if row is None:
        return Terms(incident_fee=None, currency=default_currency)
    by = ""
    if row.updated_by_id is not None:
        by = session.scalar(select(User.email).where(User.id == row.updated_by_id)) or ""
    return Terms(
        incident_fee=row.incident_fee, currency=row.currency,
        packages=[_package(p) for p in row.packages or ()], policy_text=row.policy_text,
        policy_translations=dict(row.policy_translations or {}),
        updated_at=row.updated_at, updated_by=by,
    )  # fmt: skip


def _package(stored: Mapping[str, object]) -> Package:
    return Package(str(stored.get("name") or ""), int(str(stored.get("points") or 0)),
                   Decimal(str(stored.get("price") or 0)))  # fmt: skip


def update(
    session: Session, *, incident_fee: str, currency: str, packages: Sequence[Mapping[str, str]],
    policy_text: str, user_id: int | None, now: datetime | None = None,
    policy_translations: Sequence[Mapping[str, str]] = (),
) -> Terms:  # fmt: skip
    """Check and save the settings as typed in the form (packages: rows of name, points
    and price; translations: rows of locale and text; wholly blank rows are skipped);
    refuse them all if any field is wrong."""
    errors: dict[str, str] = {}
    fee = _checked(errors, "incident_fee", lambda: _amount(incident_fee, optional=True))
    code = _checked(errors, "currency", lambda: _currency(currency))
    offered = _packages(errors, packages)
    text = _checked(errors, "policy_text", lambda: _policy(policy_text))
    translated = _translations(errors, policy_translations)
    if errors:
        raise SettingsRefused(errors)
    assert code is not None and text is not None  # checked: no error
    row = session.get(ServiceSettings, 1, with_for_update=True)
    if row is None:
        row = ServiceSettings(id=1)
        session.add(row)
    before = (row.incident_fee, row.currency, list(row.packages or ()), row.policy_text,
              dict(row.policy_translations or {}))  # fmt: skip
    row.incident_fee, row.currency, row.policy_text = fee, code, text
    row.packages = [p.stored() for p in offered]
    row.policy_translations = translated
    row.updated_at, row.updated_by_id = now or utcnow(), user_id
    session.flush()
    names = ("incident_fee", "currency", "packages", "policy_text", "policy_translations")
    after = (fee, code, row.packages, text, translated)
    changed = [n for n, old, new in zip(names, before, after, strict=True) if old != new]
    audit.record(session, "service_settings.update", user_id=user_id,
                 target_type="service_settings", target_id=1,
                 changed=", ".join(changed) or "nothing", incident_fee=fee or "none",
                 currency=code, packages=len(offered), policy_chars=len(text),
                 policy_translations=",".join(sorted(translated)) or "none")  # fmt: skip
    return read(session)


def _checked(errors: dict[str, str], name: str, check: Callable[[], T]) -> T | None:
    """Run one field's check; on ValueError, note why under the field's name (None)."""
    try:
        return check()
    except ValueError as exc:
        errors[name] = str(exc)
        return None


def _amount(raw: str, *, optional: bool = False) -> Decimal | None:
    text = raw.strip()
    if not text:
        if optional:
            return None
        raise ValueError("is missing: give an amount such as 250 or 249.50")
    if "," in text:
        raise ValueError("takes a point for decimals and no thousands separator: 1250.50")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("is not an amount: write it like 90 or 89.50") from None
    if not value.is_finite() or value < 0:
        raise ValueError("must be 0 or more")
    if value >= MAX_AMOUNT:
        raise ValueError(f"must be under {MAX_AMOUNT:,}")
    if value != value.quantize(_CENT):
        raise ValueError("takes at most 2 decimals (cents): 89.50, not 89.505")
    return value.quantize(_CENT)


def _currency(raw: str) -> str:
    code = raw.strip().upper()
    if code not in _currencies():
        raise ValueError("is not a currency code: give three letters such as EUR, USD or CHF")
    return code


@functools.cache
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def _policy(raw: str) -> str:
    # Forms send CRLF; the letters split paragraphs at blank lines ("\n\n").
    text = "\n".join(line.rstrip() for line in raw.replace("\r\n", "\n").split("\n")).strip()
    if len(text) > MAX_POLICY:
        raise ValueError(f"is {len(text):,} characters long: shorten it to {MAX_POLICY:,}")
    return text


def _translations(errors: dict[str, str], rows: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The policy text's translations of the form's rows (locale and text), skipping blank
    ones; refused fields into `errors` as `policy_translations.N.locale` / `.text`."""
    found: dict[str, str] = {}
    given = 0
    for n, row in enumerate(rows):
        raw_locale, raw_text = (row.get("locale") or "").strip(), row.get("text") or ""
        if not (raw_locale or raw_text.strip()):
            continue
        given += 1
        where = f"policy_translations.{n}"
        locale = ""
        if not raw_locale:
            errors[f"{where}.locale"] = "is missing: give the language, such as de or fr_CH"
        else:
            try:
                locale = locales.checked(raw_locale)
            except ValueError:
                errors[f"{where}.locale"] = "is not a language code such as de, fr or de_CH"
        if locale in found:
            errors[f"{where}.locale"] = "is given twice: one text per language"
        text = _checked(errors, f"{where}.text", functools.partial(_policy, raw_text))
        if text == "":
            errors[f"{where}.text"] = "is empty: write the translation, or clear the language"
        if f"{where}.locale" not in errors and text:
            found[locale] = text
    if given > MAX_TRANSLATIONS:
        errors["policy_translations"] = f"has {given} translations: at most {MAX_TRANSLATIONS}"
    return found


def _packages(errors: dict[str, str], rows: Sequence[Mapping[str, str]]) -> list[Package]:
    """The packages of the form's rows, skipping blank ones; refused fields into `errors`
    as `packages.N.name` (N counting the form's rows from 0)."""
    found: list[Package] = []
    names: set[str] = set()
    given = 0
    for n, row in enumerate(rows):
        name = (row.get("name") or "").strip()
        raw_points, raw_price = (row.get("points") or "").strip(), (row.get("price") or "")
        if not (name or raw_points or raw_price.strip()):
            continue
        given += 1
        if not name:
            errors[f"packages.{n}.name"] = "is missing: give the package a name"
        elif len(name) > MAX_NAME:
            errors[f"packages.{n}.name"] = f"is too long: at most {MAX_NAME} characters"
        elif name.casefold() in names:
            errors[f"packages.{n}.name"] = "is offered twice: give each package its own name"
        names.add(name.casefold())
        points = _checked(errors, f"packages.{n}.points", functools.partial(_points, raw_points))
        price = _checked(errors, f"packages.{n}.price", functools.partial(_amount, raw_price))
        if f"packages.{n}.name" not in errors and points is not None and price is not None:
            found.append(Package(name, points, price))
    if given > MAX_PACKAGES:
        errors["packages"] = (f"has {given} packages: offer at most {MAX_PACKAGES} (remove "
                              f"{given - MAX_PACKAGES})")  # fmt: skip
    return found


def _points(raw: str) -> int:
    if not raw:
        raise ValueError(f"is missing: give a whole number from 1 to {MAX_POINTS:,}")
    if not raw.isdigit():
        raise ValueError(f"must be a whole number from 1 to {MAX_POINTS:,}")
    value = int(raw)
    if not 1 <= value <= MAX_POINTS:
        raise ValueError(f"must be from 1 to {MAX_POINTS:,}")
    return value
