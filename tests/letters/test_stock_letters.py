"""The stock letters go out whole: every field filled, every link tracked, text that reads."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date as babel_date
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.audience import contacts
from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.delivery.tokens import Tokens
from campaigns.embedded.services import Received, SMTPCatcher
from campaigns.letters import authoring, context, rendering, stock
from campaigns.letters.context import today_in
from campaigns.models import Delivery, DeliveryState, LetterKind, PointsKind
from campaigns.service import points
from campaigns.service import settings as service_settings

PUBLIC = "https://mail.example.com"
TRACKED = re.compile(rf"^{re.escape(PUBLIC)}/(c|r|u|p|a|v|s)/[A-Za-z0-9_.-]+$")
SETTINGS_ENV = {
    "SECRET_KEY": "stock-letters-secret-0123456789", "PUBLIC_URL": PUBLIC,
    "SENDER": "Acme Care <care@acme.example>", "COMPANY_NAME": "Acme Support GmbH",
    "COMPANY_ADDRESS": "Hauptstraße 1\\n10115 Berlin", "INCIDENT_PRICE": "90",
}  # fmt: skip
SUBJECTS = {
    LetterKind.WELCOME: "Welcome to Premium Support",
    LetterKind.EXPIRY: "Your Premium Support cover ends on {ends}",
    LetterKind.RENEWAL: "Renew Premium Support with 10% off",
    LetterKind.POLICY: "Our support terms, re-stated",
    LetterKind.SURVEY: "How did we do?",
    LetterKind.OTHER: "You have 12 service points left",  # Points running low
}
# What each letter must say for Ada (the contract ends in 30 days; she is a customer of old).
SAYS = {
    LetterKind.WELCOME: ["Welcome to Premium Support", "February 1, 2026", "{ends}",
                         "€90.00", "care@acme.example"],
    LetterKind.EXPIRY: ["Your cover ends in 30 days", "{ends}", "€480.00",
                        "Renew my cover"],
    LetterKind.RENEWAL: ["Renew with 10% off", "€480.00", "Loyalty discount (10%)", "€48.00",
                         "€432.00", "You keep your 12 service points"],
    LetterKind.POLICY: ["Email support stays free", "charged per incident", "€90.00",
                        "Your service points", "I have read the terms"],
    LetterKind.SURVEY: ["How did we do?", "1 means very unhappy"],
    # No packages in the service settings: an offer on request.
    LetterKind.OTHER: ["You have 12 service points left", "Your service points",
                       "simply reply to this letter", "care@acme.example", "€90.00"],
}  # fmt: skip
NOW = datetime(2027, 1, 31, 10, 0, tzinfo=ZoneInfo("UTC"))


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "campaigns.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(SETTINGS_ENV)


# Ada lives in Berlin: her letters count days from her date, a day ahead of UTC late at night.
ADA_ZONE = "Europe/Berlin"


def _ada(s: Session, *, ends_on: date) -> tuple[int, int]:
    ada = contacts.create_contact(
        s, "ada@example.com", first_name="Ada", last_name="Lovelace", time_zone=ADA_ZONE,
        customer_since=date(2018, 5, 1),
    )  # fmt: skip
    contract = contacts.add_contract(
        s, ada.id, product="Premium Support", plan="Annual", starts_on=date(2026, 2, 1),
        ends_on=ends_on, price=Decimal("480.00"), service_points=12,
        renewal_url="https://shop.example.com/renew/ada?plan=annual",
    )  # fmt: skip
    # Her balance is her points ledger's: 15 given, 3 used.
    points.record(s, ada.id, PointsKind.GRANT, 15, source="admin", reason="loyalty")
    points.record(s, ada.id, PointsKind.USE, 3, source="api")
    return ada.id, contract.id


def _send_stock_letters(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, *, with_contract: bool = True
) -> dict[LetterKind, tuple[Message, int]]:
    """Every stock letter sent to Ada through the real send path; by kind (letter, row id)."""
    today = today_in(ADA_ZONE)
    with db.unit_of_work() as s:
        versions = stock.load(s)
        contact_id, contract_id = _ada(s, ends_on=today + timedelta(days=30))
        rows = {}
        for kind, version in versions.items():
            if not with_contract and version.needs == "contract":
                continue
            row = Delivery(
                contact_id=contact_id, contract_id=contract_id if with_contract else None,
                term=1, email="ada@example.com", letter_version_id=version.id,
                state=DeliveryState.QUEUED,
            )  # fmt: skip
            s.add(row)
            s.flush()
            rows[row.id] = kind
    mailer = SMTPMailer(smtp_server.url)
    try:
        result = sending.deliver_batch(db, sorted(rows), mailer=mailer, settings=settings)
    finally:
        mailer.close()
    with db.unit_of_work() as s:
        reasons = {d.id: d.reason for d in s.scalars(select(Delivery)) if d.reason}
    assert reasons == {}
    assert result.sent == len(rows)
    letters = {}
    for received in smtp_server.wait_for(len(rows)):
        letter = message_from_bytes(received.data)
        ((row_id, kind),) = [(i, k) for i, k in rows.items() if k in _kind_by_subject(letter)]
        letters[kind] = (letter, row_id)
    return letters


def _kind_by_subject(letter: Message) -> set[LetterKind]:
    from email.header import decode_header, make_header

    subject = str(make_header(decode_header(letter["Subject"])))
    found = {kind for kind, expected in SUBJECTS.items() if expected.split(" on ")[0] in subject}
    return found


def _parts(letter: Message) -> tuple[str, str]:
    html = text = ""
    for part in letter.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            if part.get_content_type() == "text/html":
                html = payload.decode()
            elif part.get_content_type() == "text/plain":
                text = payload.decode()
    return html, text


def test_each_stock_letter_goes_out_with_every_field_filled_and_every_link_tracked(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    letters = _send_stock_letters(sqlite_db, settings, smtp_server)
    tokens = Tokens.from_settings(settings)
    ends = babel_date(today_in(ADA_ZONE) + timedelta(days=30), "long", locale="en")

    assert set(letters) == set(SUBJECTS)
    for kind, (letter, row_id) in letters.items():
        html, text = _parts(letter)
        for part in (html, text):
            for phrase in ["Ada", "Acme Support GmbH", *SAYS[kind]]:
                assert phrase.format(ends=ends) in part, (kind, phrase)
            assert "{{" not in part and "{%" not in part and "None" not in part, kind
            assert "[" not in part, kind  # no sample placeholder
            assert "shop.example.com" not in part, kind  # never the raw renewal URL
        # The first text of the body is the preheader (the inbox's preview line).
        body_text = re.sub(r"<[^>]+>", " ", html.split("<body", 1)[1].split(">", 1)[1])
        assert body_text.split()[:2] != ["Acme", "Support"], kind
        assert 'name="viewport"' in html and "prefers-color-scheme: dark" in html
        hrefs = re.findall(r'href="([^"]*)"', html)
        assert hrefs and all(TRACKED.match(h.replace("&amp;", "&")) for h in hrefs), (kind, hrefs)
        renewals = [h for h in hrefs if h.startswith(f"{PUBLIC}/r/")]
        if kind in (LetterKind.EXPIRY, LetterKind.RENEWAL):
            (link,) = set(renewals)
            delivery_id, _contract_id, percent = tokens.verify("renewal", link.rsplit("/", 1)[1],
                                                               arity=3)  # fmt: skip
            assert delivery_id == row_id
            assert percent == (10 if kind == LetterKind.RENEWAL else 0)
        else:
            assert renewals == []
    survey_html = _parts(letters[LetterKind.SURVEY][0])[0]
    assert len(set(re.findall(rf'href="({PUBLIC}/s/[^"]+)"', survey_html))) == 5


def test_the_text_alternative_reads_like_a_letter(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    letters = _send_stock_letters(sqlite_db, settings, smtp_server)

    for kind, (letter, _row) in letters.items():
        text = _parts(letter)[1]
        lines = text.splitlines()
        assert "<" not in text and "&nbsp;" not in text and "&amp;" not in text, kind
        assert all(line == line.strip() for line in lines), kind
        assert not any("  " in line for line in lines), kind
        assert "\n\n\n" not in text, kind
        assert lines[0] == "Acme Support GmbH", kind
        assert "Dear Ada," in lines, kind
        assert "Kind regards," in lines or "Thank you," in lines, kind
        # Links are written out after their words, each one tracked.
        for url in re.findall(r"\((https?://[^)]+)\)", text):
            assert TRACKED.match(url), (kind, url)
    expiry = _parts(letters[LetterKind.EXPIRY][0])[1]
    assert "Renew my cover (https://mail.example.com/r/" in expiry


def test_letters_about_the_contact_alone_go_to_a_segment_of_contacts(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    letters = _send_stock_letters(sqlite_db, settings, smtp_server, with_contract=False)

    assert set(letters) == {LetterKind.POLICY, LetterKind.SURVEY, LetterKind.OTHER}
    policy = _parts(letters[LetterKind.POLICY][0])[1]
    assert "Your service points 12" in policy  # the balance of Ada's points ledger


# What an admin saved under Settings → Service (the fee replaces INCIDENT_PRICE, 90).
SERVICE = {
    "incident_fee": "75", "currency": "EUR",
    "policy_text": "Questions by email are answered free of charge, always.\n\n"
                   "A phone incident costs one point, or the fee below.",
    "packages": [{"name": "Buy 5, get 6", "points": "6", "price": "250"},
                 {"name": "Single call", "points": "1", "price": "49.50"}],
}  # fmt: skip


def test_the_policy_letter_quotes_the_settings_and_the_points_letter_offers_their_packages(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    with sqlite_db.unit_of_work() as s:
        service_settings.update(s, **SERVICE, user_id=None)  # type: ignore[arg-type]
    letters = _send_stock_letters(sqlite_db, settings, smtp_server)

    policy_html, policy = _parts(letters[LetterKind.POLICY][0])
    policy = policy.replace("\r\n", "\n")
    assert ("Questions by email are answered free of charge, always.\n\n"
            "A phone incident costs one point, or the fee below.") in policy  # fmt: skip
    paragraph = r"<p[^>]*>A phone incident costs one point, or the fee below\.</p>"
    assert re.search(paragraph, policy_html)
    assert "Email support stays free" not in policy  # the stock wording gives way
    assert "Priority phone support, per incident €75.00" in policy and "€90.00" not in policy
    assert "Your service points 12" in policy and "You have service points left" in policy
    low_html, low = _parts(letters[LetterKind.OTHER][0])
    for says in ("You have 12 service points left", "Top up before they run out",
                 "Buy 5, get 6", "6 service points €250.00", "Single call",
                 "1 service point €49.50", "To buy a package, simply reply", "€75.00"):  # fmt: skip
        assert says in low, says
    assert "we will tell you what we can offer" not in low
    assert "Top up now and keep priority phone support at hand." in low_html  # the preheader


def _recipient(ends_on: date, *, kind: LetterKind, customer_since: date | None = None,
               spend: str = "0") -> context.Recipient:  # fmt: skip
    return context.Recipient(
        delivery_id=7, kind=kind,
        contact={"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
                 "name": "Ada Lovelace", "locale": "en", "time_zone": "Europe/Berlin",
                 "customer_since": customer_since, "lifetime_spend": Decimal(spend),
                 "service_points": 3, "attributes": {}},
        contract={"id": 3, "product": "Premium Support", "plan": "", "starts_on": date(2026, 2, 1),
                  "ends_on": ends_on, "price": Decimal("480.00"), "currency": "EUR",
                  "service_points": 0, "attributes": {}},
        renewal_target="https://shop.example.com/renew/3", links={0: 1},
    )  # fmt: skip


def _render_stock(kind: LetterKind, recipient: context.Recipient, settings: Settings) -> str:
    (letter,) = [s for s in stock.STOCK_LETTERS if s.kind == kind]
    html, _urls = authoring.compile_html(letter.html(), stock.layout_html(),
                                         preheader=letter.preheader)  # fmt: skip
    merge_fields, _discount = context.build(
        recipient, company=settings.company, sender_name=settings.sender_name,
        public_url=settings.public_url, signer=Tokens.from_settings(settings), now=NOW,
    )  # fmt: skip
    subject = rendering.render_string(rendering.TEXT_ENV, letter.subject, merge_fields,
                                      field="subject")  # fmt: skip
    rendered = rendering.render_version(
        subject=letter.subject, html=html, text=authoring.html_to_text(html), context=merge_fields
    )
    return subject + "\n" + rendered.text


@pytest.mark.parametrize(
    ("days", "headline", "subject"),
    [
        (60, "Your cover ends in 60 days", "Your Premium Support cover ends on April 1, 2027"),
        (30, "Your cover ends in 30 days", "Your Premium Support cover ends on March 2, 2027"),
        (7, "Your cover ends in 7 days", "Last reminder: your Premium Support cover ends on"),
        (1, "Your cover ends tomorrow", "Last reminder: your Premium Support cover ends on"),
        (0, "Your cover ends today", "Last reminder: your Premium Support cover ends on"),
    ],
)
def test_the_expiry_reminder_speaks_of_the_days_left(
    settings: Settings, days: int, headline: str, subject: str
) -> None:
    ends_on = NOW.date() + timedelta(days=days)
    text = _render_stock(LetterKind.EXPIRY, _recipient(ends_on, kind=LetterKind.EXPIRY), settings)

    assert text.startswith(subject)
    assert headline in text
    assert ("plenty of time" in text) == (days > 14)
    assert ("last reminder" in text) == (days <= 1)
    assert "Plan" not in text  # a contract without a plan shows no empty row


@pytest.mark.parametrize("kind", [s.kind for s in stock.STOCK_LETTERS])
def test_the_signature_names_the_company_once_when_it_is_the_sender(kind: LetterKind) -> None:
    ends_on = NOW.date() + timedelta(days=30)
    own = Settings.from_env({**SETTINGS_ENV, "SENDER": "Acme Support GmbH <care@acme.example>"})
    assert own.sender_name == own.company.name == "Acme Support GmbH"
    text = _render_stock(kind, _recipient(ends_on, kind=kind), own)
    assert "\nAcme Support GmbH\nAcme Support GmbH\n" not in text
    other = Settings.from_env(SETTINGS_ENV)
    assert other.sender_name != other.company.name
    signed = _render_stock(kind, _recipient(ends_on, kind=kind), other)
    assert f"\n{other.sender_name}\n{other.company.name}\n" in signed


def test_the_renewal_offer_shows_a_discount_only_to_long_standing_or_high_spend_customers(
    settings: Settings,
) -> None:
    ends_on = NOW.date() + timedelta(days=30)
    renewal = LetterKind.RENEWAL
    new = _render_stock(
        renewal, _recipient(ends_on, kind=renewal, customer_since=date(2025, 6, 1)), settings
    )
    loyal = _render_stock(
        renewal, _recipient(ends_on, kind=renewal, customer_since=date(2020, 6, 1)), settings
    )
    big = _render_stock(renewal, _recipient(ends_on, kind=renewal, spend="12000"), settings)

    assert "discount" not in new.lower() and "off" not in new.split("\n")[0]
    assert new.startswith("Keep your Premium Support cover going")
    for offer in (loyal, big):
        assert offer.startswith("Renew Premium Support with 10% off")
        assert "Loyalty discount (10%)" in offer and "€432.00" in offer


def test_a_merge_field_inside_an_href_survives_inlining() -> None:
    body = (
        "<style>a { color: #0f4c81; } .button { font-weight: bold; }</style>"
        '<p><a class="button" href="{{ renewal_url }}">Renew</a></p>'
        '<p><a href="https://shop.example.com/help?who={{ contact.email|urlencode }}">Help</a></p>'
    )
    compiled, urls = authoring.compile_html(body, None)

    assert 'href="{{ renewal_url }}"' in compiled
    assert 'href="https://shop.example.com/help?who={{ contact.email|urlencode }}"' in compiled
    assert "font-weight:bold" in compiled.replace(" ", "")  # the CSS was inlined around them
    assert urls == []  # built from merge fields: not a literal link to store
    rendered = rendering.render_string(rendering.HTML_ENV, compiled,
                                       context.sample_context(), field="html")  # fmt: skip
    assert 'href="https://example.com/r/preview-renewal-0-0-10"' in rendered
    assert "who=jane.doe%40example.com" in rendered


def test_premailer_never_runs_per_recipient(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    calls: list[int] = []
    original = authoring.Premailer.transform

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(authoring.Premailer, "transform", counted)
    with sqlite_db.unit_of_work() as s:
        versions = stock.load(s)
    saved = len(calls)
    # Once per locale of each version (English and its variants), when it is saved.
    assert saved == len(versions) * (1 + len(stock.LOCALES))
    with sqlite_db.unit_of_work() as s:
        rows = []
        for n in range(20):
            ada = contacts.create_contact(s, f"c{n}@example.com", first_name=f"C{n}")
            contract = contacts.add_contract(
                s, ada.id, product="Premium Support", starts_on=date(2026, 2, 1),
                ends_on=date(2027, 2, 1), renewal_url="https://shop.example.com/r",
            )  # fmt: skip
            row = Delivery(contact_id=ada.id, contract_id=contract.id, term=1,
                           email=ada.email, letter_version_id=versions[LetterKind.RENEWAL].id,
                           state=DeliveryState.QUEUED)  # fmt: skip
            s.add(row)
            s.flush()
            rows.append(row.id)
    mailer = SMTPMailer(smtp_server.url)
    try:
        result = sending.deliver_batch(sqlite_db, rows, mailer=mailer, settings=settings)
    finally:
        mailer.close()

    assert result.sent == 20
    assert len(calls) == saved


SPAMASSASSIN = "/usr/bin/spamassassin"
_SCORE = re.compile(r"^\s+\(([-\d.]+) points")
_RULE = re.compile(r"^\s*(-?[\d.]+)\s+([A-Z0-9_]+)\s", re.M)


def test_no_stock_letter_looks_like_spam_to_spamassassin(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher, tmp_path: Path
) -> None:
    """Every stock letter, as the SMTP server received it, through SpamAssassin's local rules:
    each scores under 1 of the 5 points that make spam, and none hits a rule that scores."""
    letters = _send_stock_letters(sqlite_db, settings, smtp_server)
    verdicts = spamassassin(smtp_server.wait_for(len(letters)), tmp_path)
    assert len(verdicts) == len(letters)
    for score, scoring in verdicts:
        assert score < 1.0 and scoring == {}, f"{score} points: {scoring}"


def spamassassin(letters: list[Received], folder: Path) -> list[tuple[float, dict[str, float]]]:
    """Each letter's SpamAssassin score and the rules that scored (local rules only, no DNS)."""
    assert Path(SPAMASSASSIN).exists(), "apt-get install spamassassin"
    mbox = folder / "letters.mbox"
    with mbox.open("wb") as out:
        for received in letters:  # the bytes as they arrived
            out.write(b"From care@acme.example Sun Jan 31 10:00:00 2027\n")
            out.write(received.data.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From "))
            out.write(b"\n")
    command = [SPAMASSASSIN, "-L", "-t", "--mbox", str(mbox)]
    checked = subprocess.run(command, capture_output=True, check=True, timeout=300).stdout.decode()
    verdicts = []
    for report in checked.split("Content analysis details:")[1:]:
        found = _SCORE.match(report)
        assert found is not None, report[:500]
        table = report.split("---- ----------------------", 1)[1].split("\n\n", 1)[0]
        scoring = {rule: float(points) for points, rule in _RULE.findall(table)
                   if float(points) > 0}  # fmt: skip
        verdicts.append((float(found.group(1)), scoring))
    return verdicts
