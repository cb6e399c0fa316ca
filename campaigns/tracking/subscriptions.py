"""What a customer may turn off: marketing letters as a whole, or one kind of letter.

- The unsubscribe link of a **marketing** letter unsubscribes the contact from marketing
  (the contact's status becomes `unsubscribed`).
- The unsubscribe link of a **service** letter (an expiry reminder, a survey) turns off that
  kind of letter only (a `KindOptOut`): the customer still hears about their cover otherwise.
- **Legal** letters (policy re-statements) cannot be turned off; their pages say why.

Every change is an `unsubscribe` event (or a status change) with its time and client, and
each is undone with one click. Only a POST changes anything: link scanners fetch GETs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from campaigns.audience import contacts
from campaigns.db import utcnow
from campaigns.delivery.ledger import insert_ignoring_duplicates
from campaigns.errors import TokenInvalid
from campaigns.models import (
    Contact,
    ContactStatus,
    Delivery,
    Event,
    EventKind,
    KindOptOut,
    Letter,
    LetterCategory,
    LetterKind,
    LetterVersion,
)

MARKETING = "marketing"  # the scope of a marketing letter's unsubscribe link
SOURCE = "unsubscribe"  # the source of the status changes recorded here


@dataclass(frozen=True)
class Recipient:
    """The letter a customer's link came from, and who received it."""

    delivery_id: int
    contact_id: int
    email: str
    locale: str
    time_zone: str
    status: ContactStatus
    kind: LetterKind
    category: LetterCategory

    @property
    def scope(self) -> str | None:
        """What this letter's unsubscribe link turns off: "marketing", a kind, or None
        (legal letters cannot be turned off)."""
        if self.category == LetterCategory.MARKETING:
            return MARKETING
        if self.category == LetterCategory.SERVICE:
            return self.kind.value
        return None


@dataclass(frozen=True)
class Change:
    """What an unsubscribe or re-subscribe did: its scope, and whether anything changed."""

    recipient: Recipient
    scope: str | None
    changed: bool


