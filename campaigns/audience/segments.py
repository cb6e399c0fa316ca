"""Segments: create, change, delete, count and sample them; static ones from a list.

A dynamic segment keeps a rule tree (see `rules`), compiled to SQL by `compiler`; a static
one keeps a member list. A segment targets contacts, or (contact, contract) pairs: expiry
letters go per contract. Erased contacts are in no segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session, object_session

from campaigns.audience import compiler
from campaigns.audience import rules as trees
from campaigns.db import require, utcnow
from campaigns.errors import ValidationError
from campaigns.models import (
    Automation,
    Campaign,
    Contact,
    Contract,
    Delivery,
    Segment,
    SegmentKind,
    SegmentMember,
    SegmentTarget,
)
from campaigns.models.contacts import normalise_email

ALL_ACTIVE_CONTACTS: dict[str, Any] = {
    "match": "all",
    "conditions": [{"field": "contact.status", "op": "eq", "value": "active"}],
}


@dataclass(frozen=True)
class Member:
    """One row of a segment: a contact, and for a contracts segment the matching contract."""

    contact: Contact
    contract: Contract | None = None


@dataclass(frozen=True)
class Preview:
    """What a rule tree selects right now: how many, and the first few."""

    count: int
    sample: list[Member]


def check_rules(session: Session, raw: Any, *, segment_id: int | None = None) -> trees.Group:
    """Validate a rule tree and the segments it names (they exist; no cycle back to this one)."""
    tree = trees.validate(raw)
    for place, other_id in trees.referenced_segments(tree):
        path = _path_to(session, other_id, segment_id, place)
        if path:
            names = " → ".join(path)
            raise ValidationError(f"{place}: {names} — a segment may not include itself",
                                  field=place)  # fmt: skip
    return tree


def _path_to(session: Session, start: int, target: int | None, place: str) -> list[str]:
    """Return the names along references from `start` back to `target`, or [] if none."""
    first = session.get(Segment, start)
    if first is None:
        raise ValidationError(f"{place}: there is no segment #{start}", field=place)
    seen: set[int] = set()
    stack: list[tuple[Segment, list[str]]] = [(first, [first.name])]
    while stack:
        segment, trail = stack.pop()
        if segment.id == target:
            return ["this segment", *trail[:-1], "this segment"]
        if segment.id in seen or segment.kind != SegmentKind.DYNAMIC:
            continue
        seen.add(segment.id)
        try:
            tree = trees.validate(segment.rules)
        except ValidationError:
            continue
        for _place, other_id in trees.referenced_segments(tree):
            other = session.get(Segment, other_id)
            if other is not None:
                stack.append((other, [*trail, other.name]))
    return []


def create_segment(
    session: Session,
    name: str,
    *,
    rules: dict[str, Any] | None = None,
    kind: SegmentKind = SegmentKind.DYNAMIC,
    target: SegmentTarget = SegmentTarget.CONTACTS,
    description: str = "",
) -> Segment:
    """Create a segment; a dynamic one's rules are validated first."""
    name = _free_name(session, name, None)
    raw = rules if rules is not None else {"match": "all", "conditions": []}
    stored: dict[str, Any] = {}
    if kind == SegmentKind.DYNAMIC:
        stored = trees.dump(check_rules(session, raw))
    elif target != SegmentTarget.CONTACTS:
        raise ValidationError("a static segment lists contacts; choose the contacts target",
                              field="target")  # fmt: skip
    segment = Segment(name=name, kind=kind, target=SegmentTarget(target), rules=stored,
                      description=description.strip())  # fmt: skip
    session.add(segment)
    session.flush()
    return segment


