"""The service settings: defaults before anyone saves them, every bad field named at once,
who changed them and when, in the audit trail too; and the letters quote what is saved."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from campaigns.accounts import users
from campaigns.config import Company
from campaigns.db import Database, utcnow
from campaigns.letters import context
from campaigns.models import AuditEntry, LetterKind, Role, ServiceSettings
from campaigns.service import settings

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=utcnow().tzinfo)
GOOD = {
    "incident_fee": "90", "currency": "eur",
    "packages": [{"name": "Buy 5, get 6", "points": "6", "price": "250"},
                 {"name": "", "points": "", "price": " "},  # a blank row: left out
                 {"name": " Single ", "points": "1", "price": "49.50"}],
    "policy_text": "Email support stays free.\r\n\r\nPhone support is charged   \r\n"
                   "per incident.\r\n",
}  # fmt: skip


def _admin(db: Database) -> int:
    with db.unit_of_work() as s:
        return users.create_user(s, "boss@example.com", "correct horse battery",
                                 role=Role.ADMIN).id  # fmt: skip


def _refused(db: Database, **changes: object) -> dict[str, str]:
    with db.unit_of_work() as s, pytest.raises(settings.SettingsRefused) as refused:
        settings.update(s, **{**GOOD, **changes, "user_id": None})  # type: ignore[arg-type]
    return refused.value.errors


def test_before_anyone_saves_them_the_settings_are_the_defaults(db: Database) -> None:
    with db.unit_of_work() as s:
        terms = settings.read(s, default_currency="CHF")

    assert terms == settings.Terms(incident_fee=None, currency="CHF")


def test_saved_settings_are_cleaned_and_say_who_changed_them_and_when(db: Database) -> None:
    boss = _admin(db)
    with db.unit_of_work() as s:
        settings.update(s, **GOOD, user_id=boss, now=NOW)  # type: ignore[arg-type]
    with db.unit_of_work() as s:
        terms = settings.read(s)
        row = s.get_one(ServiceSettings, 1)
        (audit,) = s.scalars(select(AuditEntry))
        stored = (row.incident_fee, row.currency, row.packages, row.policy_text)

    assert terms.incident_fee == Decimal("90.00") and terms.currency == "EUR"
    assert terms.packages == [settings.Package("Buy 5, get 6", 6, Decimal("250.00")),
                              settings.Package("Single", 1, Decimal("49.50"))]  # fmt: skip
    assert terms.policy_text == (
        "Email support stays free.\n\nPhone support is charged\nper incident.")  # fmt: skip
    assert (terms.updated_at, terms.updated_by) == (NOW, "boss@example.com")
    assert stored[2] == [{"name": "Buy 5, get 6", "points": 6, "price": "250.00"},
                         {"name": "Single", "points": 1, "price": "49.50"}]  # fmt: skip
    assert (audit.action, audit.user_id, audit.target_type, audit.target_id) == (
        "service_settings.update", boss, "service_settings", 1)  # fmt: skip
    assert audit.detail["changed"] == "incident_fee, currency, packages, policy_text"
    assert audit.detail["packages"] == "2"


def test_saving_again_changes_the_one_row_and_audits_what_changed(db: Database) -> None:
    with db.unit_of_work() as s:
        settings.update(s, **GOOD, user_id=None)  # type: ignore[arg-type]
    with db.unit_of_work() as s:
        settings.update(s, **{**GOOD, "incident_fee": "", "packages": []}, user_id=None)  # type: ignore[arg-type]
    with db.unit_of_work() as s:
        rows = s.scalars(select(ServiceSettings)).all()
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        changed = [entry.detail["changed"] for entry in entries]
        terms = settings.read(s)

    assert len(rows) == 1
    assert terms.incident_fee is None and terms.packages == []
    assert changed[1] == "incident_fee, packages"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"incident_fee": "-1"}, "incident_fee", "must be 0 or more"),
        ({"incident_fee": "89.505"}, "incident_fee", "at most 2 decimals"),
        ({"incident_fee": "1,250.00"}, "incident_fee", "a point for decimals"),
        ({"incident_fee": "ninety"}, "incident_fee", "is not an amount"),
        ({"incident_fee": "NaN"}, "incident_fee", "must be 0 or more"),
        ({"incident_fee": "1e9"}, "incident_fee", "must be under"),
        ({"currency": "EURO"}, "currency", "three letters such as EUR"),
        ({"currency": "XYZ"}, "currency", "is not a currency code"),
        ({"policy_text": "x" * 20_001}, "policy_text", "shorten it to 20,000"),
        ({"packages": [{"name": "", "points": "3", "price": "9"}]}, "packages.0.name",
         "is missing"),
        ({"packages": [{"name": "n" * 81, "points": "3", "price": "9"}]}, "packages.0.name",
         "at most 80 characters"),
        ({"packages": [{"name": "A", "points": "0", "price": "9"}]}, "packages.0.points",
         "from 1 to 1,000"),
        ({"packages": [{"name": "A", "points": "1001", "price": "9"}]}, "packages.0.points",
         "from 1 to 1,000"),
        ({"packages": [{"name": "A", "points": "2.5", "price": "9"}]}, "packages.0.points",
         "whole number"),
        ({"packages": [{"name": "A", "points": "3", "price": ""}]}, "packages.0.price",
         "is missing"),
        ({"packages": [{"name": "A", "points": "3", "price": "-5"}]}, "packages.0.price",
         "must be 0 or more"),
        ({"packages": [{"name": "Gold", "points": "3", "price": "9"},
                       {"name": "", "points": "", "price": ""},
                       {"name": "gold ", "points": "5", "price": "12"}]}, "packages.2.name",
         "offered twice"),
        ({"packages": [{"name": f"P{n}", "points": "1", "price": "1"} for n in range(11)]},
         "packages", "at most 10 (remove 1)"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_with_its_field_named_and_nothing_saved(
    db: Database, changes: dict[str, object], field: str, says: str
) -> None:
    errors = _refused(db, **changes)

    assert list(errors) == [field]
    assert says in errors[field]
    with db.unit_of_work() as s:
        assert s.get(ServiceSettings, 1) is None
        assert s.scalars(select(AuditEntry)).all() == []


def test_every_bad_field_is_named_at_once(db: Database) -> None:
    errors = _refused(db, incident_fee="x", currency="", policy_text="ok",
                      packages=[{"name": "A", "points": "x", "price": "y"}])  # fmt: skip

    assert set(errors) == {"incident_fee", "currency", "packages.0.points", "packages.0.price"}


def test_zero_and_ten_packages_and_a_free_one_are_fine(db: Database) -> None:
    ten = [{"name": f"P{n}", "points": str(n + 1), "price": "0"} for n in range(10)]
    with db.unit_of_work() as s:
        most = settings.update(s, **{**GOOD, "packages": ten}, user_id=None)  # type: ignore[arg-type]
        none = settings.update(s, **{**GOOD, "packages": []}, user_id=None)  # type: ignore[arg-type]

    assert most.packages[9] == settings.Package("P9", 10, Decimal("0.00"))
    assert none.packages == []


def test_the_letters_merge_field_quotes_the_saved_policy_by_paragraph(db: Database) -> None:
    with db.unit_of_work() as s:
        settings.update(s, **GOOD, user_id=None)  # type: ignore[arg-type]
    with db.unit_of_work() as s:
        service = context.service_fields(context.service_terms(s.get(ServiceSettings, 1)))

    assert service["policy_paragraphs"] == ["Email support stays free.",
                                            "Phone support is charged\nper incident."]  # fmt: skip
    offered = [(p["name"], p["points"], p["price"], p["currency"]) for p in service["packages"]]
    assert offered == [("Buy 5, get 6", 6, Decimal("250.00"), "EUR"),
                       ("Single", 1, Decimal("49.50"), "EUR")]  # fmt: skip


def test_the_settings_fee_is_printed_in_the_settings_currency() -> None:
    """A fee saved as CHF 75 reads "CHF75.00" (Babel, English) in a letter of a company that
    counts in EUR."""
    recipient = context.Recipient(
        delivery_id=1, kind=LetterKind.POLICY, links={}, renewal_target="",
        contact={"email": "ada@example.com", "locale": "en", "time_zone": "UTC"}, contract=None,
        service={"incident_fee": "75.00", "currency": "CHF"},
    )  # fmt: skip
    fields, _ = context.build(recipient, company=Company(currency="EUR"), sender_name="Care",
                              public_url="https://example.com",
                              signer=context._PreviewSigner())  # fmt: skip
    company = fields["company"]
    assert fields["format_money"](company["incident_price"],
                                  company["incident_currency"]) == "CHF75.00"  # fmt: skip
    plain, _ = context.build(dataclasses.replace(recipient, service={}), company=Company(
        currency="EUR", incident_price=Decimal("90")), sender_name="Care",
        public_url="https://example.com", signer=context._PreviewSigner())  # fmt: skip
    assert plain["format_money"](plain["company"]["incident_price"],
                                 plain["company"]["incident_currency"]) == "€90.00"  # fmt: skip


def test_a_contact_gets_the_policy_text_of_their_locale_then_language_then_the_default(
    db: Database,
) -> None:
    with db.unit_of_work() as s:
        settings.update(s, **GOOD, user_id=None, policy_translations=[  # type: ignore[arg-type]
            {"locale": "de", "text": "E-Mail-Support bleibt kostenlos.\r\n\r\nTelefon kostet."},
            {"locale": "de-ch", "text": "Der E-Mail-Support bleibt gratis."},
            {"locale": "", "text": " "},  # a blank row: left out
        ])  # fmt: skip
    with db.unit_of_work() as s:
        assert settings.read(s).policy_translations == {
            "de": "E-Mail-Support bleibt kostenlos.\n\nTelefon kostet.",
            "de_CH": "Der E-Mail-Support bleibt gratis."}  # fmt: skip
        terms = context.service_terms(s.get(ServiceSettings, 1))
    said = {locale: context.service_fields(terms, locale)["policy_paragraphs"][0]
            for locale in ("de", "de_AT", "de_CH", "fr", "en", None)}  # fmt: skip
    assert said == {"de": "E-Mail-Support bleibt kostenlos.",
                    "de_AT": "E-Mail-Support bleibt kostenlos.",
                    "de_CH": "Der E-Mail-Support bleibt gratis.",
                    "fr": "Email support stays free.", "en": "Email support stays free.",
                    None: "Email support stays free."}  # fmt: skip


def test_a_bad_translation_row_is_refused_with_its_field_named(db: Database) -> None:
    errors = _refused(db, policy_translations=[
        {"locale": "klingon!", "text": "Qapla'"}, {"locale": "de", "text": ""},
        {"locale": "fr", "text": "Gratuit."}, {"locale": "FR", "text": "Encore."},
        {"locale": "", "text": "Sans langue."},
    ])  # fmt: skip
    assert errors == {
        "policy_translations.0.locale": "is not a language code such as de, fr or de_CH",
        "policy_translations.1.text": "is empty: write the translation, or clear the language",
        "policy_translations.3.locale": "is given twice: one text per language",
        "policy_translations.4.locale": "is missing: give the language, such as de or fr_CH",
    }
    with db.unit_of_work() as s:
        assert s.get(ServiceSettings, 1) is None
