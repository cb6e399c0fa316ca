"""Compliance watch: the last days' complaint rate against the bulk senders' ceiling, and
whether unsubscribes were honoured — for the sending domain and each large mailbox provider.

Gmail and Yahoo require bulk senders to keep complaints under 0.3 % of delivered letters
(Google asks for under 0.1 %) and to honour unsubscribes within two days. Here an
unsubscribe takes effect when it is recorded; what the watch checks is that no marketing
letter was sent to a contact after they unsubscribed (a letter already in flight at that
moment is the only way it can happen).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.orm import Session, aliased

from campaigns.models import (
    ContactStatus,
    ContactStatusChange,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    Letter,
    LetterCategory,
    LetterVersion,
)

CEILING = 0.003  # complaints per delivered letter that Gmail and Yahoo tolerate
WARN_AT = 0.001  # Google's advice: stay below this
WINDOW = timedelta(days=7)
PROVIDERS = 5  # the largest recipient domains shown beside the total


@dataclass(frozen=True)
class Watch:
    """One line of the watch: the sending domain's total, or one mailbox provider's."""

    domain: str
    sent: int
    complaints: int
    unsubscribes: int
    sent_after_unsubscribe: int

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    @property
    def level(self) -> str:
        """ "over" the ceiling, "warn" past Google's advice, or "ok"."""
        rate = self.complaint_rate
        return "over" if rate >= CEILING else "warn" if rate >= WARN_AT else "ok"


def recipient_domain(session: Session) -> ColumnElement[str]:
    """The domain of a ledger row's address, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.lower(func.split_part(Delivery.email, "@", 2))
    return func.lower(func.substr(Delivery.email, func.instr(Delivery.email, "@") + 1))


def watch(session: Session, *, sender_domain: str, now: datetime) -> list[Watch]:
    """The sending domain's last 7 days, then its largest recipient domains'."""
    since = now - WINDOW
    domain = recipient_domain(session).label("domain")
    sent = _by_domain(session, select(domain, func.count())
                      .where(Delivery.state == DeliveryState.SENT, Delivery.sent_at >= since)
                      .group_by(domain))  # fmt: skip
    events = {
        kind: _by_domain(session, select(domain, func.count(func.distinct(Event.contact_id)))
                         .join(Delivery, Delivery.id == Event.delivery_id)
                         .where(Event.kind == kind, Event.occurred_at >= since)
                         .group_by(domain))
        for kind in (EventKind.COMPLAINT, EventKind.UNSUBSCRIBE)
    }  # fmt: skip
    late = _by_domain(session, _sent_after_unsubscribe(session, since))
    lines = [
        Watch(name, sent.get(name, 0), events[EventKind.COMPLAINT].get(name, 0),
              events[EventKind.UNSUBSCRIBE].get(name, 0), late.get(name, 0))
        for name in sorted(sent, key=lambda d: -sent[d])[:PROVIDERS]
    ]  # fmt: skip
    total = Watch(
        sender_domain, sum(sent.values()), sum(events[EventKind.COMPLAINT].values()),
        sum(events[EventKind.UNSUBSCRIBE].values()), sum(late.values()),
    )  # fmt: skip
    return [total, *lines]


def _by_domain(session: Session, query: Select[str, int]) -> dict[str, int]:
    return {domain: int(count) for domain, count in session.execute(query)}


def _sent_after_unsubscribe(session: Session, since: datetime) -> Select[str, int]:
    """Marketing letters sent in the window to a contact who had unsubscribed (and not
    subscribed again) before it went, by recipient domain."""
    left, back = aliased(ContactStatusChange), aliased(ContactStatusChange)
    unsubscribed_before = exists().where(
        left.contact_id == Delivery.contact_id, left.status == ContactStatus.UNSUBSCRIBED,
        left.occurred_at < Delivery.sent_at,
        ~exists().where(back.contact_id == left.contact_id,
                        back.status == ContactStatus.ACTIVE,
                        back.occurred_at > left.occurred_at,
                        back.occurred_at < Delivery.sent_at),
    )  # fmt: skip
    domain = recipient_domain(session).label("domain")
    return (
        select(domain, func.count())
        .join(LetterVersion, LetterVersion.id == Delivery.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .where(Delivery.state == DeliveryState.SENT, Delivery.sent_at >= since,
               Letter.category == LetterCategory.MARKETING, unsubscribed_before)
        .group_by(domain)
    )  # fmt: skip