def update_segment(
    session: Session,
    segment_id: int,
    *,
    name: str,
    rules: dict[str, Any] | None = None,
    target: SegmentTarget | None = None,
    description: str = "",
) -> Segment:
    """Rename, re-describe, and (for a dynamic segment) change the rules or the target."""
    segment = get_segment(session, segment_id)
    segment.name = _free_name(session, name, segment_id)
    segment.description = description.strip()
    if segment.kind == SegmentKind.DYNAMIC:
        if rules is not None:
            tree = check_rules(session, rules, segment_id=segment_id)
            segment.rules = trees.dump(tree)
        if target is not None:
            segment.target = SegmentTarget(target)
    elif target not in (None, SegmentTarget.CONTACTS):
        raise ValidationError("a static segment lists contacts", field="target")
    session.flush()
    return segment


def _free_name(session: Session, name: str, own_id: int | None) -> str:
    name = name.strip()
    if not name:
        raise ValidationError("a segment needs a name", field="name")
    if len(name) > 200:
        raise ValidationError("a segment name has at most 200 characters", field="name")
    taken = session.scalar(select(Segment.id).where(Segment.name == name))
    if taken is not None and taken != own_id:
        raise ValidationError(f"a segment named {name!r} already exists", field="name")
    return name


def delete_segment(session: Session, segment_id: int) -> None:
    """Delete a segment no campaign, automation or other segment uses."""
    segment = get_segment(session, segment_id)
    users = [f"campaign {n!r}" for n in session.scalars(
        select(Campaign.name).where(Campaign.segment_id == segment_id))]  # fmt: skip
    users += [f"automation {n!r}" for n in session.scalars(
        select(Automation.name).where(Automation.segment_id == segment_id))]  # fmt: skip
    if not users and session.scalar(select(Delivery.id).where(Delivery.segment_id == segment_id)):
        users.append("letters already sent (reports keep them)")
    users += [f"segment {s.name!r}" for s in list_segments(session)
              if s.kind == SegmentKind.DYNAMIC and s.id != segment_id
              and segment_id in {i for _, i in trees.referenced_segments(
                  trees.validate(s.rules))}]  # fmt: skip
    if users:
        raise ValidationError(f"segment {segment.name!r} is used by {', '.join(users)}")
    session.delete(segment)
    session.flush()


def create_static_segment(
    session: Session,
    name: str,
    *,
    lines: Iterable[str],
    by: Literal["email", "external_id"] = "email",
    description: str = "",
) -> tuple[Segment, list[str]]:
    """Create a static segment from a list of addresses or external ids.

    Return the segment and the lines that named no contact (or were no address at all).
    """
    wanted: dict[str, str] = {}
    unmatched: list[str] = []
    for line in lines:
        raw = line.strip()
        if not raw:
            continue
        try:
            key = normalise_email(raw) if by == "email" else raw
        except ValidationError:
            unmatched.append(raw)
            continue
        wanted.setdefault(key, raw)
    column = Contact.email if by == "email" else Contact.external_id
    found: dict[str, int] = {}
    keys = list(wanted)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        query = select(column, Contact.id).where(column.in_(chunk), Contact.erased_at.is_(None))
        found.update({str(k): i for k, i in session.execute(query)})
    unmatched += [raw for key, raw in wanted.items() if key not in found]
    segment = create_segment(session, name, kind=SegmentKind.STATIC, description=description)
    add_members(session, segment.id, list(found.values()))
    return segment, unmatched


def add_members(session: Session, segment_id: int, contact_ids: list[int]) -> None:
    """Add contacts to a static segment (already present ones are left as they are)."""
    segment = get_segment(session, segment_id)
    if segment.kind != SegmentKind.STATIC:
        raise ValidationError("only static segments have a member list")
    existing = set(session.scalars(
        select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id)
    ))  # fmt: skip
    session.add_all(
        SegmentMember(segment_id=segment_id, contact_id=cid) for cid in set(contact_ids) - existing
    )
    session.flush()


def _context(segment: Segment, session: Session | None, today: date | None) -> compiler.Context:
    session = session or object_session(segment)

    def load(segment_id: int) -> Segment | None:
        if session is None:
            raise ValidationError("segment references need a session to be resolved")
        return session.get(Segment, segment_id)

    return compiler.Context(today or utcnow().date(), load)


