"""The merge context of a letter: every field a template may read, built once per letter.

=================  ===========================================================================
field              what it holds
=================  ===========================================================================
contact            the recipient: email, first_name, last_name, name (first and last name,
                   else the address), locale, time_zone, customer_since, lifetime_spend,
                   service_points (the points ledger's balance, with what this letter
                   grants already counted), attributes.NAME
contract           the contract the letter is about (segments of contracts only): product,
                   plan, starts_on, ends_on, days_left (from today in the contact's time
                   zone), price, currency, service_points, attributes.NAME; in renewal
                   letters also discount (percent, amount, price after it, code) when the
                   company's rules give one. A letter that prints it needs a contract
contracts          every matching contract of the contact (a campaign to a contracts segment:
                   one letter naming them all, soonest-ending first), each like contract;
                   an automation's letter is about one contract: [contract]
company            from settings: name, address, address_lines, support_email,
                   support_terms_url, logo_url, brand_colour, currency, incident_price
                   (priority phone support, per incident: the service settings' fee when
                   one is set there) and incident_currency (its currency),
                   discount_percent, discount_min_years, discount_min_spend
service            the admin's service settings: policy_text, policy_paragraphs (the text
                   split at blank lines), packages (each: name, points, price)
renewal_url        the contract's tracked renewal link (/r/<token>), never its raw URL
unsubscribe_url    the recipient's own signed links; preferences_url, acknowledge_url and
 …                 view_online_url likewise
rating_url(n)      a one-click rating link (/s/<token>): n from 1 to 5 in a CSAT letter, from 0
                   to 10 in an NPS one (the letter's survey scale)
rating_links       every rating of the letter's scale, lowest first, each {score, url}:
                   `{% for link in rating_links %}<a href="{{ link.url }}">{{ link.score }}</a>`
survey_scale       the letter's survey scale: "csat" (1–5) or "nps" (0–10)
format_date(d)     a date (or a time, shown in the contact's time zone) in the contact's
                   locale with Babel; format="long" (short, medium, long, full or a pattern)
format_money(a)    an amount in the contact's locale; currency=company.currency by default
sender_name        the name in From
open_pixel_url     put in by compilation, with link_url(i): the pixel, the tracked links
=================  ===========================================================================

Values a recipient lacks (no contract, an empty name, a contract without a renewal URL) are
missing fields: printing one fails that letter with the field named (see fields.py).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_date
from babel.dates import format_datetime as babel_datetime
from babel.numbers import format_currency
from jinja2 import Undefined

from campaigns.config import Company
from campaigns.letters import fields, locales
from campaigns.models import (
    SURVEY_SCORES,
    Contact,
    Contract,
    LetterKind,
    ServiceSettings,
    SurveyScale,
)

DATE_FORMATS = ("short", "medium", "long", "full")
_CENT = Decimal("0.01")


class Signer(Protocol):
    """Makes the signed token of a tracked URL (campaigns.delivery.tokens.Tokens)."""

    def sign(self, purpose: str, *ids: int) -> str: ...


@dataclass(frozen=True)
class Discount:
    """A renewal discount the company's rules give one contract."""

    percent: int
    amount: Decimal
    price: Decimal  # after the discount
    code: str

    def fields(self) -> dict[str, Any]:
        return {"percent": self.percent, "amount": self.amount, "price": self.price,
                "code": self.code}  # fmt: skip


def discount_for(
    company: Company, *, customer_since: date | None, lifetime_spend: Decimal | None,
    price: Decimal, today: date,
) -> Discount | None:  # fmt: skip
    """The renewal discount of a contract: for long-standing or high-spend customers only."""
    if company.discount_percent <= 0 or price <= 0:
        return None
    years = company.discount_min_years
    since = customer_since
    long_standing = bool(years and since and _years_between(since, today) >= years)
    high_spend = bool(company.discount_min_spend and lifetime_spend is not None
                      and lifetime_spend >= company.discount_min_spend)  # fmt: skip
    if not (long_standing or high_spend):
        return None
    amount = (price * company.discount_percent / 100).quantize(_CENT, ROUND_HALF_UP)
    return Discount(company.discount_percent, amount, price - amount, company.discount_code)


