"""The stock letters in German: whole, formatted the German way, picked by the contact's locale."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

import pytest
from babel.dates import format_date as babel_date
from sqlalchemy import select

from campaigns.audience import contacts
from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.delivery.tokens import Tokens
from campaigns.embedded.services import SMTPCatcher
from campaigns.letters import authoring, context, rendering, stock, translations
from campaigns.letters.context import today_in
from campaigns.models import Delivery, DeliveryState, LetterKind
from campaigns.service import settings as service_settings
from tests.letters.test_stock_letters import (
    ADA_ZONE,
    NOW,
    PUBLIC,
    SERVICE,
    TRACKED,
    _parts,
    _recipient,
    settings,
    spamassassin,
    sqlite_db,
)

__all__ = ["settings", "sqlite_db"]  # fixtures shared with the English letters' tests

# The start of each German subject, which tells the letters apart in the catcher.
SUBJECTS = {
    LetterKind.WELCOME: "Willkommen bei Premium Support",
    LetterKind.EXPIRY: "Ihr Vertrag „Premium Support“ endet am {ends}",
    LetterKind.RENEWAL: "Premium Support jetzt mit 10 % Rabatt verlängern",
    LetterKind.POLICY: "Unsere Supportbedingungen im Überblick",
    LetterKind.SURVEY: "Wie zufrieden sind Sie mit uns?",
    LetterKind.OTHER: "Ihre Servicepunkte sind aufgebraucht",  # Points running low (none)
}
# What each letter must say for Ada in German (30 days left; a customer since 2018).
SAYS = {
    LetterKind.WELCOME: ["Willkommen bei Premium Support", "1. Februar 2026", "{ends}",
                         "90,00 €", "care@acme.example", "Vertragsbeginn",
                         "vielen Dank, dass Sie sich für Acme Support GmbH entschieden haben"],
    LetterKind.EXPIRY: ["Ihr Vertrag endet in 30 Tagen", "{ends}", "480,00 €",
                        "Vertrag verlängern", "Sie haben noch reichlich Zeit"],
    LetterKind.RENEWAL: ["Jetzt mit 10 % Rabatt verlängern", "480,00 €", "Treuerabatt (10 %)",
                         "48,00 €", "432,00 €", "Ihre 12 Servicepunkte bleiben Ihnen"],
    LetterKind.POLICY: ["Der E-Mail-Support bleibt kostenlos", "pro Vorfall berechnet",
                        "90,00 €", "Ihre Servicepunkte", "Ich habe die Bedingungen gelesen"],
    LetterKind.SURVEY: ["Wie zufrieden sind Sie mit uns?", "1 bedeutet sehr unzufrieden"],
    LetterKind.OTHER: ["Ihre Servicepunkte sind aufgebraucht", "Ihre Servicepunkte",
                       "antworten Sie einfach auf diesen Brief", "90,00 €"],
}  # fmt: skip


ENGLISH_WORDS = re.compile(r"\b(Dear|Your|Renew|Kind regards|cover|Thank you)\b")


def _plain(text: str) -> str:
    """Non-breaking spaces (Babel's and ours, before % and €) read as spaces here."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


def _subject(letter: Message) -> str:
    return _plain(str(make_header(decode_header(letter["Subject"]))))


def _send(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, *, locale: str,
    kinds: tuple[LetterKind, ...] = tuple(SUBJECTS),
) -> dict[LetterKind, tuple[Message, int]]:  # fmt: skip
    """Each stock letter of `kinds` sent to Ada, whose locale is `locale`, by the send path."""
    today = today_in(ADA_ZONE)
    with db.unit_of_work() as s:
        versions = stock.load(s)
        ada = contacts.create_contact(
            s, "ada@example.com", first_name="Ada", last_name="Lovelace", locale=locale,
            time_zone=ADA_ZONE, customer_since=date(2018, 5, 1),
        )  # fmt: skip
        contract = contacts.add_contract(
            s, ada.id, product="Premium Support", plan="Jährlich", starts_on=date(2026, 2, 1),
            ends_on=today + timedelta(days=30), price=Decimal("480.00"), service_points=12,
            renewal_url="https://shop.example.com/renew/ada?plan=annual",
        )  # fmt: skip
        rows = {}
        for kind in kinds:
            row = Delivery(contact_id=ada.id, contract_id=contract.id, term=1,
                           email="ada@example.com", letter_version_id=versions[kind].id,
                           state=DeliveryState.QUEUED)  # fmt: skip
            s.add(row)
            s.flush()
            rows[kind] = row.id
    mailer = SMTPMailer(smtp_server.url)
    try:
        result = sending.deliver_batch(db, sorted(rows.values()), mailer=mailer,
                                       settings=settings)  # fmt: skip
    finally:
        mailer.close()
    with db.unit_of_work() as s:
        assert {d.id: d.reason for d in s.scalars(select(Delivery)) if d.reason} == {}
    assert result.sent == len(rows)
    letters = {}
    for received in smtp_server.wait_for(len(rows)):
        letter = message_from_bytes(received.data)
        kind = _kind_of(letter, rows)
        letters[kind] = (letter, rows[kind])
    return letters


def _kind_of(letter: Message, rows: dict[LetterKind, int]) -> LetterKind:
    subject = _subject(letter)
    german = [kind for kind, start in SUBJECTS.items() if start.split("{")[0] in subject]
    if german:
        return german[0]
    return next(iter(rows))  # one English letter (the tests of the fallback send one)


def _ledger_locales(db: Database) -> dict[int, str | None]:
    with db.unit_of_work() as s:
        return {d.id: d.locale for d in s.scalars(select(Delivery))}


def test_each_stock_letter_goes_out_in_german_whole_and_tracked(
    sqlite_db: Database,
    settings: Settings,
    smtp_server: SMTPCatcher,
) -> None:
    letters = _send(sqlite_db, settings, smtp_server, locale="de")
    tokens = Tokens.from_settings(settings)
    ends = babel_date(today_in(ADA_ZONE) + timedelta(days=30), "long", locale="de")
    assert re.fullmatch(r"\d{1,2}\. \w+ \d{4}", ends)  # "2. März 2027", the German long form

    assert set(letters) == set(SUBJECTS)
    for kind, (letter, row_id) in letters.items():
        assert _subject(letter).startswith(SUBJECTS[kind].format(ends=ends)), kind
        html, text = _parts(letter)
        for part in (_plain(html), _plain(text)):
            for phrase in ["Guten Tag Ada Lovelace,", "Acme Support GmbH", *SAYS[kind]]:
                assert phrase.format(ends=ends) in part, (kind, phrase)
            assert "{{" not in part and "{%" not in part and "None" not in part, kind
            assert "[" not in part, kind  # no sample placeholder
            assert "shop.example.com" not in part, kind  # never the raw renewal URL
            assert "€480.00" not in part and "€90.00" not in part, kind  # not the English way
        body = _plain(html).split("<body", 1)[1]
        assert not ENGLISH_WORDS.search(re.sub(r"<[^>]+>", " ", body))  # the footer too
        assert "Sie erhalten diesen Brief" in body and 'lang="de"' in html, kind
        hrefs = re.findall(r'href="([^"]*)"', html)
        assert hrefs and all(TRACKED.match(h.replace("&amp;", "&")) for h in hrefs), (kind, hrefs)
        renewals = {h for h in hrefs if h.startswith(f"{PUBLIC}/r/")}
        if kind in (LetterKind.EXPIRY, LetterKind.RENEWAL):
            (link,) = renewals
            delivery_id, _contract, percent = tokens.verify("renewal", link.rsplit("/", 1)[1],
                                                            arity=3)  # fmt: skip
            assert (delivery_id, percent) == (row_id, 10 if kind == LetterKind.RENEWAL else 0)
        else:
            assert renewals == set()
    survey_html = _parts(letters[LetterKind.SURVEY][0])[0]
    assert len(set(re.findall(rf'href="({PUBLIC}/s/[^"]+)"', survey_html))) == 5
    # The ledger says which locale went out.
    assert set(_ledger_locales(sqlite_db).values()) == {"de"}


def test_the_german_text_alternative_reads_like_a_letter(
    sqlite_db: Database,
    settings: Settings,
    smtp_server: SMTPCatcher,
) -> None:
    letters = _send(sqlite_db, settings, smtp_server, locale="de")

    for kind, (letter, _row) in letters.items():
        text = _parts(letter)[1]
        lines = _plain(text).splitlines()
        assert "<" not in text and "&nbsp;" not in text and "&amp;" not in text, kind
        assert "&minus;" not in text and "&" not in text, kind
        assert all(line == line.strip() for line in lines), kind
        assert not any("  " in line for line in lines), kind
        assert "\n\n\n" not in text, kind
        assert lines[0] == "Acme Support GmbH", kind
        # DIN 5008: a comma after the greeting, and the letter goes on in lower case (but
        # for the polite Ihr/Sie, which are always capitalised).
        greeting = lines.index("Guten Tag Ada Lovelace,")
        first_word = lines[greeting + 2].split()[0]
        assert lines[greeting + 1] == "", kind
        assert first_word[0].islower() or first_word in ("Ihr", "Ihre", "Sie"), kind
        assert "Mit freundlichen Grüßen" in lines or "Vielen Dank" in lines, kind
        for url in re.findall(r"\((https?://[^)]+)\)", text):
            assert TRACKED.match(url), (kind, url)
    expiry = _parts(letters[LetterKind.EXPIRY][0])[1]
    assert "Vertrag verlängern (https://mail.example.com/r/" in expiry


def test_the_german_letters_quote_the_service_settings_the_german_way(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    german = "Ein Telefon-Vorfall kostet einen Punkt oder die Gebühr unten."
    with sqlite_db.unit_of_work() as s:
        service_settings.update(
            s,
            **SERVICE,
            user_id=None,  # type: ignore[arg-type]
            policy_translations=[{"locale": "de", "text": german}],
        )
    letters = _send(sqlite_db, settings, smtp_server, locale="de",
                    kinds=(LetterKind.POLICY, LetterKind.OTHER))  # fmt: skip

    policy = _plain(_parts(letters[LetterKind.POLICY][0])[1])
    assert german in policy  # the admin's German text, not the English one
    assert "A phone incident costs one point" not in policy
    assert "Der E-Mail-Support bleibt kostenlos" not in policy  # nor the stock wording
    assert "Priorisierter Telefon-Support, pro Vorfall 75,00 €" in policy
    low = _plain(_parts(letters[LetterKind.OTHER][0])[1])
    for says in ("Laden Sie jetzt auf", "Buy 5, get 6", "6 Servicepunkte 250,00 €",
                 "1 Servicepunkt 49,50 €", "Um ein Paket zu kaufen", "75,00 €"):  # fmt: skip
        assert says in low, says


@pytest.mark.parametrize(("locale", "sent_in"), [("de_CH", "de"), ("de-AT", "de"), ("fr", "en")])
def test_the_contacts_locale_picks_german_else_the_english_default(
    sqlite_db: Database,
    settings: Settings,
    smtp_server: SMTPCatcher,
    locale: str,
    sent_in: str,
) -> None:
    letters = _send(sqlite_db, settings, smtp_server, locale=locale, kinds=(LetterKind.POLICY,))

    ((letter, row_id),) = letters.values()
    text = _plain(_parts(letter)[1])
    if sent_in == "de":
        assert _subject(letter) == SUBJECTS[LetterKind.POLICY]
        assert "Guten Tag Ada Lovelace," in text and "Der E-Mail-Support bleibt kostenlos" in text
    else:
        assert _subject(letter) == "Our support terms, re-stated"
        assert "Dear Ada," in text and "Guten Tag" not in text
    assert _ledger_locales(sqlite_db) == {row_id: sent_in}


def test_every_stock_letter_has_a_german_variant_in_its_first_version(
    sqlite_db: Database,
) -> None:
    with sqlite_db.unit_of_work() as s:
        versions = stock.load(s)
        for kind, version in versions.items():
            assert version.number == 1, kind
            assert [v.locale for v in version.variants] == ["de"], kind
            assert translations.content_for(version, "de_CH").locale == "de"
            assert translations.content_for(version, "fr").locale == "en"
        # The German letter's literal link is stored after the English one's, both tracked.
        welcome = versions[LetterKind.WELCOME]
        assert [link.url for link in welcome.links] == 2 * [
            "https://support.example.com/getting-started"
        ]
        assert "link_url(1)" in welcome.variants[0].compiled_html


def _render_de(kind: LetterKind, recipient: context.Recipient, settings: Settings) -> str:
    (letter,) = [s for s in stock.STOCK_LETTERS if s.kind == kind]
    german = letter.variant("de")
    html, _urls = authoring.compile_html(german.html, stock.layout_html(),
                                         preheader=german.preheader)  # fmt: skip
    merge_fields, _discount = context.build(
        recipient, company=settings.company, sender_name=settings.sender_name,
        public_url=settings.public_url, signer=Tokens.from_settings(settings), now=NOW,
    )  # fmt: skip
    subject = rendering.render_string(rendering.TEXT_ENV, german.subject, merge_fields,
                                      field="subject")  # fmt: skip
    rendered = rendering.render_version(
        subject=german.subject, html=html, text=authoring.html_to_text(html), context=merge_fields
    )
    return _plain(subject + "\n" + rendered.text)


def _german(recipient: context.Recipient) -> context.Recipient:
    recipient.contact["locale"] = "de"
    return recipient


@pytest.mark.parametrize(
    ("days", "headline", "subject"),
    [
        (60, "Ihr Vertrag endet in 60 Tagen",
         "Ihr Vertrag „Premium Support“ endet am 1. April 2027"),
        (30, "Ihr Vertrag endet in 30 Tagen",
         "Ihr Vertrag „Premium Support“ endet am 2. März 2027"),
        (7, "Ihr Vertrag endet in 7 Tagen", "Letzte Erinnerung: Ihr Vertrag „Premium Support“"),
        (1, "Ihr Vertrag endet morgen", "Letzte Erinnerung: Ihr Vertrag „Premium Support“"),
        (0, "Ihr Vertrag endet heute", "Letzte Erinnerung: Ihr Vertrag „Premium Support“"),
    ],
)  # fmt: skip
def test_the_german_expiry_reminder_speaks_of_the_days_left(
    settings: Settings,
    days: int,
    headline: str,
    subject: str,
) -> None:
    ends_on = NOW.date() + timedelta(days=days)
    recipient = _german(_recipient(ends_on, kind=LetterKind.EXPIRY))
    text = _render_de(LetterKind.EXPIRY, recipient, settings)

    assert text.startswith(subject)
    assert headline in text
    assert ("reichlich Zeit" in text) == (days > 14)
    assert ("letzte Erinnerung" in text) == (days <= 1)
    assert "Tarif" not in text  # a contract without a plan shows no empty row
    assert "Guten Tag Ada Lovelace," in text


def test_the_german_renewal_offer_shows_the_discount_only_to_loyal_or_big_customers(
    settings: Settings,
) -> None:
    ends_on = NOW.date() + timedelta(days=30)
    renewal = LetterKind.RENEWAL
    new = _render_de(
        renewal,
        _german(_recipient(ends_on, kind=renewal, customer_since=date(2025, 6, 1))),
        settings,
    )
    loyal = _render_de(
        renewal,
        _german(_recipient(ends_on, kind=renewal, customer_since=date(2020, 6, 1))),
        settings,
    )
    big = _render_de(renewal, _german(_recipient(ends_on, kind=renewal, spend="12000")), settings)

    assert "rabatt" not in new.lower()
    assert new.startswith("Premium Support: Verlängern Sie Ihren Vertrag")
    assert "480,00 €" in new
    for offer in (loyal, big):
        assert offer.startswith("Premium Support jetzt mit 10 % Rabatt verlängern")
        assert "Treuerabatt (10 %)" in offer and "− 48,00 €" in offer and "432,00 €" in offer


def test_no_german_stock_letter_looks_like_spam_to_spamassassin(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher, tmp_path: Path
) -> None:
    letters = _send(sqlite_db, settings, smtp_server, locale="de")
    verdicts = spamassassin(smtp_server.wait_for(len(letters)), tmp_path)
    assert len(verdicts) == len(letters)
    for score, scoring in verdicts:
        assert score < 1.0 and scoring == {}, f"{score} points: {scoring}"
