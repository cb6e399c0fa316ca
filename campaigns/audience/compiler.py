"""Compile a validated rule tree to SQLAlchemy expressions; nothing typed reaches SQL as text.

Two readings of the same tree, chosen by the segment's target:

* **Pairs** (contracts target): the tree is a test of one (contact, contract) pair. Every
  contract condition, wherever it sits in the tree, is about that pair's contract: "active
  AND ends within 30 days" is one contract that is both; `any` asks that the contract (or
  the contact) meet at least one condition; `none` that it meets none of them.
* **Contacts** (contacts target): the tree is a test of a contact. The contract conditions
  written directly in one group are about one contract of the contact, the same for all of
  them: in an `all` group some contract meets them all; in `any` some contract meets at
  least one; in `none` no contract meets any of them ("has no active contract"). A nested
  group picks its own contract.

Aggregates, engagement and segment membership are about the contact in both readings.
Every condition is two-valued (an empty value makes a comparison false, never NULL), so
`none` negates exactly what the other groups assert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Select,
    and_,
    distinct,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import aliased
from sqlalchemy.orm.util import AliasedClass

from campaigns.audience import rules
from campaigns.audience.rule_sql import ATTRIBUTE_READERS, text_contains, text_starts_with
from campaigns.audience.rules import (
    AggregateCondition,
    EngagementCondition,
    FieldCondition,
    FieldSpec,
    Group,
    SegmentCondition,
)
from campaigns.errors import ValidationError
from campaigns.models import (
    Contact,
    Contract,
    ContractStatus,
    Conversion,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    Letter,
    LetterVersion,
    Segment,
    SegmentKind,
    SegmentMember,
    SegmentTarget,
)

ContractEntity = type[Contract] | AliasedClass[Contract]
# Numbers are compared as exact decimals on both databases.
NUMBER = Numeric(24, 6)


@dataclass(frozen=True)
class Context:
    """What compiling needs besides the tree: the day it is, and how to find other segments."""

    today: date
    load: Callable[[int], Segment | None]
    stack: tuple[int, ...] = ()

    def entering(self, segment_id: int) -> Context:
        return Context(self.today, self.load, (*self.stack, segment_id))


def segment_contacts(segment: Segment, ctx: Context) -> ColumnElement[bool]:
    """Return a test of `Contact`: is the contact a member (one matching pair is enough)?"""
    if segment.kind == SegmentKind.STATIC:
        return Contact.id.in_(
            select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment.id)
        )
    tree = rules.validate(segment.rules)
    ctx = ctx.entering(segment.id)
    if segment.target == SegmentTarget.CONTRACTS:
        contract = aliased(Contract)
        return exists(
            select(contract.id)
            .where(contract.contact_id == Contact.id, pair_clause(tree, contract, ctx))
            .correlate(Contact)
        )
    return contact_clause(tree, ctx)


def pair_clause(group: Group, contract: ContractEntity, ctx: Context) -> ColumnElement[bool]:
    """Return a test of (`Contact`, `contract`) for the pairs reading of the tree."""
    parts = []
    for node in group.conditions:
        if isinstance(node, Group):
            parts.append(pair_clause(node, contract, ctx))
        elif isinstance(node, FieldCondition) and node.spec.scope == "contract":
            parts.append(field_clause(node, contract, ctx.today))
        else:
            parts.append(_contact_node(node, ctx))
    return _combine(group.match, parts)


def contact_clause(group: Group, ctx: Context) -> ColumnElement[bool]:
    """Return a test of `Contact` for the contacts reading of the tree."""
    parts = []
    on_contract: list[FieldCondition] = []
    for node in group.conditions:
        if isinstance(node, Group):
            parts.append(contact_clause(node, ctx))
        elif isinstance(node, FieldCondition) and node.spec.scope == "contract":
            on_contract.append(node)
        else:
            parts.append(_contact_node(node, ctx))
    if on_contract:
        contract = aliased(Contract)
        tests = [field_clause(node, contract, ctx.today) for node in on_contract]
        # all: one contract meets them all; any / none: one contract meets one of them.
        joined = and_(*tests) if group.match == "all" else or_(*tests)
        mine = select(contract.id).where(contract.contact_id == Contact.id, joined)
        parts.append(exists(mine.correlate(Contact)))
    return _combine(group.match, parts)


def _combine(match: str, parts: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    if match == "all":
        return and_(true(), *parts)
    if match == "any":
        return or_(false(), *parts)
    return not_(or_(false(), *parts))


def _contact_node(node: rules.Node, ctx: Context) -> ColumnElement[bool]:
    if isinstance(node, FieldCondition):
        return field_clause(node, Contact, ctx.today)
    if isinstance(node, AggregateCondition):
        return aggregate_clause(node)
    if isinstance(node, EngagementCondition):
        return engagement_clause(node, ctx.today)
    if isinstance(node, SegmentCondition):
        return _segment_clause(node, ctx)
    raise TypeError(f"not a condition: {node!r}")  # pragma: no cover


def _segment_clause(node: SegmentCondition, ctx: Context) -> ColumnElement[bool]:
    if node.segment in ctx.stack:
        raise ValidationError(f"segment #{node.segment} includes itself", field="rules")
    other = ctx.load(node.segment)
    if other is None:
        raise ValidationError(f"segment #{node.segment} does not exist", field="rules")
    return segment_contacts(other, ctx)


# -- fields -----------------------------------------------------------------------------


def field_clause(node: FieldCondition, entity: Any, today: date) -> ColumnElement[bool]:
    """Return the test of one field condition on `entity` (Contact, or a contract entity)."""
    spec = node.spec
    if spec.name.split(".")[1] == "attributes":
        expr: Any = ATTRIBUTE_READERS[spec.kind](entity.attributes, spec.label)
    else:
        expr = getattr(entity, spec.name.split(".", 1)[1])
    op, value = node.op, node.value
    empty = expr.is_(None) if spec.nullable else false()
    if spec.kind == "text":
        empty = or_(empty, expr == "")
    if op == "is_empty":
        return empty
    if op == "is_not_empty":
        return not_(empty) if spec.kind == "text" else expr.is_not(None)
    if op == "ne":
        return _either_empty(spec, expr, expr != _bind(value, spec, today))
    if op == "not_in":
        return _either_empty(spec, expr, expr.not_in([_bind(v, spec, today) for v in value]))
    return _guard(spec, expr, _positive(op, expr, value, spec, today))


def _positive(op: str, expr: Any, value: Any, spec: FieldSpec, today: date) -> Any:
    if op in rules.RELATIVE_OPS:
        low, high = _relative(op, value, today)
        low_b, high_b = (_bind(d.isoformat(), spec, today) if d else None for d in (low, high))
        if low_b is not None and high_b is not None:
            return expr.between(low_b, high_b)
        return expr > low_b if low_b is not None else expr < high_b
    if op == "in":
        return expr.in_([_bind(v, spec, today) for v in value])
    if op == "between":
        return expr.between(_bind(value[0], spec, today), _bind(value[1], spec, today))
    bound = _bind(value, spec, today)
    if op == "contains":
        return text_contains(expr, bound)
    if op == "starts_with":
        return text_starts_with(expr, bound)
    comparisons = {"eq": expr.__eq__, "lt": expr.__lt__, "lte": expr.__le__,
                   "gt": expr.__gt__, "gte": expr.__ge__}  # fmt: skip
    return comparisons[op](bound)


def _relative(op: str, value: Any, today: date) -> tuple[date | None, date | None]:
    """Return (after, before) bounds: inclusive both when both are given, else strict."""
    days = timedelta(days=value if isinstance(value, int) else 0)
    if op == "in_next_days":
        return today, today + days
    if op == "in_last_days":
        return today - days, today
    if op == "days_ahead_between":
        return today + timedelta(days=value[0]), today + timedelta(days=value[1])
    if op == "days_ago_between":
        return today - timedelta(days=value[1]), today - timedelta(days=value[0])
    if op == "more_than_days_ago":
        return None, today - days
    if op == "more_than_years_ago":
        return None, years_before(today, value)
    return years_before(today, value), None  # less_than_years_ago


def years_before(day: date, years: int) -> date:
    """Return the same calendar day `years` earlier (29 February falls back to the 28th)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _bind(value: Any, spec: FieldSpec, today: date) -> Any:
    if spec.kind == "number":
        return literal(Decimal(str(value)), NUMBER)
    if spec.kind == "bool":
        return "true" if value else "false"
    if spec.kind == "date":
        if isinstance(value, dict):
            day = today + timedelta(days=value["days_from_today"])
        else:
            day = date.fromisoformat(value)
        # Attribute dates are compared as their ISO text (see rule_sql.typed_attribute).
        return day.isoformat() if spec.name.split(".")[1] == "attributes" else day
    return value


