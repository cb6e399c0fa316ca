"""Bounces and complaints: read DSNs (RFC 3464), ARF reports (RFC 5965) and the common
non-standard bounces, find the letter they are about, and record what they decide.

A report names its letter by the VERP token of the envelope sender the letter went out
with (`bounces+<token>@…`, campaigns.delivery.sending.return_path) — in the address the
bounce was mailed to, or quoted in what it returns — or else by the letter's Message-ID.
The rules (docs/bounces.md): a hard bounce or a complaint suppresses the address at once;
soft bounces do when the contact's last `soft_limit` letters that went out all bounced.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.config import Bounces
from campaigns.db import utcnow
from campaigns.delivery import feedback
from campaigns.delivery.feedback import HARD, SOFT
from campaigns.delivery.sending import RETURN_PATH_USER
from campaigns.delivery.tokens import Tokens
from campaigns.errors import TokenInvalid
from campaigns.models import DELIVERED_STATES, ContactStatus, Delivery, Event, EventKind

VERP = re.compile(rf"\b{RETURN_PATH_USER}\+([A-Za-z0-9_.-]{{8,120}})@", re.IGNORECASE)
MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^<>\s]{3,250}>)", re.IGNORECASE | re.MULTILINE)
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_CODE = re.compile(r"(?:^|[\s;(])([245])\d\d[\s-]")
# Headers of a bounce that may hold the address it was mailed to (the VERP address).
ADDRESSED_TO = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")
# Bounces that say "permanent" but nothing about the address: the mailbox is full, the
# letter too big, its content or the sender refused (spam filters, blocklists, DMARC).
SOFT_PERMANENT = ("5.2.2", "5.2.3", "5.3.4")
SOFT_PERMANENT_CLASSES = ("5.6.", "5.7.")
# Without a multipart/report, a bounce is known by who sends it or what it is called.
BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed|failed)|failure notice|"
    r"returned mail|mail delivery failed|non-?delivery|could not be delivered", re.I,
)  # fmt: skip
TEXT_LIMIT = 20_000  # characters of a non-standard bounce's text that are searched


@dataclass(frozen=True)
class Report:
    """What one bounce or complaint says, and the clues to the letter it is about."""

    kind: EventKind  # BOUNCE or COMPLAINT
    source: str  # dsn, arf, text, ses
    severity: str = ""  # hard or soft, for a bounce
    status: str = ""  # RFC 3463 enhanced status code, e.g. 5.1.1
    diagnostic: str = ""  # the remote server's words
    recipient: str = ""  # the address that bounced or complained
    feedback_type: str = ""  # ARF Feedback-Type (abuse, fraud, virus, other) or SES's
    report_id: str = ""  # the report's own Message-ID or feedback id
    tokens: tuple[str, ...] = ()  # VERP tokens found, most trusted first
    message_ids: tuple[str, ...] = field(default=())  # Message-IDs of the returned letter

    def detail(self) -> dict[str, Any]:
        """What an event keeps of it."""
        values = {"source": self.source, "severity": self.severity, "status": self.status,
                  "diagnostic": self.diagnostic[:500], "recipient": self.recipient,
                  "feedback_type": self.feedback_type, "report_id": self.report_id[:200],
                  }  # fmt: skip
        return {k: v for k, v in values.items() if v}


def severity(status: str, diagnostic: str = "") -> str:
    """Hard or soft: 5.x.x is hard, except what says nothing about the address; 4.x.x soft."""
    code = status or _status(diagnostic)
    if not code:
        smtp = SMTP_CODE.search(diagnostic)
        return SOFT if smtp is not None and smtp.group(1) == "4" else HARD
    if code.startswith("4") or code in SOFT_PERMANENT or code.startswith(SOFT_PERMANENT_CLASSES):
        return SOFT
    return HARD


def parse(raw: bytes, *, envelope_recipients: Sequence[str] = ()) -> Report | None:
    """Read a bounce, a complaint, or neither (an auto-reply, a delay notice): None."""
    msg = email.message_from_bytes(raw)
    report_type = msg.get_param("report-type", header="Content-Type")
    kind = str(report_type).lower() if msg.get_content_type() == "multipart/report" else ""
    if kind == "feedback-report":
        fields = _report_fields(msg, "message/feedback-report")
        found = _arf(fields[0]) if fields else None
    elif kind == "delivery-status":
        found = _dsn(_report_fields(msg, "message/delivery-status"))
    else:
        found = _text(msg)
    if found is None:
        return None
    # Most trusted first: the address it was mailed to, then anything it quotes (the
    # returned letter's Return-Path, an ARF report's Original-Mail-From).
    text = raw.decode("utf-8", "replace")
    tokens = _unique(
        [m.group(1) for a in envelope_recipients for m in VERP.finditer(a)]
        + [m.group(1) for h in ADDRESSED_TO for m in VERP.finditer(str(msg.get(h, "")))]
        + [m.group(1) for m in VERP.finditer(text)]
    )  # fmt: skip
    own_id = str(msg.get("Message-ID", "")).strip()
    message_ids = _unique(m.group(1) for m in MESSAGE_ID.finditer(text) if m.group(1) != own_id)
    report_id = own_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    return Report(**{**found, "report_id": report_id, "tokens": tokens,
                     "message_ids": message_ids})  # fmt: skip


def _dsn(blocks: list[Message]) -> dict[str, Any] | None:
    """The first failed recipient of a delivery-status report; delays and successes: None."""
    for block in blocks[1:]:  # the first block is about the message, the others recipients
        if str(block.get("Action", "")).strip().lower() != "failed":
            continue
        status = _status(str(block.get("Status", "")))
        diagnostic = _value(block.get("Diagnostic-Code", ""))
        recipient = _value(block.get("Final-Recipient") or block.get("Original-Recipient", ""))
        return {"kind": EventKind.BOUNCE, "source": "dsn", "status": status,
                "severity": severity(status, diagnostic), "diagnostic": diagnostic,
                "recipient": recipient}  # fmt: skip
    return None


def _arf(fields: Message) -> dict[str, Any] | None:
    """A complaint from an ARF report; a "not-spam" report is none."""
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    if feedback_type in ("", "not-spam"):
        return None
    return {"kind": EventKind.COMPLAINT, "source": "arf", "feedback_type": feedback_type[:40],
            "recipient": _value(fields.get("Original-Rcpt-To", ""))}  # fmt: skip


def _text(msg: Message) -> dict[str, Any] | None:
    """A bounce without a report (qmail, old Exchange, …): known by its sender or subject."""
    sender, subject = str(msg.get("From", "")), str(msg.get("Subject", ""))
    if not (BOUNCE_SENDER.search(sender) or BOUNCE_SUBJECT.search(subject)):
        return None
    text = "\n".join(_plain(part) for part in msg.walk()
                     if part.get_content_type() == "text/plain")[:TEXT_LIMIT]  # fmt: skip
    status = _status(text)
    line = next((ln.strip() for ln in text.splitlines()
                 if (status and status in ln) or SMTP_CODE.search(ln)), "")  # fmt: skip
    if not status and not line:
        return None  # no code at all: too little to judge by
    return {"kind": EventKind.BOUNCE, "source": "text", "status": status,
            "severity": severity(status, line), "diagnostic": line}  # fmt: skip


def _report_fields(msg: Message, content_type: str) -> list[Message]:
    """The header blocks of a report part (the email package parses them as messages)."""
    for part in msg.walk():
        if part.get_content_type() != content_type:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return [p for p in payload if isinstance(p, Message)]
        text = str(payload).replace("\r\n", "\n")  # a report part sent base64 or malformed
        return [email.message_from_string(b) for b in re.split(r"\n\s*\n", text) if b.strip()]
    return []


def _plain(part: Message) -> str:
    body = part.get_payload(decode=True)
    charset = part.get_content_charset() or "utf-8"
    if not isinstance(body, bytes):
        return ""
    try:
        return body.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", "replace")


def _status(text: str) -> str:
    match = STATUS.search(text)
    return ".".join(match.groups()) if match else ""


def _value(header: Any) -> str:
    """A report field's value: its type prefix ("rfc822;", "smtp;") off, whitespace folded."""
    text = " ".join(str(header).split())
    prefix, sep, rest = text.partition(";")
    return (rest if sep and " " not in prefix else text).strip()[:500]


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class Recorded:
    """What recording a report did: `recorded`, `duplicate` or `unmatched`."""

    outcome: str
    delivery_id: int | None = None
    suppressed: bool = False
    paused: str | None = None  # the campaign's pause reason, when the report paused it


