"""Admin users, API keys, login attempts (for throttling) and the audit trail."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, created_at, intpk, json_dict, utcnow


class Role(StrEnum):
    """Who may do what: viewers look, editors compose and send, admins manage users."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class User(Base):
    __tablename__ = "users"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(String(20), default=Role.VIEWER)
    active: Mapped[bool] = mapped_column(default=True)
    # Every admin session carries the generation it was made in; raising it (logout,
    # password change, disabling) ends all of the user's sessions at once.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[created_at]
    last_login_at: Mapped[datetime | None]


class ApiScope(StrEnum):
    """What an API key may do: read only, or read and write."""

    READ = "read"
    WRITE = "write"


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(255))
    scope: Mapped[ApiScope] = mapped_column(
        String(10), default=ApiScope.READ, server_default=ApiScope.READ.value
    )
    created_at: Mapped[created_at]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """A failed login, kept briefly so repeated failures can be throttled across processes."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_email_occurred_at", "email", "occurred_at"),)

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(320))
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[intpk]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(50), default="")
    target_id: Mapped[int | None]
    detail: Mapped[json_dict]
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