def _guard(spec: FieldSpec, expr: Any, test: Any) -> ColumnElement[bool]:
    # An empty value fails every positive test: FALSE rather than NULL, so `none` works.
    return and_(expr.is_not(None), test) if spec.nullable else test


def _either_empty(spec: FieldSpec, expr: Any, test: Any) -> ColumnElement[bool]:
    # "does not equal" and "is none of" take in empty values as well.
    return or_(expr.is_(None), test) if spec.nullable else test


# -- aggregates and engagement ---------------------------------------------------------------


def aggregate_clause(node: AggregateCondition) -> ColumnElement[bool]:
    """Return the test of one aggregate over the contact's contracts or renewals."""
    contract = aliased(Contract)
    mine = contract.contact_id == Contact.id
    active = contract.status == ContractStatus.ACTIVE.value
    if node.aggregate == "service_points":
        query = select(func.coalesce(func.sum(contract.service_points), 0)).where(mine, active)
        return _compare(query.correlate(Contact).scalar_subquery(), node.op, node.value)
    if node.aggregate == "renewals":
        query = (
            select(func.count(Conversion.id))
            .join(contract, contract.id == Conversion.contract_id)
            .where(mine)
        )
    elif node.aggregate == "active_contracts":
        query = select(func.count(contract.id)).where(mine, active)
    else:
        query = select(func.count(contract.id)).where(mine)
    return _count_test(query, node.op, node.value)


