"""The merge context: company settings, discount rules, dates and money in the contact's locale."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from campaigns.config import Company, Settings
from campaigns.errors import ConfigError, TemplateError
from campaigns.letters import context, rendering
from campaigns.models import LetterKind

NOW = datetime(2027, 1, 1, 23, 30, tzinfo=ZoneInfo("UTC"))  # already Jan 2 in Berlin


class _Signer:
    def sign(self, purpose: str, *ids: int) -> str:
        return f"{purpose}-" + "-".join(map(str, ids))


def _context(*, locale: str = "en", contract: bool = True, kind: LetterKind = LetterKind.RENEWAL,
             since: date | None = None, spend: str = "0") -> dict[str, object]:  # fmt: skip
    recipient = context.Recipient(
        delivery_id=5, kind=kind,
        contact={"email": "ada@example.com", "first_name": "Ada", "last_name": "", "name": "Ada",
                 "locale": locale, "time_zone": "Europe/Berlin", "customer_since": since,
                 "lifetime_spend": Decimal(spend), "service_points": 4, "attributes": {}},
        contract={"id": 9, "product": "Premium Support", "plan": "Annual",
                  "starts_on": date(2026, 2, 1), "ends_on": date(2027, 1, 31),
                  "price": Decimal("480.00"), "currency": "EUR", "service_points": 4,
                  "attributes": {}} if contract else None,
        renewal_target="https://shop.example.com/renew/9", links={},
    )  # fmt: skip
    merge_fields, _discount = context.build(
        recipient, company=Company(name="Acme", incident_price=Decimal("90")), sender_name="Care",
        public_url="https://mail.example.com", signer=_Signer(), now=NOW,
    )  # fmt: skip
    return merge_fields


def _render(source: str, **kwargs: object) -> str:
    merge_fields = _context(**kwargs)  # type: ignore[arg-type]
    return rendering.render_string(rendering.TEXT_ENV, source, merge_fields, field="text")


def test_company_settings_have_sensible_defaults_and_refuse_nonsense() -> None:
    company = Settings.from_env({"SENDER": "Acme Care <care@acme.example>"}).company
    assert (company.name, company.support_email, company.currency) == (
        "Acme Care", "care@acme.example", "EUR")  # fmt: skip
    assert (company.discount_percent, company.discount_min_years) == (10, 3)
    assert company.discount_min_spend == Decimal("5000.00")
    for env, message in [
        ({"BRAND_COLOUR": "red; background:url(x)"}, "BRAND_COLOUR"),
        ({"DISCOUNT_PERCENT": "95"}, "DISCOUNT_PERCENT"),
        ({"DISCOUNT_MIN_SPEND": "lots"}, "DISCOUNT_MIN_SPEND"),
        ({"COMPANY_LOGO_URL": "javascript:alert(1)"}, "COMPANY_LOGO_URL"),
        ({"DISCOUNT_CODE": "A B"}, "DISCOUNT_CODE"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(env)


def test_dates_and_money_follow_the_contacts_locale_and_time_zone() -> None:
    source = "{{ format_date(contract.ends_on) }} | {{ format_money(contract.price) }} | " \
             "{{ format_money(company.incident_price) }} | {{ contract.days_left }}"  # fmt: skip
    assert _render(source) == "January 31, 2027 | €480.00 | €90.00 | 29"
    assert _render(source, locale="de_DE") == "31. Januar 2027 | 480,00\xa0€ | 90,00\xa0€ | 29"
    assert _render(source, locale="de-AT") == "31. Jänner 2027 | €\xa0480,00 | €\xa090,00 | 29"
    assert _render(source, locale="xx-unknown") == "January 31, 2027 | €480.00 | €90.00 | 29"


def test_the_discount_is_for_long_standing_or_high_spend_customers_and_renewal_letters() -> None:
    shows = "{% if contract.discount %}{{ contract.discount.percent }}% off: " \
            "{{ format_money(contract.discount.price) }}{% else %}none{% endif %}"  # fmt: skip
    assert _render(shows, since=date(2025, 1, 1)) == "none"
    assert _render(shows, since=date(2024, 1, 2)) == "10% off: €432.00"  # three years on Jan 2
    assert _render(shows, since=date(2024, 1, 3)) == "none"
    assert _render(shows, spend="5000") == "10% off: €432.00"
    assert _render(shows, spend="4999.99") == "none"
    assert _render(shows, spend="9000", kind=LetterKind.EXPIRY) == "none"
    assert _render("{{ renewal_url }}", spend="9000") == "https://mail.example.com/r/renewal-5-9-10"
    assert _render("{{ renewal_url }}") == "https://mail.example.com/r/renewal-5-9-0"


def test_a_missing_field_handed_to_a_helper_is_named() -> None:
    with pytest.raises(TemplateError, match=r"\{\{ contract \}\} is missing"):
        _render("{{ format_date(contract.ends_on) }}", contract=False)
    with pytest.raises(TemplateError, match="rating from 1 to 5"):
        _render("{{ rating_url(6) }}")
    assert _render("{{ contracts|length }} {{ rating_url(5) }}", contract=False) == (
        "0 https://mail.example.com/s/rating-5-5")  # fmt: skip
