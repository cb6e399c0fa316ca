"""Letters, their immutable versions and locale variants, approvals, layouts and links."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, event, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from campaigns.db import Base, created_at, intpk, utcnow
from campaigns.errors import ValidationError

if TYPE_CHECKING:
    from campaigns.models.accounts import User


class LetterKind(StrEnum):
    WELCOME = "welcome"
    EXPIRY = "expiry"
    RENEWAL = "renewal"
    POLICY = "policy"
    SURVEY = "survey"  # satisfaction survey
    OTHER = "other"


class LetterCategory(StrEnum):
    """Decides unsubscribe and frequency rules."""

    LEGAL = "legal"
    SERVICE = "service"
    MARKETING = "marketing"


class LetterNeeds(StrEnum):
    """What a letter version needs from its recipient's ledger row, found when it is saved."""

    CONTACT = "contact"  # the contact alone
    CONTRACT = "contract"  # a contract too: only segments that target contracts can have it


class LinkKind(StrEnum):
    REGULAR = "regular"
    RENEWAL = "renewal"


class Layout(Base):
    __tablename__ = "layouts"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200), unique=True)
    html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[created_at]


class Letter(Base):
    __tablename__ = "letters"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[LetterKind] = mapped_column(String(20))
    category: Mapped[LetterCategory] = mapped_column(String(20))
    # The locale of a version's own content; variants add others (see letters/translations).
    default_locale: Mapped[str] = mapped_column(String(20), default="en", server_default="en")
    # A survey letter's rating scale: "csat" (1–5) or "nps" (0–10).
    survey_scale: Mapped[str] = mapped_column(String(10), default="csat", server_default="csat")
    created_at: Mapped[created_at]

    versions: Mapped[list[LetterVersion]] = relationship(
        back_populates="letter", order_by="LetterVersion.number"
    )


class LetterVersion(Base):
    """One immutable revision of a letter; campaigns point at a version, never at a letter.

    Its own content is in the letter's default locale; `variants` hold the other locales.
    Changing anything, a translation included, saves a new version.
    """

    __tablename__ = "letter_versions"
    __table_args__ = (UniqueConstraint("letter_id", "number"),)

    id: Mapped[intpk]
    letter_id: Mapped[int] = mapped_column(ForeignKey("letters.id", ondelete="CASCADE"))
    number: Mapped[int]
    layout_id: Mapped[int | None] = mapped_column(ForeignKey("layouts.id"))
    subject: Mapped[str] = mapped_column(String(500))
    # The inbox's line after the subject; compiled into the HTML as a hidden first line.
    preheader: Mapped[str] = mapped_column(String(500), default="", server_default="")
    html_source: Mapped[str] = mapped_column(Text)
    text_source: Mapped[str | None] = mapped_column(Text)
    # The layout and body joined and CSS-inlined once, still a Jinja template.
    compiled_html: Mapped[str] = mapped_column(Text)
    compiled_text: Mapped[str] = mapped_column(Text)
    needs: Mapped[LetterNeeds] = mapped_column(
        String(20), default=LetterNeeds.CONTACT, server_default=LetterNeeds.CONTACT.value
    )
    # Set when saved (legal letters): a campaign may use it only once another user approved it.
    requires_approval: Mapped[bool] = mapped_column(default=False)
    # Unused since 0006 (decisions live in letter_approvals); kept because dropping a column
    # on SQLite rebuilds the table, which would cascade-delete the versions' links.
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    letter: Mapped[Letter] = relationship(back_populates="versions")
    layout: Mapped[Layout | None] = relationship()
    links: Mapped[list[Link]] = relationship(order_by="Link.position")
    variants: Mapped[list[LetterVariant]] = relationship(order_by="LetterVariant.locale")
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    decisions: Mapped[list[Approval]] = relationship(order_by="Approval.decided_at")

    @property
    def label(self) -> str:
        return f"{self.letter.name} v{self.number}"


class Link(Base):
    """A URL stored for a version; click tokens point here, never at a URL in the request."""

    __tablename__ = "links"
    __table_args__ = (UniqueConstraint("version_id", "position"),)

    id: Mapped[intpk]
    version_id: Mapped[int] = mapped_column(ForeignKey("letter_versions.id", ondelete="CASCADE"))
    position: Mapped[int]
    url: Mapped[str] = mapped_column(Text)
    kind: Mapped[LinkKind] = mapped_column(String(20), default=LinkKind.REGULAR)


class LetterVariant(Base):
    """A version's content in another locale; immutable like the version that carries it."""

    __tablename__ = "letter_variants"
    __table_args__ = (UniqueConstraint("version_id", "locale"),)

    id: Mapped[intpk]
    version_id: Mapped[int] = mapped_column(ForeignKey("letter_versions.id", ondelete="CASCADE"))
    locale: Mapped[str] = mapped_column(String(20))  # "de", "de_CH"
    subject: Mapped[str] = mapped_column(String(500))
    preheader: Mapped[str] = mapped_column(String(500), default="")
    html_source: Mapped[str] = mapped_column(Text)
    text_source: Mapped[str | None] = mapped_column(Text)
    compiled_html: Mapped[str] = mapped_column(Text)
    compiled_text: Mapped[str] = mapped_column(Text)


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class Approval(Base):
    """A second user's decision on a version: approved, or rejected with a comment."""

    __tablename__ = "letter_approvals"

    id: Mapped[intpk]
    version_id: Mapped[int] = mapped_column(
        ForeignKey("letter_versions.id", ondelete="CASCADE"), index=True
    )
    # None only for the stock letters the demo data schedules (see embedded/demo.py).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[Decision] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User | None] = relationship()


_IMMUTABLE = (LetterVersion, LetterVariant, Link, Approval)


@event.listens_for(Session, "before_flush")
def _refuse_changes_in_place(session: Session, _context: Any, _instances: Any) -> None:
    # Saved content is what was approved and what the ledger says went out; a change must
    # be a new version. (Migration 0006 adds database triggers for raw SQL updates too.)
    for row in session.dirty:
        if isinstance(row, _IMMUTABLE) and _columns_changed(row):
            raise ValidationError(f"a saved {type(row).__name__} cannot be changed; save a new "
                               "version instead")  # fmt: skip


def _columns_changed(row: Base) -> bool:
    state = inspect(row)
    return any(state.attrs[c.key].history.has_changes() for c in state.mapper.column_attrs)


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_updates(state: Any) -> None:
    if state.is_update and state.bind_mapper is not None:
        if state.bind_mapper.class_ in _IMMUTABLE:
            raise ValidationError(f"saved {state.bind_mapper.class_.__name__} rows cannot be "
                               "updated; save a new version instead")  # fmt: skip
