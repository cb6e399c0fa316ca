"""A merge field can never add a header or a recipient (RELIABILITY.md 28 and 36)."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import Letter, SMTPMailer, build_message
from campaigns.embedded.services import SMTPCatcher
from campaigns.errors import ValidationError
from campaigns.models import Delivery, DeliveryState
from tests.factories import make_contact, make_segment, make_version

ENCODED_CRLF = [
    "=?utf-8?q?a=0D=0ABcc:evil@example.com?=",
    "=?utf-8?q?a=0D=0AReply-To:_evil@example.com?=",
    "=?UTF-8?B?YQ0KQmNjOiBldmlsQGV4YW1wbGUuY29t?=",  # base64 of "a\r\nBcc: evil@example.com"
    "=?utf-8?q?a=0ABcc:evil@example.com?=",
    "=?iso-8859-1?q?a=0D=0ABcc:evil@example.com?=",
    "x =?utf-8?q?=00?= y",
]
HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version"]


@pytest.mark.parametrize("payload", ENCODED_CRLF)
@pytest.mark.parametrize("where", ["subject", "sender_name", "to"])
def test_an_encoded_line_break_in_any_header_is_refused(payload: str, where: str) -> None:
    fields = {"sender_name": "Care", "subject": "Hello", "to": "jane@example.com"}
    fields[where] = f"{fields[where]} {payload}" if where != "to" else f"{payload} <j@example.com>"
    letter = Letter(sender_email="care@example.com", html="<p>x</p>", text="x", **fields)
    with pytest.raises(ValidationError, match="line break or control character"):
        build_message(letter, message_id="<1@example.com>")


def test_a_harmless_encoded_word_still_goes_out() -> None:
    letter = Letter(sender_name="Care", sender_email="care@example.com", to="a@example.com",
                    subject="Caf=?utf-8?q?=C3=A9?= menu", html="<p>x</p>", text="x")  # fmt: skip
    message = BytesParser(policy=default_policy).parsebytes(
        build_message(letter, message_id="<1@example.com>")
    )
    assert [name for name, _ in message.items()] == [*HEADERS, "Content-Type"]
    assert message["Subject"] == "Café menu"  # decoded by the reader, as any reader would


def test_a_first_name_holding_an_encoded_header_fails_only_its_row(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    with db.unit_of_work() as s:
        make_contact(s, "mallory@example.com", first_name=ENCODED_CRLF[0])
        make_contact(s, "jane@example.com", first_name="Jane")
        version = make_version(s, subject="Hello {{ contact.first_name }}")
        campaign = scheduling.create_campaign(
            s, "Offer", segment_id=make_segment(s).id, letter_version_id=version.id
        )
        scheduling.schedule(s, campaign.id, send_at=utcnow())
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())
    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, launch.batches[0], mailer=mailer, settings=settings)
    mailer.close()

    assert (result.sent, result.failed) == (1, 1)
    (received,) = smtp_server.messages
    assert received.recipients == ["jane@example.com"]
    letter = BytesParser(policy=default_policy).parsebytes(received.data)
    unsubscribe = ["List-Unsubscribe", "List-Unsubscribe-Post"]
    assert [name for name, _ in letter.items()] == [
        *HEADERS, "Feedback-ID", *unsubscribe, "Content-Type"]  # fmt: skip
    assert letter["Subject"] == "Hello Jane"
    with db.unit_of_work() as s:
        mallory = s.scalar(select(Delivery).where(Delivery.email == "mallory@example.com"))
    assert mallory is not None and mallory.state == DeliveryState.FAILED
    assert "Subject header holds a line break" in mallory.reason