def recipient(session: Session, delivery_id: int) -> Recipient:
    """The recipient of a letter a customer's signed link names; TokenInvalid if none."""
    row = session.execute(
        select(Delivery.id, Contact.id, Contact.email, Contact.locale, Contact.time_zone,
               Contact.status, Letter.kind, Letter.category, Contact.erased_at)
        .join(Contact, Contact.id == Delivery.contact_id)
        .join(LetterVersion, LetterVersion.id == Delivery.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .where(Delivery.id == delivery_id)
    ).one_or_none()  # fmt: skip
    if row is None or row[-1] is not None:
        raise TokenInvalid("this link does not belong to a letter we sent")
    return Recipient(row[0], row[1], row[2], row[3] or "en", row[4] or "UTC",
                     ContactStatus(row[5]), LetterKind(row[6]), LetterCategory(row[7]))  # fmt: skip


def unsubscribe(
    session: Session, delivery_id: int, *, one_click: bool = False, user_agent: str = "",
    now: datetime | None = None,
) -> Change:  # fmt: skip
    """Turn off what the letter's unsubscribe link offers (see the module); idempotent."""
    who = recipient(session, delivery_id)
    scope = who.scope
    if scope == MARKETING:
        changed = who.status == ContactStatus.ACTIVE and contacts.set_status(
            session, who.contact_id, ContactStatus.UNSUBSCRIBED, source=SOURCE,
            reason="one-click unsubscribe (List-Unsubscribe-Post)" if one_click
            else "unsubscribed with the letter's link",
        )  # fmt: skip
    elif scope is not None:
        changed = _turn_off(session, who.contact_id, [scope], source=SOURCE) > 0
    else:
        changed = False
    if changed:
        session.add(Event(
            kind=EventKind.UNSUBSCRIBE, delivery_id=delivery_id, contact_id=who.contact_id,
            occurred_at=now or utcnow(), user_agent=user_agent[:500],
            detail={"scope": scope, "one_click": one_click},
        ))  # fmt: skip
    return Change(who, scope, changed)


def resubscribe(session: Session, delivery_id: int) -> Change:
    """Undo what the letter's unsubscribe link turned off; idempotent."""
    who = recipient(session, delivery_id)
    scope = who.scope
    if scope == MARKETING:
        changed = who.status == ContactStatus.UNSUBSCRIBED and contacts.set_status(
            session, who.contact_id, ContactStatus.ACTIVE, source=SOURCE,
            reason="re-subscribed with the letter's link",
        )  # fmt: skip
    elif scope is not None:
        changed = _turn_on(session, who.contact_id, [scope]) > 0
    else:
        changed = False
    return Change(who, scope, changed)


@dataclass(frozen=True)
class KindChoice:
    """One kind of letter in the preference centre."""

    kind: LetterKind
    on: bool
    legal: bool  # cannot be turned off


@dataclass(frozen=True)
class Preferences:
    recipient: Recipient
    marketing: bool  # whether marketing letters reach the contact
    kinds: list[KindChoice]


def preferences(session: Session, delivery_id: int) -> Preferences:
    """What the contact receives: marketing as a whole, and each kind of letter we send."""
    who = recipient(session, delivery_id)
    off = set(session.scalars(select(KindOptOut.kind)
                              .where(KindOptOut.contact_id == who.contact_id)))  # fmt: skip
    # A kind is legal when every letter of it is: those reach everyone, whatever is chosen.
    legal = func.min(case((Letter.category == LetterCategory.LEGAL, 1), else_=0))
    kinds = session.execute(select(Letter.kind, legal).group_by(Letter.kind))
    choices = [KindChoice(LetterKind(kind), kind not in off or bool(is_legal), bool(is_legal))
               for kind, is_legal in kinds]  # fmt: skip
    order = list(LetterKind)
    choices.sort(key=lambda c: order.index(c.kind))
    return Preferences(who, who.status != ContactStatus.UNSUBSCRIBED, choices)


def save_preferences(
    session: Session, delivery_id: int, *, marketing: bool, kinds_on: Iterable[str],
    user_agent: str = "", now: datetime | None = None,
) -> Preferences:  # fmt: skip
    """Set what the contact receives from the preference centre; legal kinds stay on."""
    current = preferences(session, delivery_id)
    who = current.recipient
    wanted = set(kinds_on)
    choosable = [c.kind.value for c in current.kinds if not c.legal]
    turned_off = _turn_off(session, who.contact_id, [k for k in choosable if k not in wanted],
                           source="preferences")  # fmt: skip
    _turn_on(session, who.contact_id, [k for k in choosable if k in wanted])
    if marketing and who.status == ContactStatus.UNSUBSCRIBED:
        contacts.set_status(session, who.contact_id, ContactStatus.ACTIVE, source=SOURCE,
                            reason="re-subscribed in the preference centre")  # fmt: skip
    elif not marketing and who.status == ContactStatus.ACTIVE:
        contacts.set_status(session, who.contact_id, ContactStatus.UNSUBSCRIBED, source=SOURCE,
                            reason="unsubscribed in the preference centre")  # fmt: skip
        turned_off += 1
    if turned_off:
        session.add(Event(
            kind=EventKind.UNSUBSCRIBE, delivery_id=delivery_id, contact_id=who.contact_id,
            occurred_at=now or utcnow(), user_agent=user_agent[:500],
            detail={"scope": "preferences", "marketing": marketing,
                    "kinds_off": sorted(set(choosable) - wanted)},
        ))  # fmt: skip
    return preferences(session, delivery_id)


def _turn_off(session: Session, contact_id: int, kinds: list[str], *, source: str) -> int:
    """Record the kinds as turned off; return how many were on."""
    if not kinds:
        return 0
    stmt = insert_ignoring_duplicates(session, KindOptOut).values(
        [{"contact_id": contact_id, "kind": kind, "source": source, "created_at": utcnow()}
         for kind in kinds]
    )  # fmt: skip
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return int(getattr(result, "rowcount", 0) or 0)


def _turn_on(session: Session, contact_id: int, kinds: list[str]) -> int:
    if not kinds:
        return 0
    result = session.execute(
        delete(KindOptOut).where(KindOptOut.contact_id == contact_id, KindOptOut.kind.in_(kinds))
    )
    return int(getattr(result, "rowcount", 0) or 0)
