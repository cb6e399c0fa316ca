"""API keys: created and revoked by admins, hashed at rest, looked up by prefix, scoped.

A key reads `cmpk_<prefix>_<secret>`: the prefix (12 hex characters) is stored in clear so a
key can be found and shown in the admin; the secret is 256 random bits and only its hash is
kept. The whole key is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from campaigns.db import require, utcnow
from campaigns.errors import AuthenticationFailed, PermissionDenied, ValidationError
from campaigns.models import ApiKey, ApiScope, User

KEY_MARK = "cmpk_"
PREFIX_LENGTH = 12
# A key's last use is written at most once a minute: a busy CRM sync would otherwise turn
# every read into a write on the same row.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyRefused(AuthenticationFailed):
    """The API key is missing, malformed, unknown or revoked."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling the API: the key, the admin who created it, and what it may do."""

    key_id: int
    user_id: int
    scope: ApiScope

    def require(self, needed: ApiScope) -> None:
        """Raise PermissionDenied unless this key's scope allows `needed`."""
        if needed == ApiScope.WRITE and self.scope != ApiScope.WRITE:
            raise PermissionDenied("this API key may only read; create a key with write scope")


def hash_key(key: str) -> str:
    """Return the stored form of a key.

    One SHA-256, not argon2: a password is guessable and needs a slow hash, but a key holds
    256 random bits, which no amount of hashing speed makes guessable, while argon2 on every
    API request would cost ~50 ms of CPU each. No salt either, for the same reason.
    """
    return "sha256$" + hashlib.sha256(key.encode()).hexdigest()


# Compared against when no key has the presented prefix, so both paths do the same work.
_DUMMY_HASH = hash_key(KEY_MARK + "0" * PREFIX_LENGTH + "_" + "0" * 43)


def create_key(session: Session, name: str, *, scope: ApiScope, user_id: int) -> tuple[ApiKey, str]:
    """Create a key for the admin `user_id`; return it and its secret (shown only now)."""
    name = name.strip()
    if not name:
        raise ValidationError("give the key a name, e.g. the system that will use it", field="name")
    if len(name) > 200:
        raise ValidationError("the name is longer than 200 characters", field="name")
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        user_id=user_id, name=name, prefix=prefix, key_hash=hash_key(secret), scope=ApiScope(scope)
    )
    session.add(key)
    session.flush()
    return key, secret


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, live ones first, newest first."""
    query = select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: int, *, now: datetime | None = None) -> ApiKey:
    """Revoke a key for good; revoking it again changes nothing."""
    key = require(session, ApiKey, key_id, what="API key")
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
    return key


def authenticate(session: Session, presented: str, *, now: datetime | None = None) -> Caller:
    """Return the caller a presented key belongs to, or raise ApiKeyRefused.

    The key is found by its prefix and its hash compared in constant time; an unknown prefix
    is compared against a dummy hash so it costs the same. Keys of disabled admins and
    revoked keys are refused.
    """
    now = now or utcnow()
    prefix = _prefix_of(presented)
    row = None
    if prefix is not None:
        row = session.execute(
            select(ApiKey.id, ApiKey.user_id, ApiKey.scope, ApiKey.key_hash, ApiKey.revoked_at,
                   ApiKey.last_used_at, User.active)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.prefix == prefix)
        ).one_or_none()  # fmt: skip
    stored = row.key_hash if row is not None else _DUMMY_HASH
    matches = hmac.compare_digest(hash_key(presented).encode(), stored.encode())
    if row is None or not matches:
        raise ApiKeyRefused("the API key is not valid; check it or ask an admin for a new one")
    if row.revoked_at is not None:
        raise ApiKeyRefused("this API key was revoked; ask an admin for a new one")
    if not row.active:
        raise ApiKeyRefused("the admin who created this API key is disabled")
    if row.last_used_at is None or row.last_used_at <= now - LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests of one key write the row once.
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == row.id)
            .where(or_(ApiKey.last_used_at.is_(None),
                       ApiKey.last_used_at <= now - LAST_USED_RESOLUTION))
            .values(last_used_at=now)
        )  # fmt: skip
    return Caller(key_id=row.id, user_id=row.user_id, scope=ApiScope(row.scope))


def _prefix_of(presented: str) -> str | None:
    if not presented.startswith(KEY_MARK) or len(presented) > 200:
        return None
    prefix = presented[len(KEY_MARK) : len(KEY_MARK) + PREFIX_LENGTH]
    if presented[len(KEY_MARK) + PREFIX_LENGTH : len(KEY_MARK) + PREFIX_LENGTH + 1] != "_":
        return None
    return prefix
