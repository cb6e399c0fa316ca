"""The suppression list: addresses that are never mailed, whether or not a contact holds one."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from campaigns.accounts import audit
from campaigns.errors import ValidationError
from campaigns.models import Suppression
from campaigns.models.contacts import normalise_email


def suppress(
    session: Session, email: str, *, reason: str, source: str, user_id: int | None = None
) -> Suppression:
    """Put an address on the list (once; a second call keeps the first entry)."""
    address = normalise_email(email)
    entry = session.scalar(select(Suppression).where(Suppression.email == address))
    if entry is None:
        entry = Suppression(email=address, reason=reason, source=source, user_id=user_id)
        session.add(entry)
        session.flush()
        audit.record(session, "suppression.added", user_id=user_id, target_type="suppression",
                     target_id=entry.id, email=address, reason=reason)  # fmt: skip
    return entry


def unsuppress(session: Session, email: str, *, user_id: int | None) -> None:
    """Take an address off the list; refuse an address that is not on it."""
    address = normalise_email(email)
    result = session.execute(delete(Suppression).where(Suppression.email == address))
    if not getattr(result, "rowcount", 0):
        raise ValidationError(f"{address} is not on the suppression list", field="email")
    audit.record(session, "suppression.removed", user_id=user_id, target_type="suppression",
                 email=address)  # fmt: skip


def is_suppressed(session: Session, email: str) -> bool:
    address = normalise_email(email)
    return session.scalar(select(Suppression.id).where(Suppression.email == address)) is not None


def list_suppressions(
    session: Session, *, query: str = "", limit: int = 100
) -> tuple[list[Suppression], int]:
    """The newest entries (optionally those whose address starts with `query`) and the total."""
    stmt = select(Suppression)
    if query.strip():
        stmt = stmt.where(Suppression.email.startswith(query.strip().lower(), autoescape=True))
    rows = list(session.scalars(stmt.order_by(Suppression.id.desc()).limit(limit)))
    return rows, session.scalar(select(func.count(Suppression.id))) or 0
