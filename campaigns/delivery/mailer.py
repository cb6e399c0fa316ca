"""Build MIME letters and hand them to an SMTP server over a persistent connection."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import random
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy

from campaigns.config import Settings
from campaigns.db import utcnow
from campaigns.errors import CampaignsError, ConfigError, ValidationError

# Decoded header text may hold tabs, nothing else below 0x20 (and no DEL).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class SendError(CampaignsError):
    """The SMTP server did not take a letter."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    """A 4xx reply, a timeout, or a connection that could not be opened: try again later."""

    def __init__(self, message: str, *, code: int | None = None, server_down: bool = False):
        super().__init__(message, code=code)
        # True when no connection could be had at all: every letter would fail the same
        # way, so the batch is handed back. False for this one recipient's trouble.
        self.server_down = server_down


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


def build_message(
    letter: Letter, *, message_id: str, date: datetime | None = None,
    signer: DkimSigner | None = None,
) -> bytes:  # fmt: skip
    """Serialise a multipart/alternative letter: text and HTML, UTF-8, each part 7bit or
    quoted-printable (`_encoded`).

    Written directly, not through `email.message.EmailMessage`: building and flattening
    one of those costs more than everything else of a letter put together. Every header
    built from data is refused if it holds a control character, raw or inside an RFC 2047
    encoded word (`=?utf-8?q?a=0D=0ABcc:…?=`), which some mail readers and older Pythons
    (CVE-2024-6923) turn back into header lines: a merge field can never add a header or
    a recipient. With a `signer`, a DKIM-Signature header is put first.
    """
    headers = [
        ("From", formataddr((_safe("From", letter.sender_name), letter.sender_email), "utf-8")),
        ("To", letter.to),
        ("Subject", letter.subject),
        ("Date", format_datetime(date or utcnow())),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        *letter.headers,
    ]
    # "=_" never occurs in quoted-printable text ("=" is written "=3D"), and a body sent
    # as it is is checked for it (_encoded): a safe boundary.
    boundary = f"=_{random.getrandbits(96):024x}"  # unguessable it need not be (see above)
    out = [_header(name, value) for name, value in headers]
    out.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode())
    for subtype, body in (("plain", letter.text), ("html", letter.html)):
        encoding, encoded = _encoded(body, boundary)
        out.append(f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                   f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode())  # fmt: skip
        # The line break before a boundary belongs to the boundary (RFC 2046): one more, so
        # the body's own last line break survives.
        out.append(encoded + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    data = b"".join(out)
    return data if signer is None else signer.sign(data) + data


# What the signature covers (RFC 6376 5.4; RFC 8058 asks for both List-Unsubscribe fields).
DKIM_HEADERS = (b"from", b"subject", b"date", b"message-id", b"to")
DKIM_IF_PRESENT = (b"list-unsubscribe", b"list-unsubscribe-post")


class DkimSigner:
    """Signs serialised letters with one RSA key (rsa-sha256, relaxed/relaxed), parsed once.

    dkimpy canonicalises and hashes (its own helpers, as `DKIM.gen_header` uses them); the
    RSA step runs in OpenSSL through `cryptography`: dkimpy's pure-Python RSA took about
    7–13 ms a letter with a 2048-bit key, most of a signed letter's cost.
    """

    def __init__(self, private_key_pem: bytes, *, selector: str, domain: str) -> None:
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigError(f"the DKIM key cannot be read: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError("the DKIM key must be an RSA private key (rsa-sha256)")
        self._key = key
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self._canon = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")

    def sign(self, data: bytes) -> bytes:
        """Return the DKIM-Signature header line (CRLF-terminated) for a serialised letter."""
        message = dkim.DKIM(data, linesep=b"\r\n", signature_algorithm=b"rsa-sha256")
        present = {name.lower() for name, _value in message.headers}
        include = DKIM_HEADERS + tuple(h for h in DKIM_IF_PRESENT if h in present)
        body_hash = base64.b64encode(hashlib.sha256(self._canon.canonicalize_body(message.body))
                                     .digest())  # fmt: skip
        tags = [
            (b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", self._canon.to_c_value()),
            (b"d", self.domain), (b"i", b"@" + self.domain), (b"q", b"dns/txt"),
            (b"s", self.selector), (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(include)), (b"bh", body_hash),
            (b"b", b"0" * 60),  # a placeholder that folds b= onto its own line (as dkimpy does)
        ]  # fmt: skip
        # What is signed: the included headers and this header with an empty b= (RFC 6376 3.7).
        unsigned = dkim.fold(b"; ".join(b"=".join(t) for t in tags), namelen=len(_DKIM_NAME))
        unsigned = dkim.RE_BTAG.sub(b"\\1", unsigned)
        hashed = dkim.HashThrough(hashlib.sha256())
        dkim.hash_headers(hashed, self._canon, self._canon.canonicalize_headers(message.headers),
                          list(include), (_DKIM_NAME, b" " + unsigned), dict(tags))  # fmt: skip
        signature = self._key.sign(
            hashed.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
        tags[-1] = (b"b", base64.b64encode(signature))
        value = dkim.fold(b"; ".join(b"=".join(t) for t in tags) + b"\r\n", namelen=len(_DKIM_NAME))
        return _DKIM_NAME + b": " + value


_DKIM_NAME = b"DKIM-Signature"


@functools.cache
def _signer(path: Path, selector: str, domain: str) -> DkimSigner:
    return DkimSigner(path.read_bytes(), selector=selector, domain=domain)


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The process's signer for these settings (the key read and parsed once), or None."""
    if settings.dkim_private_key_file is None:
        return None
    return _signer(settings.dkim_private_key_file, settings.dkim_selector, settings.dkim_domain)