def _count_test(query: Select[Any], op: str, value: Any) -> ColumnElement[bool]:
    """Compare a count, as EXISTS / NOT EXISTS when that is what the comparison asks."""
    # Explicitly: the contact may sit several SELECTs out (a contracts segment's EXISTS).
    query = query.correlate(Contact)
    if isinstance(value, list):
        return _compare(query.scalar_subquery(), op, value)
    at_least_one = {("gte", 1), ("gt", 0)}
    if (op, value) in at_least_one or (op == "gte" and 0 < value < 1):
        return exists(query.with_only_columns(literal(1)))
    if (op, value) in {("eq", 0), ("lt", 1), ("lte", 0)}:
        return not_(exists(query.with_only_columns(literal(1))))
    return _compare(query.scalar_subquery(), op, value)


def _compare(expr: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "between":
        return expr.between(literal(Decimal(str(value[0])), NUMBER),
                            literal(Decimal(str(value[1])), NUMBER))  # fmt: skip
    bound = literal(Decimal(str(value)), NUMBER)
    comparisons = {"eq": expr.__eq__, "ne": expr.__ne__, "lt": expr.__lt__, "lte": expr.__le__,
                   "gt": expr.__gt__, "gte": expr.__ge__}  # fmt: skip
    return comparisons[op](bound)


def since(today: date, days: int) -> datetime:
    """Return the start of "the last N days": midnight UTC, N days before today."""
    return datetime.combine(today - timedelta(days=days), time.min, tzinfo=UTC)


def engagement_clause(node: EngagementCondition, today: date) -> ColumnElement[bool]:
    """Return the test of "received / opened / clicked / renewed … in the last N days"."""
    start = since(today, node.days)
    versions = None
    if node.letter_id or node.letter_kind or node.letter_category:
        versions = select(LetterVersion.id).join(Letter, Letter.id == LetterVersion.letter_id)
        if node.letter_id:
            versions = versions.where(Letter.id == node.letter_id)
        if node.letter_kind:
            versions = versions.where(Letter.kind == node.letter_kind.value)
        if node.letter_category:
            versions = versions.where(Letter.category == node.letter_category.value)
    if node.engagement == "received":
        delivery = aliased(Delivery)
        query = select(func.count(delivery.id)).where(
            delivery.contact_id == Contact.id,
            delivery.state == DeliveryState.SENT.value,
            delivery.sent_at >= start,
        )
        if versions is not None:
            query = query.where(delivery.letter_version_id.in_(versions))
    elif node.engagement == "renewed":
        contract = aliased(Contract)
        query = (
            select(func.count(Conversion.id))
            .join(contract, contract.id == Conversion.contract_id)
            .where(contract.contact_id == Contact.id, Conversion.occurred_at >= start)
        )
    else:
        kinds = [EventKind.OPEN.value] if node.engagement == "opened" else \
            [EventKind.CLICK.value, EventKind.RENEWAL_CLICK.value]  # fmt: skip
        event = aliased(Event)
        # Letters opened or clicked, each counted once; scanners and proxies do not count.
        query = select(func.count(distinct(event.delivery_id))).where(
            event.contact_id == Contact.id,
            event.kind.in_(kinds),
            event.is_machine.is_(False),
            event.occurred_at >= start,
            event.delivery_id.is_not(None),
        )
        if versions is not None:
            # Joined, not `delivery_id IN (…)`: PostgreSQL then reaches each event's letter
            # through the ledger's primary key instead of building the set of every delivery.
            delivery = aliased(Delivery)
            query = query.join(delivery, delivery.id == event.delivery_id).where(
                delivery.letter_version_id.in_(versions)
            )
    return _count_test(query, "gte", node.at_least)
