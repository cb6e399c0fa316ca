"""A sent letter shown again exactly as it went out: its version, its locale variant, and the
recipient's values its ledger row kept (`letters.context.snapshot`).

The view-online page and the acknowledgment page render it; the hash of the HTML the row
kept proves that what is shown is what was sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, joinedload, selectinload

from campaigns.config import Settings
from campaigns.delivery.sending import Draft, draft_of, letter_context
from campaigns.delivery.tokens import Tokens
from campaigns.errors import TokenInvalid
from campaigns.letters import context, rendering, translations
from campaigns.models import (
    DELIVERED_STATES,
    Campaign,
    Contact,
    Contract,
    Delivery,
    LetterCategory,
    LetterKind,
    LetterVersion,
)


@dataclass(frozen=True)
class Sent:
    """What one delivered letter was made of, read in a unit of work (render it outside)."""

    draft: Draft
    at: datetime | None  # when it was rendered; None for rows older than the snapshot
    kept_sha256: str | None
    letter: str
    kind: LetterKind
    category: LetterCategory
    version_id: int
    version_number: int
    contact_id: int
    sent_at: datetime | None


@dataclass(frozen=True)
class Copy:
    """A letter rendered again as sent, with the hash of its HTML."""

    sent: Sent
    subject: str
    html: str
    text: str
    html_sha256: str

    @property
    def exact(self) -> bool | None:
        """Whether this is provably the HTML that was sent (None: the row kept no hash)."""
        return None if self.sent.kept_sha256 is None else self.html_sha256 == self.sent.kept_sha256


def read(session: Session, delivery_id: int) -> Sent:
    """Read what a delivered letter was made of; TokenInvalid if it was never delivered."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.state not in DELIVERED_STATES:
        raise TokenInvalid("this link does not belong to a delivered letter")
    contact = session.get_one(Contact, delivery.contact_id)
    if contact.erased_at is not None:
        raise TokenInvalid("this letter's recipient was erased")
    version = session.get_one(
        LetterVersion, delivery.letter_version_id,
        options=[selectinload(LetterVersion.links), selectinload(LetterVersion.variants),
                 joinedload(LetterVersion.letter)],
    )  # fmt: skip
    contract = session.get(Contract, delivery.contract_id) if delivery.contract_id else None
    campaign = session.get(Campaign, delivery.campaign_id) if delivery.campaign_id else None
    draft = draft_of(delivery, contact, contract, version, campaign, 0)  # values: as kept
    content = translations.content_for(version, delivery.locale or contact.locale)
    draft = dataclasses.replace(draft, locale=content.locale, subject=content.subject,
                                html=content.html, text=content.text)  # fmt: skip
    at = None
    kept = delivery.detail.get("recipient")
    if kept:
        person, cover, renewal_target, at, matching = context.from_snapshot(kept)
        draft = dataclasses.replace(draft, contact=person, contract=cover,
                                    renewal_url=renewal_target, contracts=tuple(matching),
                                    service=dict(kept.get("service") or {}),
                                    points_granted=int(delivery.detail.get("points_granted")
                                                       or 0))  # fmt: skip
    return Sent(
        draft=draft, at=at, kept_sha256=delivery.detail.get("html_sha256"),
        letter=version.letter.name, kind=version.letter.kind, category=version.letter.category,
        version_id=version.id, version_number=version.number, contact_id=contact.id,
        sent_at=delivery.sent_at,
    )  # fmt: skip


def render(sent: Sent, *, settings: Settings, tokens: Tokens) -> Copy:
    """Render the letter again from what it was made of (outside any unit of work)."""
    fields = letter_context(sent.draft, settings=settings, tokens=tokens,
                            now=sent.at or sent.sent_at)  # fmt: skip
    draft = sent.draft
    rendered = rendering.render_version(subject=draft.subject, html=draft.html,
                                        text=draft.text, context=fields)  # fmt: skip
    digest = hashlib.sha256(rendered.html.encode()).hexdigest()
    return Copy(sent, rendered.subject, rendered.html, rendered.text, digest)
