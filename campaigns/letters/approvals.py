"""Approval of versions that need a second user: decisions, and whether a version may be used.

A version of a legal letter (see `authoring.needs_approval`) may be used by a campaign only
once another user than its author, an editor or an admin, approved it. The latest decision
counts: a rejection after an approval withdraws it (campaigns already scheduled keep it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from campaigns.accounts import audit
from campaigns.errors import PermissionDenied, ValidationError
from campaigns.letters import authoring
from campaigns.models import Approval, Decision, LetterVersion, Role, User


@dataclass(frozen=True)
class Status:
    """Where a version stands: needs no approval, awaits one, approved or rejected."""

    state: str  # "not needed" | "awaiting approval" | "approved" | "rejected"
    decision: Approval | None = None

    @property
    def usable(self) -> bool:
        return self.state in ("not needed", "approved")


def status(version: LetterVersion) -> Status:
    """The version's standing, from its latest decision."""
    if not version.requires_approval:
        return Status("not needed")
    latest = max(version.decisions, key=lambda d: (d.decided_at, d.id), default=None)
    if latest is None:
        return Status("awaiting approval")
    return Status(str(latest.decision), latest)


def approve(session: Session, version_id: int, *, user_id: int, comment: str = "") -> Approval:
    """Approve a version as a second user; the author cannot approve their own."""
    return _decide(session, version_id, user_id=user_id, decision=Decision.APPROVED,
                   comment=comment)  # fmt: skip


def reject(session: Session, version_id: int, *, user_id: int, comment: str) -> Approval:
    """Reject a version, saying why (the comment is kept and shown to the author)."""
    if not comment.strip():
        raise ValidationError("say why the version is rejected, so its author can fix it",
                              field="comment")  # fmt: skip
    return _decide(session, version_id, user_id=user_id, decision=Decision.REJECTED,
                   comment=comment)  # fmt: skip


def _decide(
    session: Session, version_id: int, *, user_id: int, decision: Decision, comment: str
) -> Approval:
    version = authoring.get_version(session, version_id)
    user = session.get(User, user_id)
    if user is None or not user.active or not Role(user.role).allows(Role.EDITOR):
        raise PermissionDenied("only an editor or an admin may approve or reject a version")
    if not version.requires_approval:
        raise ValidationError(f"{version.label} needs no approval: it is not a legal letter",
                              field="decision")  # fmt: skip
    if version.created_by_id == user_id:
        raise PermissionDenied(f"you wrote {version.label}: another editor or admin must "
                               f"{'approve' if decision == Decision.APPROVED else 'review'} "
                               "it")  # fmt: skip
    approval = Approval(version_id=version.id, user_id=user_id, decision=decision,
                        comment=comment.strip()[:5000])  # fmt: skip
    session.add(approval)
    session.flush()
    audit.record(session, f"letter_version.{decision}", user_id=user_id,
                 target_type="letter_version", target_id=version.id, letter=version.label,
                 comment=approval.comment)  # fmt: skip
    session.expire(version, ["decisions"])
    return approval


def check_usable(version: LetterVersion) -> None:
    """Refuse a version a campaign may not use yet, saying what to do."""
    why = why_not_usable(version)
    if why:
        raise ValidationError(why, field="letter_version_id")


def why_not_usable(version: LetterVersion) -> str | None:
    """Why a campaign may not use this version (None when it may)."""
    standing = status(version)
    if standing.usable:
        return None
    if standing.state == "rejected" and standing.decision is not None:
        return (f"{version.label} was rejected ({standing.decision.comment}); save a new "
                "version and have it approved")  # fmt: skip
    return (f"{version.label} is a legal letter and awaits approval: another editor or admin "
            "than its author must approve it on the letter's page")  # fmt: skip


def usability(session: Session, versions: Iterable[LetterVersion]) -> dict[int, str | None]:
    """For each version, why a campaign may not use it (None when it may)."""
    ids = [v.id for v in versions]
    loaded = session.scalars(
        select(LetterVersion).where(LetterVersion.id.in_(ids))
        .options(selectinload(LetterVersion.decisions))
    )  # fmt: skip
    return {version.id: why_not_usable(version) for version in loaded}


@dataclass(frozen=True)
class DecisionRow:
    """One decision as the letter's page shows it."""

    version_number: int
    decision: str
    user: str
    comment: str
    decided_at: str


def decisions(session: Session, letter_id: int) -> list[DecisionRow]:
    """Every decision on the letter's versions, newest first: who decided which, when."""
    query = (
        select(Approval, LetterVersion.number, User.name, User.email)
        .join(LetterVersion, LetterVersion.id == Approval.version_id)
        .outerjoin(User, User.id == Approval.user_id)
        .where(LetterVersion.letter_id == letter_id)
        .order_by(Approval.decided_at.desc(), Approval.id.desc())
    )
    return [
        DecisionRow(
            version_number=number,
            decision=str(a.decision),
            user=name or email or "the demo data (stock letter)",
            comment=a.comment,
            decided_at=f"{a.decided_at:%Y-%m-%d %H:%M}",
        )  # fmt: skip
        for a, number, name, email in session.execute(query)
    ]
