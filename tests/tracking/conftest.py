"""Bounce and complaint mail as real servers send it (fixtures/*.eml), filled in per test."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.embedded.services import Received, SMTPCatcher, free_port
from campaigns.models import Contact, ContactStatus, Event
from campaigns.tracking.mailboxes import BounceServer, Receiver

FIXTURES = Path(__file__).parent / "fixtures"


def report_mail(name: str, *, verp: str, recipient: str, message_id: str) -> bytes:
    """A fixture with the letter's VERP address, recipient and Message-ID put in, CRLF ends."""
    text = (FIXTURES / f"{name}.eml").read_text()
    text = text.replace("%VERP%", verp).replace("%RECIPIENT%", recipient)
    return text.replace("%MESSAGE_ID%", message_id).replace("\n", "\r\n").encode()


def letter_to(smtp_server: SMTPCatcher, address: str) -> Received:
    """The one letter the test SMTP server received for `address`."""
    [letter] = [m for m in smtp_server.messages if m.recipients == [address]]
    return letter


def mail(port: int, data: bytes, *, to: str) -> None:
    """Mail `data` to the bounce receiver on this loopback port with a null envelope sender,
    as bounces come."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("", [to], data)


def events_of(db: Database, email: str) -> list[Event]:
    """The events of the contact with this address, oldest first."""
    with db.unit_of_work() as s:
        query = (select(Event).join(Contact, Contact.id == Event.contact_id)
                 .where(Contact.email == email).order_by(Event.id))  # fmt: skip
        return list(s.scalars(query))


def contact_status(db: Database, email: str) -> ContactStatus:
    with db.unit_of_work() as s:
        status = s.scalar(select(Contact.status).where(Contact.email == email))
        assert status is not None
        return status


@pytest.fixture
def bounce_server(db: Database, settings: Settings) -> Iterator[BounceServer]:
    """The product's bounce receiver on a free loopback port, on the test's database."""
    server = BounceServer(Receiver(db, settings), host="127.0.0.1", port=free_port()).start()
    yield server
    server.stop()
