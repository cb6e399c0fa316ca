"""Read the local SMTP catcher's Maildir: what would have been sent without a real relay."""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from campaigns.errors import NotFound

_parser = BytesParser(policy=policy.default)


@dataclass(frozen=True)
class CaughtLetter:
    key: str
    date: str
    sender: str
    to: str
    subject: str
    message_id: str
    text: str
    html: str
    headers: list[tuple[str, str]]


def _read(key: str, data: bytes) -> CaughtLetter:
    msg = _parser.parsebytes(data)
    assert isinstance(msg, EmailMessage)
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    when = ""
    if msg["Date"]:
        try:
            when = parsedate_to_datetime(str(msg["Date"])).strftime("%Y-%m-%d %H:%M:%S")
        except (TypeError, ValueError):
            when = str(msg["Date"])
    return CaughtLetter(
        key=key, date=when, sender=str(msg["From"] or ""), to=str(msg["To"] or ""),
        subject=str(msg["Subject"] or ""), message_id=str(msg["Message-ID"] or ""),
        text=text_part.get_content() if text_part else "",
        html=html_part.get_content() if html_part else "",
        headers=[(k, str(v)) for k, v in msg.items()],
    )  # fmt: skip


def list_letters(maildir: Path, *, limit: int = 200) -> list[CaughtLetter]:
    """The newest letters first."""
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir, create=False)
    found = []
    for key in box.keys():
        path = maildir / ("new" if (maildir / "new" / key).exists() else "cur") / key
        mtime = path.stat().st_mtime if path.exists() else 0.0
        found.append((mtime, key))
    found.sort(reverse=True)
    return [_read(key, box.get_bytes(key)) for _, key in found[:limit]]


def get_letter(maildir: Path, key: str) -> CaughtLetter:
    if not maildir.exists():
        raise NotFound("the outbox is empty")
    box = mailbox.Maildir(maildir, create=False)
    try:
        return _read(key, box.get_bytes(key))
    except KeyError:
        raise NotFound(f"no letter {key!r} in the outbox") from None


def count(maildir: Path) -> int:
    return len(mailbox.Maildir(maildir, create=False)) if maildir.exists() else 0