def find_delivery(session: Session, report: Report, *, tokens: Tokens) -> Delivery | None:
    """The ledger row a report is about: by a VERP token we signed, else by Message-ID."""
    for token in report.tokens:
        try:
            (delivery_id,) = tokens.verify("bounce", token)
        except TokenInvalid:
            continue
        delivery = session.get(Delivery, delivery_id)
        if delivery is not None:
            return delivery
    if not report.message_ids:
        return None
    query = select(Delivery).where(Delivery.message_id.in_(report.message_ids)).limit(1)
    return session.scalar(query)


def record(
    session: Session, report: Report, *, tokens: Tokens, rules: Bounces,
    now: datetime | None = None,
) -> Recorded:  # fmt: skip
    """Record a bounce or complaint event once per letter and apply the rules.

    A letter bounces or is complained about once: a second report of the same kind for it
    (the same DSN mailed twice, or read from both the mailbox and a relay) records nothing.
    """
    delivery = find_delivery(session, report, tokens=tokens)
    if delivery is None:
        return Recorded("unmatched")
    seen = select(Event.id).where(Event.delivery_id == delivery.id, Event.kind == report.kind)
    if session.scalar(seen.limit(1)) is not None:
        return Recorded("duplicate", delivery.id)
    try:
        with session.begin_nested():  # another receiver may record the same report now
            session.add(Event(kind=report.kind, delivery_id=delivery.id,
                              contact_id=delivery.contact_id, occurred_at=now or utcnow(),
                              user_agent=report.source, detail=report.detail()))  # fmt: skip
    except IntegrityError:  # it did (uq_events_delivery_feedback): it applies the rules
        return Recorded("duplicate", delivery.id)
    suppressed = _apply_rules(session, delivery, report, soft_limit=rules.soft_limit)
    paused = None
    if delivery.campaign_id is not None and (report.kind == EventKind.COMPLAINT
                                             or report.severity == HARD):  # fmt: skip
        paused = feedback.pause_on_bad_feedback(session, delivery.campaign_id, rules=rules)
    return Recorded("recorded", delivery.id, suppressed, paused)


