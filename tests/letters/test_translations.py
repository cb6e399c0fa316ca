"""A contact's locale picks a version's variant; the ledger says which version and locale went."""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.errors import ValidationError
from campaigns.letters import approvals, authoring, translations
from campaigns.models import Delivery, LetterCategory, LetterKind
from tests.factories import launch_now, make_contact, make_segment

ENGLISH = authoring.Content(
    subject="Hello {{ contact.first_name }}",
    preheader="A word about your cover",
    html='<p>Dear {{ contact.first_name }}, thank you.</p><p><a href="https://example.com/en">'
    'Read more</a> · <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
)
GERMAN = authoring.Content(
    subject="Hallo {{ contact.first_name }}",
    preheader="Ein Wort zu Ihrem Schutz",
    html='<p>Liebe(r) {{ contact.first_name }}, vielen Dank.</p><p><a href="https://example.com/de">'
    'Mehr lesen</a> · <a href="{{ unsubscribe_url }}">Abmelden</a></p>',
)


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _letter_with_german(db: Database) -> int:
    with db.unit_of_work() as s:
        letter = authoring.create_letter(
            s, "News", kind=LetterKind.OTHER, category=LetterCategory.MARKETING
        )
        translations.save_edit(s, letter.id, locale=None, content=ENGLISH)
        return translations.save_edit(s, letter.id, locale="de", content=GERMAN).id


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [("de_CH", "de"), ("de-ch", "de"), ("de", "de"), ("fr", None), ("", None), ("en_GB", None)],
)
def test_a_contact_locale_picks_the_exact_variant_then_its_language(
    wanted: str, chosen: str | None
) -> None:
    assert translations.pick(["de", "pt_BR"], wanted) == chosen
    assert translations.pick(["de_CH", "de"], "de_CH") == "de_CH"


def test_a_translation_is_a_new_version_that_keeps_the_other_locales(db: Database) -> None:
    version_id = _letter_with_german(db)
    with db.unit_of_work() as s:
        version = authoring.get_version(s, version_id)
        assert version.number == 2 and [v.locale for v in version.variants] == ["de"]
        assert version.subject == ENGLISH.subject
        # Links of every locale are stored; the German one follows the English ones.
        assert [link.url for link in version.links] == [
            "https://example.com/en", "https://example.com/de",
        ]  # fmt: skip
        assert "link_url(1)" in version.variants[0].compiled_html
        # The preheader is the hidden first line of the HTML, not part of the text.
        assert "Ein Wort zu Ihrem Schutz" in version.variants[0].compiled_html
        assert "Ein Wort" not in version.variants[0].compiled_text
        edited = translations.save_edit(
            s, version.letter_id, locale=None,
            content=authoring.Content(subject="Hi {{ contact.first_name }}", html=ENGLISH.html),
        )  # fmt: skip
        assert [v.subject for v in edited.variants] == [GERMAN.subject]


def test_a_variant_goes_through_the_same_validation_as_the_version(db: Database) -> None:
    _letter_with_german(db)
    with db.unit_of_work() as s:
        letter_id = authoring.list_letters(s)[0].id
        broken = authoring.Content(subject="Hallo", html="<p>{{ contact.nickname }}</p>")
        with pytest.raises(ValidationError, match="de variant: .*unknown merge field|nickname"):
            translations.save_edit(s, letter_id, locale="de", content=broken)
        no_unsubscribe = authoring.Content(subject="Hallo", html="<p>Hallo</p>")
        with pytest.raises(ValidationError, match="de variant: marketing letters must contain"):
            translations.save_edit(s, letter_id, locale="de", content=no_unsubscribe)
        needs_contract = authoring.Content(
            subject="Hallo",
            html='<p>{{ contract.product }}</p><a href="{{ unsubscribe_url }}">x</a>',
        )
        version = translations.save_edit(s, letter_id, locale="de", content=needs_contract)
        assert version.needs == "contract"  # a variant that uses the contract: so does the version


def test_the_ledger_records_version_and_locale_and_de_ch_gets_the_german_variant(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    version_id = _letter_with_german(db)
    with db.unit_of_work() as s:
        make_contact(s, "heidi@example.com", first_name="Heidi", locale="de_CH")
        make_contact(s, "amelie@example.com", first_name="Amélie", locale="fr")
        campaign = scheduling.create_campaign(
            s, "News", segment_id=make_segment(s).id, letter_version_id=version_id
        )
        scheduling.schedule(s, campaign.id, send_at=utcnow())
    (batch,) = launch_now(db)
    mailer = SMTPMailer(smtp_server.url)
    assert sending.deliver_batch(db, batch, mailer=mailer, settings=settings).sent == 2
    mailer.close()

    letters = {m.recipients[0]: _parse(m.data) for m in smtp_server.messages}
    subjects = {address: letter["Subject"] for address, letter in letters.items()}
    assert subjects == {"heidi@example.com": "Hallo Heidi", "amelie@example.com": "Hello Amélie"}
    html = letters["heidi@example.com"].get_body(("html",))
    assert html is not None and "Ein Wort zu Ihrem Schutz" in html.get_content()
    assert "example.com/de" not in html.get_content()  # the link is tracked, never the raw URL
    with db.unit_of_work() as s:
        rows = {d.email: (d.letter_version_id, d.locale) for d in s.scalars(select(Delivery))}
    assert rows == {
        "heidi@example.com": (version_id, "de"),
        "amelie@example.com": (version_id, "en"),
    }


def test_the_editor_is_told_which_languages_of_the_contacts_have_no_variant(db: Database) -> None:
    version_id = _letter_with_german(db)
    with db.unit_of_work() as s:
        for i, locale in enumerate(["de_CH", "fr", "fr_BE", "en_GB", "en", "pt_BR"]):
            make_contact(s, f"c{i}@example.com", first_name="C", locale=locale)
        version = authoring.get_version(s, version_id)
        missing = translations.missing_locales(
            version.letter, version, translations.contact_locales(s)
        )
    assert [(m.language, m.contacts, m.locales) for m in missing] == [
        ("fr", 2, ("fr", "fr_BE")), ("pt", 1, ("pt_BR",)),
    ]  # fmt: skip


def test_a_legal_translation_needs_its_own_approval(db: Database) -> None:
    with db.unit_of_work() as s:
        letter = authoring.create_letter(
            s, "Terms", kind=LetterKind.POLICY, category=LetterCategory.LEGAL
        )
        ack = '<p><a href="{{ acknowledge_url }}">OK</a></p>'
        terms = authoring.Content(subject="Terms", html="<p>Terms</p>" + ack)
        translations.save_edit(s, letter.id, locale=None, content=terms)
        german = translations.save_edit(
            s,
            letter.id,
            locale="de",
            content=authoring.Content(subject="AGB", html="<p>AGB</p>" + ack),
        )
        assert approvals.status(german).state == "awaiting approval"
