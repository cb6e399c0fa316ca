"""Where bounce mail arrives: an SMTP server for the bounce addresses, a Maildir, an IMAP box.

Each hands every message to `receive`, which reads it (campaigns.tracking.bounces) and
records it in a unit of work of its own. The SMTP server answers 451 when that fails (the
database is down, say): the sending server keeps the bounce and tries again later.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import mailbox
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery.sending import RETURN_PATH_USER
from campaigns.delivery.tokens import Tokens
from campaigns.errors import ConfigError
from campaigns.tracking import bounces

log = logging.getLogger(__name__)
SIZE_LIMIT = 10 * 1024 * 1024  # bounces quote the letter; none of ours comes near this
HANDLED, UNMATCHED = "handled", "unmatched"  # Maildir folders read messages are moved to


@dataclass
class Tally:
    """How many messages of a mailbox were recorded, duplicates, unmatched or not reports."""

    recorded: int = 0
    duplicate: int = 0
    unmatched: int = 0
    ignored: int = 0  # neither a bounce nor a complaint (an auto-reply, a delay notice)
    failed: list[str] = field(default_factory=list)  # left in place, with why

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def __str__(self) -> str:
        return (f"{self.recorded} recorded, {self.duplicate} already known, {self.unmatched} "
                f"for no letter of ours, {self.ignored} not a bounce or complaint, "
                f"{len(self.failed)} failed")  # fmt: skip


class Receiver:
    """Reads and records bounce mail for one database and one set of settings."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.rules = settings.bounces
        self.tokens = Tokens.from_settings(settings)

    def receive(self, raw: bytes, *, envelope_recipients: tuple[str, ...] = ()) -> str:
        """Read and record one message; return its outcome (a Tally field name)."""
        report = bounces.parse(raw, envelope_recipients=envelope_recipients)
        if report is None:
            return "ignored"
        with self.db.unit_of_work() as session:
            recorded = bounces.record(session, report, tokens=self.tokens, rules=self.rules)
        if recorded.paused:
            log.warning("campaign of ledger row %s: %s", recorded.delivery_id, recorded.paused)
        return recorded.outcome


def is_bounce_address(address: str) -> bool:
    """Whether mail for this address is ours to take: `bounces` or `bounces+<token>`."""
    local = address.rpartition("@")[0].lower()
    return local == RETURN_PATH_USER or local.startswith(RETURN_PATH_USER + "+")


class _Handler:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if not is_bounce_address(address):
            return "550 5.1.1 this server takes bounces and complaints only"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        receive = self.receiver.receive
        data, recipients = bytes(envelope.content), tuple(envelope.rcpt_tos)
        try:
            # The database may be slow: off the event loop, which keeps serving others.
            outcome = await asyncio.get_running_loop().run_in_executor(
                None, lambda: receive(data, envelope_recipients=recipients)
            )
        except Exception:
            log.exception("a bounce could not be recorded; the sender will try again")
            return "451 4.3.0 could not record this now, try again later"
        log.info("bounce mail for %s: %s", ", ".join(recipients), outcome)
        return "250 OK"


class BounceServer:
    """The SMTP server (aiosmtpd) the bounce domain's MX points at."""

    def __init__(self, receiver: Receiver, *, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._handler = _Handler(receiver)
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> BounceServer:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self._handler, hostname=self.host, port=self.port,
                                      data_size_limit=SIZE_LIMIT)  # fmt: skip
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def read_maildir(receiver: Receiver, path: Path) -> Tally:
    """Record every message of a Maildir, then move it to its `handled` or `unmatched`
    folder (Maildir++ `.handled`, `.unmatched`); one that fails stays for the next run."""
    if not (path / "cur").is_dir() or not (path / "new").is_dir():
        raise ConfigError(f"{path} is not a Maildir (it needs cur/ and new/)")
    box = mailbox.Maildir(path, create=False)
    folders = {name: box.add_folder(name) for name in (HANDLED, UNMATCHED)}
    tally = Tally()
    for key in list(box.keys()):
        try:
            outcome = receiver.receive(box.get_bytes(key))
        except Exception as exc:
            log.exception("message %s of %s could not be recorded", key, path)
            tally.failed.append(f"{key}: {type(exc).__name__}: {exc}")
            continue
        tally.add(outcome)
        folders[UNMATCHED if outcome in ("unmatched", "ignored") else HANDLED].add(box[key])
        box.remove(key)
    return tally


def read_imap(receiver: Receiver, url: str, *, password: str = "") -> Tally:
    """Record every message of an IMAP folder (`imaps://user@host/INBOX`; the password in
    the URL or given), then delete it; one that fails stays for the next run.

    Thin on purpose: only tried by hand, no IMAP server runs in the tests.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ConfigError("give the mailbox as imaps://user@host/folder")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    client: imaplib.IMAP4
    if parts.scheme == "imaps":
        client = imaplib.IMAP4_SSL(parts.hostname, parts.port or 993)
    else:
        client = imaplib.IMAP4(parts.hostname, parts.port or 143)
        client.starttls()  # never a password in the clear
    tally = Tally()
    try:
        client.login(unquote(parts.username), unquote(parts.password or "") or password)
        client.select(folder)
        _, found = client.uid("SEARCH", "ALL")
        for uid in (found[0] or b"").decode().split():
            _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in fetched if isinstance(item, tuple)), b"")
            try:
                tally.add(receiver.receive(raw))
            except Exception as exc:
                log.exception("message %s of %s could not be recorded", uid, folder)
                tally.failed.append(f"{uid}: {type(exc).__name__}: {exc}")
                continue
            client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        client.expunge()
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return tally
