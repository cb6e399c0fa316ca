"""Segments: named audiences, dynamic (a rule tree) or static (a member list)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, JSONType, created_at, intpk


class SegmentKind(StrEnum):
    DYNAMIC = "dynamic"
    STATIC = "static"


class SegmentTarget(StrEnum):
    """What a segment yields: contacts, or (contact, contract) pairs."""

    CONTACTS = "contacts"
    CONTRACTS = "contracts"


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[SegmentKind] = mapped_column(String(20), default=SegmentKind.DYNAMIC)
    target: Mapped[SegmentTarget] = mapped_column(
        String(20), default=SegmentTarget.CONTACTS, server_default=SegmentTarget.CONTACTS.value
    )
    # Validated rule tree (see campaigns.segments); never SQL typed by a user.
    rules: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[created_at]


class SegmentMember(Base):
    __tablename__ = "segment_members"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