def _apply_rules(session: Session, delivery: Delivery, report: Report, *, soft_limit: int) -> bool:
    """Suppress the address when the report calls for it; say whether it did."""
    said = f"{report.status} {report.diagnostic}".strip()[:300]
    if report.kind == EventKind.COMPLAINT:
        status, source = ContactStatus.COMPLAINED, "complaint"
        reason = f"complaint ({report.feedback_type or 'abuse'}) via {report.source}"
    elif report.severity == HARD:
        status, source, reason = ContactStatus.BOUNCED, "bounce", f"hard bounce: {said}"
    elif soft_in_a_row(session, delivery.contact_id, soft_limit):
        status, source = ContactStatus.BOUNCED, "bounce"
        reason = f"{soft_limit} soft bounces in a row (the last: {said})"
    else:
        return False
    feedback.suppress_recipient(session, delivery.id, status, reason=reason, source=source)
    return True


def soft_in_a_row(session: Session, contact_id: int, limit: int) -> bool:
    """Whether the contact's last `limit` letters that went out all bounced.

    "In a row": ordered by when they went out; a letter in between that did not bounce
    (delivered, or not bounced yet) breaks the row.
    """
    last = (
        select(Delivery.id)
        .where(Delivery.contact_id == contact_id, Delivery.state.in_(DELIVERED_STATES))
        .order_by(func.coalesce(Delivery.sent_at, Delivery.created_at).desc(), Delivery.id.desc())
        .limit(limit)
        .subquery()
    )
    went_out, bounced = session.execute(
        select(func.count(func.distinct(last.c.id)),
               func.count(func.distinct(Event.delivery_id)))
        .select_from(last)
        .outerjoin(Event, (Event.delivery_id == last.c.id) & (Event.kind == EventKind.BOUNCE))
    ).one()  # fmt: skip
    return bool(went_out >= limit and bounced >= limit)
