"""Segments: rule trees validated as data and compiled to SQL, or static member lists.

A rule tree is `{"match": "all" | "any", "conditions": [condition or rule tree, ...]}`; a
condition is `{"field": "contact.status", "op": "eq", "value": "active"}`. Users never
write SQL: only the fields and operators below exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from campaigns.db import require, utcnow
from campaigns.errors import ValidationError
from campaigns.models import Contact, Contract, Segment, SegmentKind, SegmentMember

ALL_ACTIVE_CONTACTS: dict[str, Any] = {
    "match": "all",
    "conditions": [{"field": "contact.status", "op": "eq", "value": "active"}],
}

FIELDS: dict[str, tuple[InstrumentedAttribute[Any], type]] = {
    "contact.email": (Contact.email, str),
    "contact.first_name": (Contact.first_name, str),
    "contact.last_name": (Contact.last_name, str),
    "contact.locale": (Contact.locale, str),
    "contact.status": (Contact.status, str),
    "contact.customer_since": (Contact.customer_since, date),
    "contract.product": (Contract.product, str),
    "contract.plan": (Contract.plan, str),
    "contract.status": (Contract.status, str),
    "contract.ends_on": (Contract.ends_on, date),
    "contract.starts_on": (Contract.starts_on, date),
}

Op = Callable[[Any, Any], ColumnElement[bool]]
OPS: dict[str, Op] = {
    "eq": lambda col, v: col == v,
    "ne": lambda col, v: col != v,
    "in": lambda col, v: col.in_(v),
    "contains": lambda col, v: col.contains(v, autoescape=True),
    "starts_with": lambda col, v: col.startswith(v, autoescape=True),
    "lt": lambda col, v: col < v,
    "lte": lambda col, v: col <= v,
    "gt": lambda col, v: col > v,
    "gte": lambda col, v: col >= v,
}
MAX_DEPTH = 5


def compile_rules(rules: dict[str, Any], *, today: date | None = None) -> ColumnElement[bool]:
    """Turn a validated rule tree into a WHERE clause over `contacts`."""
    return _compile(rules, today or utcnow().date(), depth=0, path="rules")


def _compile(node: Any, today: date, *, depth: int, path: str) -> ColumnElement[bool]:
    if not isinstance(node, dict):
        raise ValidationError(f"{path} must be an object")
    if "conditions" in node:
        if depth >= MAX_DEPTH:
            raise ValidationError(f"{path}: rules nest deeper than {MAX_DEPTH} levels")
        match = node.get("match", "all")
        if match not in ("all", "any"):
            raise ValidationError(f"{path}.match must be 'all' or 'any', not {match!r}")
        items = node["conditions"]
        if not isinstance(items, list):
            raise ValidationError(f"{path}.conditions must be a list")
        parts = [
            _compile(c, today, depth=depth + 1, path=f"{path}.conditions[{i}]")
            for i, c in enumerate(items)
        ]
        if not parts:
            return true() if match == "all" else false()
        return and_(*parts) if match == "all" else or_(*parts)
    return _condition(node, today, path)


def _condition(node: dict[str, Any], today: date, path: str) -> ColumnElement[bool]:
    field = node.get("field")
    if field not in FIELDS:
        known = ", ".join(sorted(FIELDS))
        raise ValidationError(f"{path}.field {field!r} is unknown; use one of: {known}")
    op = node.get("op")
    if op not in OPS:
        raise ValidationError(f"{path}.op {op!r} is unknown; use one of: {', '.join(OPS)}")
    column, kind = FIELDS[field]
    value = _value(node.get("value"), kind, op, today, f"{path}.value")
    clause = OPS[op](column, value)
    if field.startswith("contract."):
        # A contact matches when any of its contracts does.
        return exists(select(Contract.id).where(Contract.contact_id == Contact.id, clause))
    return clause


def _value(raw: Any, kind: type, op: str, today: date, path: str) -> Any:
    if op == "in":
        if not isinstance(raw, list) or not raw:
            raise ValidationError(f"{path} must be a non-empty list for 'in'")
        return [_value(v, kind, "eq", today, path) for v in raw]
    if kind is date:
        # Relative dates keep a segment true over time: {"days_from_today": 30}.
        if isinstance(raw, dict) and isinstance(raw.get("days_from_today"), int):
            return today + timedelta(days=raw["days_from_today"])
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise ValidationError(
                f"{path} must be a date (YYYY-MM-DD) or {{'days_from_today': N}}"
            ) from None
    if not isinstance(raw, str):
        raise ValidationError(f"{path} must be text")
    return raw


def create_segment(
    session: Session,
    name: str,
    *,
    rules: dict[str, Any] | None = None,
    kind: SegmentKind = SegmentKind.DYNAMIC,
    description: str = "",
) -> Segment:
    """Create a segment; dynamic rules are validated by compiling them once."""
    name = name.strip()
    if not name:
        raise ValidationError("a segment needs a name", field="name")
    if session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        raise ValidationError(f"a segment named {name!r} already exists", field="name")
    rules = rules if rules is not None else {}
    if kind == SegmentKind.DYNAMIC:
        compile_rules(rules)
    segment = Segment(name=name, kind=kind, rules=rules, description=description)
    session.add(segment)
    session.flush()
    return segment


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


def membership(segment: Segment, *, today: date | None = None) -> ColumnElement[bool]:
    """Return the WHERE clause over `contacts` that selects the segment's members."""
    if segment.kind == SegmentKind.STATIC:
        return Contact.id.in_(
            select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment.id)
        )
    return compile_rules(segment.rules, today=today)


def count_members(session: Session, segment: Segment) -> int:
    query = select(func.count(Contact.id)).where(membership(segment))
    return session.scalar(query) or 0


def list_members(session: Session, segment: Segment, *, limit: int = 50) -> list[Contact]:
    """The first members of a segment as it stands now, newest contacts first."""
    query = select(Contact).where(membership(segment)).order_by(Contact.id.desc()).limit(limit)
    return list(session.scalars(query))


def get_segment(session: Session, segment_id: int) -> Segment:
    return require(session, Segment, segment_id, what="segment")


def list_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name)))
