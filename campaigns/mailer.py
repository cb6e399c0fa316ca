"""Build MIME letters and hand them to an SMTP server over a persistent connection."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, make_msgid
from typing import Protocol
from urllib.parse import unquote, urlsplit

from campaigns.db import utcnow
from campaigns.errors import CampaignsError, ValidationError


class SendError(CampaignsError):
    """The SMTP server did not take a letter."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    """A 4xx reply or a connection that could not be opened: try again later."""


class PermanentSendError(SendError):
    """A 5xx reply: this letter will never be taken by this server."""


class AmbiguousSendError(SendError):
    """The connection died after the letter's data was sent: it may or may not have arrived."""


@dataclass(frozen=True)
class Letter:
    """A rendered letter ready to become a MIME message."""

    sender_name: str
    sender_email: str
    to: str
    subject: str
    html: str
    text: str
    headers: tuple[tuple[str, str], ...] = ()


def build_message(letter: Letter, *, message_id: str) -> EmailMessage:
    """Return a multipart/alternative message; CR/LF in any header value is refused."""
    # The SMTP policy folds long lines with CRLF and raises on CR/LF inside header values,
    # so a merge field can never add a header or a recipient.
    msg = EmailMessage(policy=SMTP_POLICY)
    try:
        msg["From"] = formataddr((letter.sender_name, letter.sender_email))
        msg["To"] = letter.to
        msg["Subject"] = letter.subject
        msg["Date"] = format_datetime(utcnow())
        msg["Message-ID"] = message_id
        msg["MIME-Version"] = "1.0"
        for name, value in letter.headers:
            msg[name] = value
    except ValueError as exc:
        raise ValidationError(f"a header of the letter is not valid: {exc}") from None
    msg.set_content(letter.text, subtype="plain", charset="utf-8")
    msg.add_alternative(letter.html, subtype="html", charset="utf-8")
    return msg


def new_message_id(domain: str) -> str:
    """Return a globally unique Message-ID for the sender's domain."""
    return make_msgid(domain=domain)


class Mailer(Protocol):
    """Something that delivers one serialised message; raises a SendError when it cannot."""

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> None: ...

    def close(self) -> None: ...


class SMTPMailer:
    """Delivers over one persistent SMTP connection, reconnecting when the server drops it.

    Not thread-safe: give each worker thread its own.
    """

    def __init__(self, url: str, *, timeout: float = 30.0, local_hostname: str | None = None):
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps", "smtp+starttls"} or not parts.hostname:
            raise ValidationError(f"SMTP_URL {url!r} must look like smtp://host:port")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        try:
            conn: smtplib.SMTP
            if self.scheme == "smtps":
                conn = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    timeout=self.timeout,
                    local_hostname=self.local_hostname,
                    context=ssl.create_default_context(),
                )
            else:
                conn = smtplib.SMTP(
                    self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname
                )
                if self.scheme == "smtp+starttls":
                    conn.starttls(context=ssl.create_default_context())
            conn.ehlo_or_helo_if_needed()
            if self.username:
                conn.login(self.username, self.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return conn

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        """Send one message; a connection found dead before the data is re-opened once.

        Takes bytes, not a message object: serialising is the caller's (once per letter),
        so a retry or a reconnect never re-renders or re-folds anything.
        """
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._envelope(self._conn, sender, recipients)
                break
            except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                # Nothing of this letter was accepted yet, so reconnecting is safe.
                self._drop()
                if attempt == 2:
                    raise TransientSendError(f"connection lost before sending: {exc}") from None
        assert self._conn is not None
        try:
            code, reply = self._conn.data(data)
        except smtplib.SMTPDataError as exc:
            self._reset()
            raise _classify(exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise AmbiguousSendError(f"connection lost while sending the letter: {exc}") from None
        if code != 250:
            raise _classify(code, reply)

    def _envelope(self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str]) -> None:
        code, reply = conn.mail(sender)
        if code != 250:
            self._reset()
            raise _classify(code, reply)
        for rcpt in recipients:
            code, reply = conn.rcpt(rcpt)
            if code not in (250, 251):
                self._reset()
                raise _classify(code, reply)

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = None

    def close(self) -> None:
        """Say QUIT politely and close the connection."""
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self._drop()


def _classify(code: int, reply: bytes | str) -> SendError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = f"{code} {text}".strip()
    if 400 <= code < 500:
        return TransientSendError(message, code=code)
    return PermanentSendError(message, code=code)
