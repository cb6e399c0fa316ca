"""The audit trail: who did what to which thing, and when."""

from __future__ import annotations

from sqlalchemy.orm import Session

from campaigns.models import AuditEntry


def record(
    session: Session,
    action: str,
    *,
    user_id: int | None,
    target_type: str = "",
    target_id: int | None = None,
    **detail: object,
) -> None:
    """Record who did what to which thing."""
    session.add(
        AuditEntry(
            user_id=user_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail={k: str(v) for k, v in detail.items()},
        )  # fmt: skip
    )