def membership(
    segment: Segment, *, today: date | None = None, session: Session | None = None
) -> ColumnElement[bool]:
    """Return the WHERE clause over `contacts` that selects the segment's members.

    For a contracts segment: the contacts with at least one matching contract.
    """
    ctx = _context(segment, session, today)
    return Contact.erased_at.is_(None) & compiler.segment_contacts(segment, ctx)


def pairs(
    segment: Segment, *, today: date | None = None, session: Session | None = None
) -> Select[int, int]:
    """Return `SELECT contact_id, contract_id` of a contracts segment's matching pairs."""
    if segment.target != SegmentTarget.CONTRACTS or segment.kind != SegmentKind.DYNAMIC:
        raise ValidationError(f"segment {segment.name!r} does not target contracts")
    return (
        select(Contact.id.label("contact_id"), Contract.id.label("contract_id"))
        .join_from(Contact, Contract, Contract.contact_id == Contact.id)
        .where(_pair_clause(segment, session, today))
    )


def _pair_clause(segment: Segment, session: Session | None, today: date | None) -> Any:
    ctx = _context(segment, session, today).entering(segment.id)
    tree = trees.validate(segment.rules)
    return Contact.erased_at.is_(None) & compiler.pair_clause(tree, Contract, ctx)


def targets_pairs(segment: Segment) -> bool:
    return segment.kind == SegmentKind.DYNAMIC and segment.target == SegmentTarget.CONTRACTS


def count_members(session: Session, segment: Segment, *, today: date | None = None) -> int:
    """Count contacts, or (contact, contract) pairs for a contracts segment."""
    if targets_pairs(segment):
        query = (
            select(func.count())
            .select_from(Contact)
            .join(Contract, Contract.contact_id == Contact.id)
            .where(_pair_clause(segment, session, today))
        )
    else:
        query = (
            select(func.count())
            .select_from(Contact)
            .where(membership(segment, today=today, session=session))
        )
    return session.scalar(query) or 0


def sample(
    session: Session, segment: Segment, *, limit: int = 20, today: date | None = None
) -> list[Member]:
    """The first rows of a segment as it stands now, newest contacts first."""
    if targets_pairs(segment):
        query = (
            select(Contact, Contract)
            .join(Contract, Contract.contact_id == Contact.id)
            .where(_pair_clause(segment, session, today))
            .order_by(Contact.id.desc(), Contract.ends_on, Contract.id)
            .limit(limit)
        )
        return [Member(contact, contract) for contact, contract in session.execute(query)]
    return [Member(c) for c in list_members(session, segment, limit=limit, today=today)]


def list_members(
    session: Session, segment: Segment, *, limit: int = 50, today: date | None = None
) -> list[Contact]:
    """The first member contacts of a segment as it stands now, newest first."""
    where = membership(segment, today=today, session=session)
    query = select(Contact).where(where).order_by(Contact.id.desc()).limit(limit)
    return list(session.scalars(query))


def preview(
    session: Session,
    raw: Any,
    *,
    target: SegmentTarget,
    segment_id: int | None = None,
    limit: int = 10,
    today: date | None = None,
) -> Preview:
    """Count and sample a rule tree that is not saved yet (the builder's live figures)."""
    tree = check_rules(session, raw, segment_id=segment_id)
    draft = Segment(id=segment_id or 0, name="(draft)", kind=SegmentKind.DYNAMIC,
                    target=SegmentTarget(target), rules=trees.dump(tree))  # fmt: skip
    return Preview(
        count_members(session, draft, today=today),
        sample(session, draft, limit=limit, today=today),
    )


def get_segment(session: Session, segment_id: int) -> Segment:
    return require(session, Segment, segment_id, what="segment")


def list_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name)))