def _years_between(start: date, end: date) -> int:
    years = end.year - start.year
    return years - 1 if (end.month, end.day) < (start.month, start.day) else years


@functools.lru_cache(maxsize=256)
def _locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("-", "_") or "en")
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


@functools.lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The time zone of this name; an unknown or empty one is UTC."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def today_in(time_zone: str, now: datetime | None = None) -> date:
    """Today's date where the contact lives."""
    return (now or datetime.now(tz=zone("UTC"))).astimezone(zone(time_zone)).date()


def _given(value: Any) -> Any:
    """Refuse a missing merge field passed to a helper, naming it."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


@functools.lru_cache(maxsize=4096)
def _money(amount: Decimal, code: str, locale: str) -> str:
    # A campaign prints the same few amounts in the same few locales thousands of times,
    # and Babel takes ~40 µs for each.
    return str(format_currency(amount, code, locale=_locale(locale)))


@functools.lru_cache(maxsize=4096)
def _day(value: date, format: str, locale: str) -> str:
    return str(babel_date(value, format, locale=_locale(locale)))


def formatters(locale: str, time_zone: str, currency: str) -> dict[str, Callable[..., str]]:
    """`format_date` and `format_money` for one contact: their locale and time zone."""

    def format_date(value: Any, format: str = "long") -> str:
        value, format = _given(value), str(_given(format))
        if format not in DATE_FORMATS and len(format) > 40:
            raise ValueError("a date format is short, medium, long, full or a short pattern")
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=zone("UTC"))
            return str(babel_datetime(moment, format, tzinfo=zone(time_zone),
                                      locale=_locale(locale)))  # fmt: skip
        if not isinstance(value, date):
            value = date.fromisoformat(str(value))
        return _day(value, format, locale)

    def format_money(amount: Any, currency_code: Any = currency) -> str:
        amount, code = _given(amount), str(_given(currency_code))
        return _money(Decimal(str(amount)), code, locale)

    return {"format_date": format_date, "format_money": format_money}


@functools.lru_cache(maxsize=16)
def _company_fields(company: Company) -> Any:
    # The same for every letter: wrapped once (the sandbox lets no letter change it).
    return fields.wrap("company", company_fields(company))


def company_fields(company: Company) -> dict[str, Any]:
    return {
        "name": company.name, "address": company.address,
        "address_lines": company.address.splitlines(), "support_email": company.support_email,
        "support_terms_url": company.support_terms_url, "logo_url": company.logo_url,
        "brand_colour": company.brand_colour, "currency": company.currency,
        "incident_price": company.incident_price or None,
        "incident_currency": company.incident_currency or company.currency,
        "discount_percent": company.discount_percent,
        "discount_min_years": company.discount_min_years,
        "discount_min_spend": company.discount_min_spend,
    }  # fmt: skip


def service_terms(row: ServiceSettings | None) -> dict[str, Any]:
    """The service settings a letter may quote, as plain JSON values (kept in a snapshot)."""
    if row is None:
        return {}
    return {
        "policy_text": row.policy_text,
        "policy_translations": dict(row.policy_translations or {}),
        "incident_fee": str(row.incident_fee) if row.incident_fee is not None else None,
        "currency": row.currency,
        "packages": [dict(package) for package in row.packages or ()],
    }


def service_fields(terms: Mapping[str, Any], locale: str | None = None) -> dict[str, Any]:
    """The `service` merge field of `service_terms`: the policy text (whole and by
    paragraph) in the contact's locale, else their language, else as written; and the
    points packages on offer, prices as amounts."""
    translated: Mapping[str, str] = terms.get("policy_translations") or {}
    chosen = locales.pick(translated, locale)
    text = str(translated[chosen] if chosen else terms.get("policy_text") or "").strip()
    packages = [
        {"name": str(p.get("name") or ""), "points": int(p.get("points") or 0),
         "price": Decimal(str(p.get("price") or 0)),
         "currency": str(p.get("currency") or terms.get("currency") or "")}
        for p in terms.get("packages") or ()
    ]  # fmt: skip
    return {
        "policy_text": text,
        "policy_paragraphs": [part.strip() for part in text.split("\n\n") if part.strip()],
        "packages": packages,
    }


def contract_fields(
    contract: Mapping[str, Any], *, today: date, discount: Discount | None
) -> dict[str, Any]:
    """A contract as a letter sees it: its fields, the days left, the discount if any."""
    shown = {key: contract.get(key) for key in ("product", "plan", "starts_on", "ends_on",
                                                "price", "currency", "service_points")}  # fmt: skip
    ends_on = contract.get("ends_on")
    shown["days_left"] = max(0, (ends_on - today).days) if isinstance(ends_on, date) else None
    shown["discount"] = discount.fields() if discount else None
    shown["attributes"] = dict(contract.get("attributes") or {})
    return shown


def recipient_values(
    contact: Contact, contract: Contract | None, *, service_points: int
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """A contact and its contract as the plain values a letter reads (inside a unit of work):
    the contact's, the contract's (None without one), and the contract's raw renewal URL."""
    person = {
        "email": contact.email, "first_name": contact.first_name,
        "last_name": contact.last_name, "name": contact.display_name,
        "locale": contact.locale, "time_zone": contact.time_zone,
        "customer_since": contact.customer_since, "lifetime_spend": contact.lifetime_spend,
        "service_points": service_points, "attributes": dict(contact.attributes),
    }  # fmt: skip
    if contract is None:
        return person, None, ""
    return person, contract_values(contract), contract.renewal_url or ""


