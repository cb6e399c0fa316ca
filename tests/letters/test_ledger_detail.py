"""The ledger row keeps what its letter computed for the recipient: the renewal discount."""

from __future__ import annotations

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Delivery, LetterKind
from tests.letters.test_stock_letters import _send_stock_letters, settings, sqlite_db

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
        assert expiry.detail == {}  # a reminder offers no discount