def _safe(name: str, value: str) -> str:
    """Return `value` if it cannot break a header, raw or once its encoded words are decoded."""
    unsafe = bool(_CONTROL.search(value))
    if not unsafe and "=?" in value:
        try:
            parts = decode_header(value)
        except HeaderParseError:
            parts = []
        for chunk, charset in parts:
            text = chunk if isinstance(chunk, str) else _decoded(chunk, charset)
            unsafe = unsafe or bool(_CONTROL.search(text))
    if unsafe:
        raise ValidationError(
            f"the {name} header holds a line break or control character (perhaps an "
            "RFC 2047 encoded word in a merge field); the letter was not sent",
            field=name.lower(),
        )
    return value


def _decoded(chunk: bytes, charset: str | None) -> str:
    try:
        return chunk.decode(charset or "ascii", "replace")
    except LookupError:  # a charset nobody knows: look at the bytes as they are
        return chunk.decode("latin-1")


def _header(name: str, value: str) -> bytes:
    value = _safe(name, value)
    if value.isascii() and len(name) + len(value) < 76:
        return f"{name}: {value}\r\n".encode()
    charset = "us-ascii" if value.isascii() else "utf-8"
    folded = Header(value, charset, header_name=name).encode(linesep="\r\n")
    return f"{name}: {folded}\r\n".encode()


# What a body sent as it is (7bit, RFC 2045) may hold: printable ASCII, tabs, line breaks
# (deleting them with bytes.translate leaves nothing: ten times faster than a regex).
_7BIT = bytes([9, 10, *range(0x20, 0x7F)])
MAX_LINE = 998  # octets a line may hold, without its CRLF (RFC 5322 2.1.1)


def _encoded(body: str, boundary: str) -> tuple[str, bytes]:
    """A part's transfer encoding and its body in it, lines ending in CRLF.

    A body of printable ASCII in lines of at most 998 octets goes as it is (7bit): quoting
    it cost ~0.1 ms a letter, and no relay ever rewrites 7bit (a DKIM signature holds).
    Anything else is quoted-printable: non-ASCII text, long lines, a line starting "From "
    (which mbox delivery would mangle), or one holding the boundary.
    """
    text = body.replace("\r\n", "\n").replace("\r", "\n") if "\r" in body else body
    if not text.endswith("\n"):
        text += "\n"
    if text.isascii():
        data = text.encode("ascii")
        if not (
            data.translate(None, _7BIT) or data.startswith(b"From ") or b"\nFrom " in data
            or f"--{boundary}".encode() in data or max(map(len, data.split(b"\n"))) > MAX_LINE
        ):  # fmt: skip
            return "7bit", data.replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


def new_message_id(domain: str) -> str:
    """Return a globally unique Message-ID for the sender's domain."""
    return make_msgid(domain=domain)


