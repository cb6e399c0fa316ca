"""The ledger row keeps what its letter was rendered from and computed: it shows again as sent."""

from __future__ import annotations

from email.header import decode_header, make_header

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import copies
from campaigns.delivery.tokens import Tokens
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Contact, Delivery, LetterKind
from tests.letters.test_stock_letters import _parts, _send_stock_letters, settings, sqlite_db

__all__ = ["settings", "sqlite_db"]  # fixtures shared with the stock letters' tests


def test_the_ledger_row_keeps_the_discount_the_renewal_offer_gave(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    letters = _send_stock_letters(sqlite_db, settings, smtp_server)
    with sqlite_db.unit_of_work() as s:
        renewal = s.get_one(Delivery, letters[LetterKind.RENEWAL][1])
        expiry = s.get_one(Delivery, letters[LetterKind.EXPIRY][1])
        assert renewal.detail["discount"]["percent"] == 10
        assert (renewal.detail["discount"]["amount"], renewal.detail["discount"]["price"]) == (
            "48.00", "432.00")  # fmt: skip
        assert "discount" not in expiry.detail  # a reminder offers no discount


def test_a_sent_letter_renders_again_exactly_as_sent_after_the_contact_changed(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    letters = _send_stock_letters(sqlite_db, settings, smtp_server)
    letter, row_id = letters[LetterKind.RENEWAL]
    sent_html = _parts(letter)[0].replace("\r\n", "\n")  # as SMTP carried it
    with sqlite_db.unit_of_work() as s:
        contact = s.get_one(Contact, s.get_one(Delivery, row_id).contact_id)
        contact.first_name, contact.locale = "Augusta", "de"  # changed since the letter went
        contact.customer_since = None  # the discount would no longer apply today
        sent = copies.read(s, row_id)
    copy = copies.render(sent, settings=settings, tokens=Tokens.from_settings(settings))
    assert copy.exact is True
    assert copy.html.rstrip() == sent_html.rstrip() and "Augusta" not in copy.html
    assert copy.subject == str(make_header(decode_header(letter["Subject"])))
