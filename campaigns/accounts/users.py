"""Admin users: creation, passwords, throttled logins and revocable sessions."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from campaigns.db import require, utcnow
from campaigns.errors import LoginThrottled, NotFound, ValidationError
from campaigns.models import LoginAttempt, Role, User
from campaigns.models.contacts import normalise_email

MIN_PASSWORD_LENGTH = 10
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 20

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def create_user(
    session: Session, email: str, password: str, *, role: Role = Role.VIEWER, name: str = ""
) -> User:
    """Create an admin user with an argon2-hashed password."""
    email = normalise_email(email)
    password_hash = _hash_password(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ValidationError(f"a user with e-mail {email} already exists", field="email")
    user = User(email=email, name=name, role=Role(role), password_hash=password_hash)
    session.add(user)
    session.flush()
    return user


def _hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    return _hasher.hash(password)


def authenticate(
    session: Session,
    email: str,
    password: str,
    *,
    remote_addr: str = "",
    now: datetime | None = None,
) -> User | None:
    """Return the user whose password matches, or None (and record the failure).

    Raises LoginThrottled, without checking the password, after too many recent failures
    for this e-mail address or from this network address.
    """
    now = now or utcnow()
    email = email.strip().lower()
    _serialise_attempts(session, email, remote_addr)
    _check_throttle(session, email, remote_addr, now)
    user = session.scalar(select(User).where(User.email == email, User.active.is_(True)))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        session.add(LoginAttempt(email=email, remote_addr=remote_addr, occurred_at=now))
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))
    return user


def _serialise_attempts(session: Session, email: str, remote_addr: str) -> None:
    """Make count-check-verify-record one step per e-mail and per network address.

    Without it, parallel guesses all count the same failures before any records its own
    and all get through. SQLite already runs one write transaction at a time (BEGIN
    IMMEDIATE); PostgreSQL takes transaction-scoped advisory locks, in a fixed order.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(f"login:{email}"), _lock_key(f"login-addr:{remote_addr}")})
    for key in keys:
        session.execute(select(func.pg_advisory_xact_lock(key)))


def _lock_key(name: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def _check_throttle(session: Session, email: str, remote_addr: str, now: datetime) -> None:
    since = now - THROTTLE_WINDOW
    recent = select(LoginAttempt).where(LoginAttempt.occurred_at > since)
    by_email = session.scalar(
        select(func.count()).select_from(recent.where(LoginAttempt.email == email).subquery())
    )
    by_addr = 0
    if remote_addr:
        by_addr = (
            session.scalar(
                select(func.count()).select_from(
                    recent.where(LoginAttempt.remote_addr == remote_addr).subquery()
                )
            )
            or 0
        )
    if (by_email or 0) >= MAX_FAILURES_PER_EMAIL or by_addr >= MAX_FAILURES_PER_ADDRESS:
        oldest = session.scalar(
            select(func.min(LoginAttempt.occurred_at)).where(
                LoginAttempt.occurred_at > since,
                or_(LoginAttempt.email == email, LoginAttempt.remote_addr == remote_addr),
            )
        )
        retry_after = max(1, int(((oldest or now) + THROTTLE_WINDOW - now).total_seconds()))
        minutes = -(-retry_after // 60)
        raise LoginThrottled(
            f"too many failed logins; try again in {minutes} minute(s)", retry_after=retry_after
        )


def end_sessions(session: Session, user_id: int) -> None:
    """Refuse every admin session of this user from now on (logout everywhere)."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
        .execution_options(synchronize_session=False)
    )


def change_own_password(session: Session, user_id: int, current: str, new: str) -> User:
    """Replace a password after checking the current one; other sessions end."""
    user = get_user(session, user_id)
    try:
        _hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise ValidationError("the current password is wrong", field="current") from None
    return set_password(session, user_id, new)


def set_password(session: Session, user_id: int, password: str) -> User:
    """Replace a user's password; every session made with the old one ends."""
    user = require(session, User, user_id, what="user")
    user.password_hash = _hash_password(password)
    user.session_generation += 1
    return user


def set_active(
    session: Session, user_id: int, active: bool, *, by_user_id: int | None = None
) -> User:
    """Enable or disable a user; disabling ends every session of theirs at once."""
    if not active and user_id == by_user_id:
        raise ValidationError("you cannot disable yourself; ask another admin", field="active")
    user = require(session, User, user_id, what="user")
    user.active = active
    if not active:
        user.session_generation += 1
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound(f"no active user #{user_id}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))
