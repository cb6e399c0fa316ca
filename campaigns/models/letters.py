"""Letters, their immutable versions, the layouts they render into, and their links."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaigns.db import Base, created_at, intpk


class LetterKind(StrEnum):
    WELCOME = "welcome"
    EXPIRY = "expiry"
    RENEWAL = "renewal"
    POLICY = "policy"
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
    created_at: Mapped[created_at]

    versions: Mapped[list[LetterVersion]] = relationship(
        back_populates="letter", order_by="LetterVersion.number"
    )


class LetterVersion(Base):
    """One immutable revision of a letter; campaigns point at a version, never at a letter."""

    __tablename__ = "letter_versions"
    __table_args__ = (UniqueConstraint("letter_id", "number"),)

    id: Mapped[intpk]
    letter_id: Mapped[int] = mapped_column(ForeignKey("letters.id", ondelete="CASCADE"))
    number: Mapped[int]
    layout_id: Mapped[int | None] = mapped_column(ForeignKey("layouts.id"))
    subject: Mapped[str] = mapped_column(String(500))
    html_source: Mapped[str] = mapped_column(Text)
    text_source: Mapped[str | None] = mapped_column(Text)
    # The layout and body joined and CSS-inlined once, still a Jinja template.
    compiled_html: Mapped[str] = mapped_column(Text)
    compiled_text: Mapped[str] = mapped_column(Text)
    needs: Mapped[LetterNeeds] = mapped_column(
        String(20), default=LetterNeeds.CONTACT, server_default=LetterNeeds.CONTACT.value
    )
    requires_approval: Mapped[bool] = mapped_column(default=False)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    letter: Mapped[Letter] = relationship(back_populates="versions")
    layout: Mapped[Layout | None] = relationship()
    links: Mapped[list[Link]] = relationship(order_by="Link.position")

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