def contract_values(contract: Contract) -> dict[str, Any]:
    """A contract as the plain values a letter reads (inside a unit of work)."""
    return {
        "id": contract.id, "product": contract.product, "plan": contract.plan,
        "starts_on": contract.starts_on, "ends_on": contract.ends_on, "price": contract.price,
        "currency": contract.currency, "service_points": contract.service_points,
        "attributes": dict(contract.attributes),
    }  # fmt: skip


# The recipient's values that are not JSON types, by where they sit: kept as text in the
# ledger row's snapshot and read back as they were.
_DATES = {"customer_since", "starts_on", "ends_on"}
_AMOUNTS = {"lifetime_spend", "price"}


def snapshot(
    contact: Mapping[str, Any], contract: Mapping[str, Any] | None, renewal_target: str, *,
    at: datetime, contracts: Sequence[Mapping[str, Any]] = (),
    service: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What a letter was rendered from, as JSON values: its ledger row keeps it so the letter
    can be shown again exactly as sent, whatever changed in the contact (or the service
    settings it quoted) since."""

    def plain(values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v.isoformat() if k in _DATES and v is not None
                else str(v) if k in _AMOUNTS and v is not None else v
                for k, v in values.items()}  # fmt: skip

    kept: dict[str, Any] = {
        "contact": plain(contact), "contract": plain(contract) if contract else None,
        "renewal_target": renewal_target, "at": at.isoformat(),
    }  # fmt: skip
    if contracts:
        kept["contracts"] = [plain(other) for other in contracts]
    if service:
        kept["service"] = dict(service)
    return kept


def from_snapshot(
    kept: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any] | None, str, datetime, list[dict[str, Any]]]:
    """The contact, contract, renewal URL, time and matching contracts a `snapshot` was
    taken of."""

    def typed(values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: date.fromisoformat(v) if k in _DATES and v is not None
                else Decimal(v) if k in _AMOUNTS and v is not None else v
                for k, v in values.items()}  # fmt: skip

    contract = kept.get("contract")
    return (typed(kept["contact"]), typed(contract) if contract else None,
            str(kept.get("renewal_target") or ""), datetime.fromisoformat(kept["at"]),
            [typed(other) for other in kept.get("contracts") or ()])  # fmt: skip


class RatingLinks(Sequence[dict[str, Any]]):
    """A letter's one-click ratings, lowest first, each {score, url}: signed when first read
    (most letters are no surveys, and signing eleven links costs a letter ~0.1 ms)."""

    def __init__(self, scores: range, url: Callable[[int], str]) -> None:
        self._scores, self._url = scores, url
        self._links: list[dict[str, Any]] | None = None

    def _made(self) -> list[dict[str, Any]]:
        if self._links is None:
            self._links = [{"score": n, "url": self._url(n)} for n in self._scores]
        return self._links

    def __getitem__(self, index: Any) -> Any:
        return self._made()[index]

    def __len__(self) -> int:
        return len(self._scores)


@dataclass(frozen=True)
class Recipient:
    """What one ledger row's letter needs, as plain values read in a unit of work.

    `contact` holds the contact's columns (and `service_points`, their balance); `contract`
    the row's contract with its `id`, or None; `renewal_target` the contract's raw renewal
    URL, which never reaches the letter: the letter gets the tracked `/r/<token>` link.
    """

    delivery_id: int
    kind: LetterKind
    contact: Mapping[str, Any]
    contract: Mapping[str, Any] | None
    renewal_target: str
    links: Mapping[int, int]  # position in the version → stored link id
    # Every matching contract of a campaign to a contracts segment, soonest-ending first
    # (`contract` among them); empty: just `contract`.
    contracts: Sequence[Mapping[str, Any]] = ()
    # A survey letter's rating scale (Letter.survey_scale): "csat" 1–5, "nps" 0–10.
    survey_scale: str = "csat"
    # The service settings' terms (`service_terms`); empty: none set.
    service: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def build(
    recipient: Recipient, *, company: Company, sender_name: str, public_url: str,
    signer: Signer, now: datetime | None = None,
) -> tuple[dict[str, Any], Discount | None]:  # fmt: skip
    """The merge context of one recipient's letter, and the discount it offers (if any)."""
    contact, contract = recipient.contact, recipient.contract
    terms = recipient.service
    fee = terms.get("incident_fee")
    if fee is not None:
        currency = str(terms.get("currency") or company.currency)
        if (Decimal(str(fee)), currency) != (company.incident_price, company.incident_currency):
            company = dataclasses.replace(company, incident_price=Decimal(str(fee)),
                                          incident_currency=currency)  # fmt: skip
    time_zone = str(contact.get("time_zone") or "UTC")
    today = today_in(time_zone, now)
    delivery_id, links, base = recipient.delivery_id, recipient.links, public_url

    def link_url(position: int) -> str:
        return f"{base}/c/{signer.sign('click', delivery_id, links[position])}"

    scale = SurveyScale(recipient.survey_scale)
    scores = SURVEY_SCORES[scale]

    def rating_url(score: Any) -> str:
        score = _given(score)
        if isinstance(score, bool) or not isinstance(score, int) or score not in scores:
            raise ValueError(f"rating_url takes a rating from {scores[0]} to {scores[-1]} "
                             f"(the letter's {scale.upper()} scale), not {score!r}")  # fmt: skip
        return f"{base}/s/{signer.sign('rating', delivery_id, score)}"

    discount = None
    shown_contract: dict[str, Any] | None = None
    if contract is not None:
        if recipient.kind == LetterKind.RENEWAL:
            discount = discount_for(
                company, customer_since=contact.get("customer_since"),
                lifetime_spend=contact.get("lifetime_spend"),
                price=Decimal(str(contract.get("price") or 0)), today=today,
            )  # fmt: skip
        shown_contract = contract_fields(contract, today=today, discount=discount)
    context: dict[str, Any] = {
        "contact": dict(contact),
        "contract": shown_contract,
        "contracts": [
            shown_contract
            if other.get("id") == contract.get("id")
            else contract_fields(other, today=today, discount=None)
            for other in recipient.contracts
        ]
        if contract is not None and recipient.contracts
        else [shown_contract]
        if shown_contract
        else [],
        "company": _company_fields(company),
        "service": service_fields(terms, contact.get("locale")),
        "unsubscribe_url": f"{base}/u/{signer.sign('unsubscribe', delivery_id)}",
        "preferences_url": f"{base}/p/{signer.sign('preferences', delivery_id)}",
        "acknowledge_url": f"{base}/a/{signer.sign('acknowledge', delivery_id)}",
        "view_online_url": f"{base}/v/{signer.sign('view', delivery_id)}",
        "rating_url": rating_url,
        "rating_links": RatingLinks(scores, rating_url),
        "survey_scale": scale.value,
        "open_pixel_url": f"{base}/o/{signer.sign('open', delivery_id)}.gif",
        "link_url": link_url,
        "sender_name": sender_name,
        **formatters(str(contact.get("locale") or "en"), time_zone, company.currency),
    }
    if contract is None:
        context.update(without_contract())
    elif recipient.renewal_target:
        percent = discount.percent if discount else 0
        token = signer.sign("renewal", delivery_id, int(contract["id"]), percent)
        context["renewal_url"] = f"{base}/r/{token}"
    else:
        context["renewal_url"] = fields.missing_field(
            "renewal_url", "this recipient's contract has no renewal URL"
        )
    return context, discount


def without_contract() -> dict[str, Any]:
    """The contract fields of a recipient whose ledger row carries no contract."""
    why = ("this letter uses the contract, and this recipient has none (a segment of "
           "contacts, not contracts)")  # fmt: skip
    return {name: fields.missing_field(name, why) for name in fields.CONTRACT_FIELDS}


SAMPLE_COMPANY = Company(
    name="Example Support Ltd", address="1 Sample Street\n10115 Berlin",
    support_email="care@example.com", support_terms_url="https://example.com/terms",
    incident_price=Decimal("90.00"),
)  # fmt: skip
SAMPLE_NOW = datetime(2027, 1, 1, 9, 0, tzinfo=ZoneInfo("UTC"))  # 30 days left


class _PreviewSigner:
    """Signs nothing: preview links say what they are."""

    def sign(self, purpose: str, *ids: int) -> str:
        return "preview-" + purpose + "".join(f"-{i}" for i in ids)


def sample_context(
    link_count: int = 0, *, contract: bool = True, company: Company = SAMPLE_COMPANY,
    kind: LetterKind = LetterKind.RENEWAL, survey_scale: str = SurveyScale.CSAT,
) -> dict[str, Any]:  # fmt: skip
    """A context with plausible values for previews and validation renders.

    The sample customer is long-standing, so a renewal letter's discount line shows; free
    attributes read as `[name]` whatever the name.
    """
    recipient = Recipient(
        delivery_id=0, kind=kind,
        contact={"email": "jane.doe@example.com", "first_name": "Jane", "last_name": "Doe",
                 "name": "Jane Doe", "locale": "en", "time_zone": "Europe/Berlin",
                 "customer_since": date(2019, 3, 1), "lifetime_spend": Decimal("2400.00"),
                 "service_points": 12,
                 "attributes": fields.SampleFields("contact.attributes", {})},
        contract={"id": 0, "product": "Premium Support", "plan": "Annual",
                  "starts_on": date(2026, 2, 1), "ends_on": date(2027, 1, 31),
                  "price": Decimal("480.00"), "currency": "EUR", "service_points": 12,
                  "attributes": {}} if contract else None,
        renewal_target="https://example.com/renew", links={}, survey_scale=survey_scale,
    )  # fmt: skip
    context = preview_context(recipient, company=company, sender_name="Customer Care",
                              public_url="https://example.com", now=SAMPLE_NOW)  # fmt: skip
    if isinstance(context["contract"], dict):
        context["contract"]["attributes"] = fields.SampleFields("contract.attributes", {})
    return context


def preview_context(
    recipient: Recipient, *, company: Company, sender_name: str, public_url: str,
    now: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The merge context of a preview or test send: the recipient's values, links that
    carry no real token (they track nothing), and an inline pixel."""
    context, _ = build(recipient, company=company, sender_name=sender_name,
                       public_url=public_url, signer=_PreviewSigner(), now=now)  # fmt: skip
    context["link_url"] = lambda i: f"#link-{i}"
    context["open_pixel_url"] = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    return context


# Every top-level merge field a letter may read (the sandbox's own globals come on top).
MERGE_FIELDS = frozenset(sample_context())