class Mailer(Protocol):
    """Something that delivers one serialised message; raises a SendError when it cannot."""

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> None: ...

    def submit(self, sender: str, recipients: Sequence[str], data: bytes) -> Callable[[], None]: ...

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
            raise TransientSendError(
                f"cannot connect to {self.host}:{self.port}: {exc}", server_down=True
            ) from None
        return conn

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        """Send one message; a connection found dead before the data is re-opened once.

        Takes bytes, not a message object: serialising is the caller's (once per letter),
        so a retry or a reconnect never re-renders or re-folds anything.
        """
        self.submit(sender, recipients, data)()

    def submit(self, sender: str, recipients: Sequence[str], data: bytes) -> Callable[[], None]:
        """Send one message but leave the server's last reply unread: the function returned
        reads it, raising what `send` would. Call it before anything else on this mailer.

        The caller may do other work (render the next letter) while the server takes the
        data; `send` is `submit(...)()`. Errors before the data went raise from here.
        """
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                pipelined = self._envelope(self._conn, sender, recipients)
                break
            except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                # Nothing of this letter was accepted yet, so reconnecting is safe. Failing
                # again on a fresh connection that opened fine is this recipient's trouble
                # (a server that hangs at RCPT for them), not the whole server's.
                self._drop()
                if attempt == 2:
                    raise TransientSendError(
                        f"the server stopped answering for this recipient: {exc or 'timed out'}"
                    ) from None
        conn = self._conn
        assert conn is not None
        if not pipelined:  # SMTP.data sends the data and reads the reply in one go
            self._exchange(lambda: conn.data(data))
            return _nothing
        self._exchange(lambda: _body(conn, data))
        return lambda: self._exchange(conn.getreply)

    def _exchange(self, step: Callable[[], tuple[int, bytes] | None]) -> None:
        """Take a step of the data's exchange; raise for a refusal or a lost connection."""
        try:
            replied = step()
        except smtplib.SMTPDataError as exc:
            self._reset()
            raise _classify(exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise AmbiguousSendError(f"connection lost while sending the letter: {exc}") from None
        if replied is not None and replied[0] != 250:
            raise _classify(*replied)

    def _envelope(self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str]) -> bool:
        """Send MAIL and RCPT; return True if DATA was sent too and answered 354."""
        sender, recipients = _angled(sender), [_angled(rcpt) for rcpt in recipients]
        if conn.has_extn("pipelining"):
            self._pipelined(conn, sender, recipients)
            return True
        code, reply = conn.mail(sender)
        if code != 250:
            self._reset()
            raise _classify(code, reply)
        for rcpt in recipients:
            code, reply = conn.rcpt(rcpt)
            if code not in (250, 251):
                self._reset()
                raise _classify(code, reply)
        return False

    def _pipelined(self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str]) -> None:
        """MAIL, RCPT and DATA in one write, then their replies in order (RFC 2920): one
        round trip where there were three, for a server that offers PIPELINING. The
        addresses come `_angled`."""
        commands = [f"MAIL FROM:{sender}", *(f"RCPT TO:{rcpt}" for rcpt in recipients), "DATA"]
        conn.send("".join(f"{command}\r\n" for command in commands))
        replies = [conn.getreply() for _ in commands]
        mail, *answers, (data_code, data_reply) = replies
        refused = [mail] if mail[0] != 250 else [a for a in answers if a[0] not in (250, 251)]
        if refused:
            if data_code == 354:  # DATA taken despite the refusal: end an empty letter
                conn.send(".\r\n")
                conn.getreply()
            self._reset()
            raise _classify(*refused[0])
        if data_code != 354:
            self._reset()
            raise _classify(data_code, data_reply)

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


# An address as the product stores it (normalised, validated): nothing to parse or quote.
_PLAIN_ADDRESS = re.compile(r'[^\s<>()\[\]",;:\\@]+@[^\s<>()\[\]",;:\\@]+')


def _angled(address: str) -> str:
    """`<address>` for MAIL FROM and RCPT TO, as `smtplib.quoteaddr` writes it.

    An address holding a line break or another control character is refused: written into
    a pipelined command it could add a recipient, and parsed it may name someone else.
    """
    if _PLAIN_ADDRESS.fullmatch(address):  # parsing it (quoteaddr) took ~70 µs a letter
        return f"<{address}>"
    if _CONTROL.search(address):  # parsed, what is left could be another address
        raise PermanentSendError(
            f"the address {address!r} holds a line break or control character; not sent"
        )
    return smtplib.quoteaddr(address)


def _nothing() -> None:
    return None


def _body(conn: smtplib.SMTP, data: bytes) -> None:
    """Send a letter's data after a DATA already answered 354 (what `SMTP.data` does after
    its own DATA): lines starting with a dot doubled, then the ending dot. The server's
    reply is left to the caller (`SMTPMailer.submit`).

    A line starts at the data's start or after a line feed: a bytes replace finds them
    several times faster than a multiline regex over a 20 KB letter.
    """
    quoted = data.replace(b"\n.", b"\n..")
    if quoted.startswith(b"."):
        quoted = b"." + quoted
    if not quoted.endswith(b"\r\n"):
        quoted += b"\r\n"
    conn.send(quoted + b".\r\n")


def _classify(code: int, reply: bytes | str) -> SendError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = f"{code} {text}".strip()
    if 400 <= code < 500:
        return TransientSendError(message, code=code)
    return PermanentSendError(message, code=code)
