"""Segments answer what plain Python answers over the same generated data, on both databases.

Each example builds a small world (contacts, contracts, attributes, letters sent, opens and
clicks, renewals) inside one transaction, asks the product who matches a generated rule
tree, compares with the same question answered in Python, and rolls back.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.audience import rules, segments
from campaigns.db import Database
from campaigns.models import (
    Contact,
    Contract,
    Conversion,
    Delivery,
    Event,
    Letter,
    LetterCategory,
    LetterKind,
    LetterVersion,
    Segment,
    SegmentKind,
    SegmentTarget,
)

TODAY = date(2026, 6, 15)
MIDNIGHT = datetime.combine(TODAY, time.min, tzinfo=UTC)
BOUNDED = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- the generated world --------------------------------------------------------------------

TEXTS = ["Basic", "basic", "Bäsic", "Ba", "Pro", "x'; DROP TABLE contacts; --", "100%", "a_b",
         "ä", "%", "_"]  # fmt: skip
text_values = st.sampled_from(TEXTS) | st.text(alphabet="aBä%_'\" ", min_size=1, max_size=4)
stored_texts = st.just("") | text_values
day_offsets = st.sampled_from([0, 1, -1, 14, -14, 30, -30, 31, 60, -60, 180, -180, -181]) | \
    st.integers(-4500, 400)  # fmt: skip
cents = st.integers(-2000, 2_000_000).map(lambda c: Decimal(c).scaleb(-2))
numbers = st.integers(-5, 20) | cents.map(float)
attribute_values = st.none() | st.integers(-5, 20) | cents.map(float) | text_values | \
    st.booleans() | day_offsets.map(lambda d: (TODAY + timedelta(days=d)).isoformat()) | \
    st.sampled_from(["2026-13-45", "2026-06-15T10:00", "15.06.2026"])  # fmt: skip
attributes = st.dictionaries(st.sampled_from(["size", "vip", "joined", "tag"]), attribute_values,
                             max_size=4)  # fmt: skip
hours = st.integers(-45 * 24, 24)
LETTERS = [("Renewal offer", LetterKind.RENEWAL, LetterCategory.MARKETING),
           ("Expiry notice", LetterKind.EXPIRY, LetterCategory.SERVICE),
           ("Newsletter", LetterKind.OTHER, LetterCategory.MARKETING)]  # fmt: skip


@dataclass
class World:
    contacts: list[dict[str, Any]]
    contracts: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    letter_ids: list[int] = field(default_factory=list)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    world = World(contacts=[])
    for n in range(draw(st.integers(0, 6))):
        contact = {
            "id": n + 1, "email": f"{draw(st.sampled_from(['ann', 'bob', 'zoë']))}{n}@example.com",
            "first_name": draw(stored_texts), "last_name": draw(stored_texts),
            "locale": draw(st.sampled_from(["en", "de", "fr"])), "time_zone": "UTC",
            "status": draw(st.sampled_from(["active", "unsubscribed", "bounced"])),
            "customer_since": draw(st.none() | day_offsets.map(lambda d: TODAY + timedelta(d))),
            "lifetime_spend": draw(cents),
            "external_id": draw(st.none() | text_values.map(lambda t, n=n: f"{t}{n}")),
            "attributes": draw(attributes), "erased": draw(st.sampled_from([False] * 3 + [True])),
        }  # fmt: skip
        world.contacts.append(contact)
        for _ in range(draw(st.integers(0, 3))):
            starts = TODAY + timedelta(days=draw(day_offsets))
            world.contracts.append({
                "id": len(world.contracts) + 1, "contact_id": contact["id"],
                "product": draw(stored_texts), "plan": draw(stored_texts),
                "status": draw(st.sampled_from(["active", "expired", "cancelled"])),
                "starts_on": starts, "ends_on": TODAY + timedelta(days=draw(day_offsets)),
                "term": draw(st.integers(1, 4)), "price": draw(cents),
                "currency": draw(st.sampled_from(["EUR", "USD"])),
                "service_points": draw(st.integers(0, 5)),
                "attributes": draw(attributes), "external_id": draw(
                    st.none() | text_values.map(lambda t: f"{t}#{len(world.contracts)}")),
            })  # fmt: skip
        for _ in range(draw(st.integers(0, 3))):
            delivery = {
                "id": len(world.deliveries) + 1, "contact_id": contact["id"],
                "letter": draw(st.integers(0, 2)),
                "state": draw(st.sampled_from(["sent", "sent", "failed", "queued"])),
                "sent_at": MIDNIGHT + timedelta(hours=draw(hours)),
            }  # fmt: skip
            world.deliveries.append(delivery)
            for _ in range(draw(st.integers(0, 2))):
                event = {
                    "contact_id": contact["id"],
                    "delivery_id": draw(st.just(delivery["id"]) | st.none()),
                    "kind": draw(st.sampled_from(["open", "click", "renewal_click", "bounce"])),
                    "is_machine": draw(st.booleans()),
                    "occurred_at": MIDNIGHT + timedelta(hours=draw(hours)),
                }  # fmt: skip
                # A letter bounces once (uq_events_delivery_feedback).
                if not (event["kind"] == "bounce" and event["delivery_id"] is not None
                        and any(e["kind"] == "bounce" and e["delivery_id"] == event["delivery_id"]
                                for e in world.events)):  # fmt: skip
                    world.events.append(event)
    for contract in world.contracts:
        if draw(st.integers(0, 3)) == 0:
            world.conversions.append({
                "contract_id": contract["id"],
                "occurred_at": MIDNIGHT + timedelta(hours=draw(hours)),
            })  # fmt: skip
    return world


@contextmanager
def stored(db: Database, world: World) -> Iterator[Session]:
    """Write the world in one transaction, yield the session, roll everything back."""
    session = db.sessions()
    try:
        versions = []
        for name, kind, category in LETTERS:
            letter = Letter(name=name, kind=kind, category=category)
            session.add(letter)
            session.flush()
            version = LetterVersion(letter_id=letter.id, number=1, subject="s", html_source="h",
                                    compiled_html="h", compiled_text="t")  # fmt: skip
            session.add(version)
            versions.append(version)
        session.flush()
        ids: dict[str, dict[int, int]] = {"contact": {}, "contract": {}, "delivery": {}}
        for c in world.contacts:
            row = Contact(**{k: v for k, v in c.items() if k not in ("id", "erased")},
                          erased_at=MIDNIGHT if c["erased"] else None)  # fmt: skip
            session.add(row)
            session.flush()
            ids["contact"][c["id"]] = row.id
        for k in world.contracts:
            row = Contract(**{**{x: v for x, v in k.items() if x != "id"},
                              "contact_id": ids["contact"][k["contact_id"]]})  # fmt: skip
            session.add(row)
            session.flush()
            ids["contract"][k["id"]] = row.id
        for d in world.deliveries:
            row = Delivery(contact_id=ids["contact"][d["contact_id"]], email="x@example.com",
                           letter_version_id=versions[d["letter"]].id, state=d["state"],
                           sent_at=d["sent_at"])  # fmt: skip
            session.add(row)
            session.flush()
            ids["delivery"][d["id"]] = row.id
        for e in world.events:
            delivery = e["delivery_id"] and ids["delivery"][e["delivery_id"]]
            session.add(Event(**{**e, "contact_id": ids["contact"][e["contact_id"]],
                                 "delivery_id": delivery}))  # fmt: skip
        for v in world.conversions:
            session.add(Conversion(
                contract_id=ids["contract"][v["contract_id"]], amount=Decimal("1"),
                currency="EUR", idempotency_key=f"k{id(v)}", occurred_at=v["occurred_at"],
            ))  # fmt: skip
        session.flush()
        # Ids in the database differ from the world's after earlier rolled-back examples.
        for c in world.contacts:
            c["db_id"] = ids["contact"][c["id"]]
        for k in world.contracts:
            k["db_id"] = ids["contract"][k["id"]]
        world.letter_ids = [v.letter_id for v in versions]
        yield session
    finally:
        session.rollback()
        session.close()


# -- the same questions in plain Python --------------------------------------------------------

ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def read(spec: rules.FieldSpec, row: dict[str, Any]) -> Any:
    name = spec.name.split(".", 1)[1]
    if not name.startswith("attributes."):
        value = row[name]
        return Decimal(str(value)) if spec.kind == "number" else value
    raw = row["attributes"].get(spec.label)
    if spec.kind == "text":
        return raw if isinstance(raw, str) else None
    if spec.kind == "number":
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
        return Decimal(str(raw)) if ok else None
    if spec.kind == "bool":
        return ("true" if raw else "false") if isinstance(raw, bool) else None
    return raw if isinstance(raw, str) and ISO.fullmatch(raw) else None  # date as ISO text


def value_of(raw: Any, spec: rules.FieldSpec) -> Any:
    if spec.kind == "number":
        return Decimal(str(raw))
    if spec.kind == "bool":
        return "true" if raw else "false"
    if spec.kind == "date":
        day = TODAY + timedelta(raw["days_from_today"]) if isinstance(raw, dict) else \
            date.fromisoformat(raw)  # fmt: skip
        return day.isoformat() if "attributes" in spec.name else day
    return raw


def years_ago(years: int) -> date:
    return TODAY.replace(year=TODAY.year - years)  # TODAY is no 29 February


def field_holds(cond: dict[str, Any], row: dict[str, Any]) -> bool:
    spec = rules.field_spec(cond["field"], cond.get("type"))
    v, op, raw = read(spec, row), cond["op"], cond.get("value")
    empty = v is None or (spec.kind == "text" and v == "")
    if op == "is_empty":
        return empty
    if op == "is_not_empty":
        return not empty
    if op in rules.RELATIVE_OPS:
        first, last = (raw, raw) if isinstance(raw, int) else raw
        low, high = {
            "in_next_days": (TODAY, TODAY + timedelta(first)),
            "in_last_days": (TODAY - timedelta(first), TODAY),
            "days_ahead_between": (TODAY + timedelta(first), TODAY + timedelta(last)),
            "days_ago_between": (TODAY - timedelta(last), TODAY - timedelta(first)),
            "more_than_days_ago": (None, TODAY - timedelta(first)),
            "more_than_years_ago": (None, years_ago(first)),
            "less_than_years_ago": (years_ago(first), None),
        }[op]
        if v is None:
            return False
        conv = (lambda d: d.isoformat()) if "attributes" in spec.name else (lambda d: d)
        if low is not None and high is not None:
            return conv(low) <= v <= conv(high)
        return v > conv(low) if low is not None else v < conv(high)
    if op == "ne":
        return v is None or v != value_of(raw, spec)
    if op == "not_in":
        return v is None or v not in [value_of(x, spec) for x in raw]
    if v is None:
        return False
    if op == "in":
        return v in [value_of(x, spec) for x in raw]
    if op == "between":
        return value_of(raw[0], spec) <= v <= value_of(raw[1], spec)
    b = value_of(raw, spec)
    tests: dict[str, Callable[[], bool]] = {
        "eq": lambda: v == b, "lt": lambda: v < b, "lte": lambda: v <= b, "gt": lambda: v > b,
        "gte": lambda: v >= b, "contains": lambda: fold(b) in fold(v),
        "starts_with": lambda: fold(v).startswith(fold(b)),
    }  # fmt: skip
    return tests[op]()


def fold(text: str) -> str:
    """A–Z as a–z, every other character as typed: how "contains" and "starts with" compare."""
    return text.translate(ASCII_LOWER)


ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def compare(n: Any, op: str, raw: Any) -> bool:
    n = Decimal(n)
    if op == "between":
        return Decimal(str(raw[0])) <= n <= Decimal(str(raw[1]))
    b = Decimal(str(raw))
    return {"eq": n == b, "ne": n != b, "lt": n < b, "lte": n <= b, "gt": n > b,
            "gte": n >= b}[op]  # fmt: skip


def contact_holds(cond: dict[str, Any], contact: dict[str, Any], world: World) -> bool:
    """Aggregates, engagement and contact fields: questions about the contact alone."""
    mine = [k for k in world.contracts if k["contact_id"] == contact["id"]]
    if "field" in cond:
        return field_holds(cond, contact)
    if "aggregate" in cond:
        active = [k for k in mine if k["status"] == "active"]
        mine_ids = {k["id"] for k in mine}
        n = {"contracts": len(mine), "active_contracts": len(active),
             "service_points": sum(k["service_points"] for k in active),
             "renewals": sum(1 for v in world.conversions if v["contract_id"] in mine_ids),
             }[cond["aggregate"]]  # fmt: skip
        return compare(n, cond["op"], cond["value"])
    start = datetime.combine(TODAY - timedelta(cond["days"]), time.min, tzinfo=UTC)

    def letter_fits(delivery_id: int) -> bool:
        (d,) = [d for d in world.deliveries if d["id"] == delivery_id]
        name, kind, category = LETTERS[d["letter"]]
        return (cond.get("letter_id") in (None, world.letter_ids[d["letter"]])
                and cond.get("letter_kind") in (None, kind)
                and cond.get("letter_category") in (None, category))  # fmt: skip

    kind = cond["engagement"]
    if kind == "received":
        n = sum(1 for d in world.deliveries
                if d["contact_id"] == contact["id"] and d["state"] == "sent"
                and d["sent_at"] >= start and letter_fits(d["id"]))  # fmt: skip
    elif kind == "renewed":
        mine_ids = {k["id"] for k in mine}
        n = sum(1 for v in world.conversions
                if v["contract_id"] in mine_ids and v["occurred_at"] >= start)  # fmt: skip
    else:
        kinds = ["open"] if kind == "opened" else ["click", "renewal_click"]
        n = len({e["delivery_id"] for e in world.events if e["contact_id"] == contact["id"]
                 and e["kind"] in kinds and not e["is_machine"] and e["occurred_at"] >= start
                 and e["delivery_id"] is not None and letter_fits(e["delivery_id"])})  # fmt: skip
    return n >= cond.get("at_least", 1)


def on_contract(node: dict[str, Any]) -> bool:
    return "field" in node and node["field"].startswith("contract.")


def combine(match: str, parts: list[bool]) -> bool:
    return all(parts) if match == "all" else any(parts) if match == "any" else not any(parts)


def pair_holds(group: dict[str, Any], contact: dict[str, Any], contract: dict[str, Any],
               world: World) -> bool:  # fmt: skip
    """The pairs reading: every contract condition is about this one contract."""
    parts = []
    for node in group["conditions"]:
        if "conditions" in node:
            parts.append(pair_holds(node, contact, contract, world))
        elif on_contract(node):
            parts.append(field_holds(node, contract))
        else:
            parts.append(contact_holds(node, contact, world))
    return combine(group.get("match", "all"), parts)


def contact_matches(group: dict[str, Any], contact: dict[str, Any], world: World) -> bool:
    """The contacts reading: one group's contract conditions are about one contract."""
    match = group.get("match", "all")
    parts = [contact_matches(n, contact, world) if "conditions" in n
             else contact_holds(n, contact, world)
             for n in group["conditions"] if not on_contract(n)]  # fmt: skip
    tests = [n for n in group["conditions"] if on_contract(n)]
    if tests:
        mine = [k for k in world.contracts if k["contact_id"] == contact["id"]]
        joined = all if match == "all" else any
        parts.append(any(joined(field_holds(t, k) for t in tests) for k in mine))
    return combine(match, parts)


def expected(world: World, tree: dict[str, Any], target: SegmentTarget) -> set[Any]:
    living = [c for c in world.contacts if not c["erased"]]
    if target == SegmentTarget.CONTACTS:
        return {c["db_id"] for c in living if contact_matches(tree, c, world)}
    return {(c["db_id"], k["db_id"]) for c in living for k in world.contracts
            if k["contact_id"] == c["id"] and pair_holds(tree, c, k, world)}  # fmt: skip


def answered(session: Session, tree: dict[str, Any], target: SegmentTarget) -> set[Any]:
    draft = Segment(id=0, name="draft", kind=SegmentKind.DYNAMIC, target=target, rules=tree)
    count = segments.count_members(session, draft, today=TODAY)
    if target == SegmentTarget.CONTACTS:
        where = segments.membership(draft, today=TODAY, session=session)
        found: set[Any] = set(session.scalars(select(Contact.id).where(where)))
    else:
        found = {tuple(row) for row in session.execute(
            segments.pairs(draft, today=TODAY, session=session))}  # fmt: skip
        # A contracts segment's contacts: those with at least one matching pair.
        where = segments.membership(draft, today=TODAY, session=session)
        assert set(session.scalars(select(Contact.id).where(where))) == {c for c, _ in found}
    assert count == len(found)
    return found


# -- generated conditions --------------------------------------------------------------------


def scalars_of(spec: rules.FieldSpec) -> st.SearchStrategy[Any]:
    if spec.kind == "choice":
        return st.sampled_from(spec.choices)
    if spec.kind == "number":
        return numbers
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "date":
        return day_offsets.map(lambda d: (TODAY + timedelta(d)).isoformat()) | \
            st.integers(-100, 100).map(lambda d: {"days_from_today": d})  # fmt: skip
    return text_values


@st.composite
def field_conditions(draw: st.DrawFn, ops: tuple[str, ...] | None = None,
                     kinds: tuple[str, ...] | None = None) -> dict[str, Any]:  # fmt: skip
    names = [n for n, f in rules.FIELDS.items() if kinds is None or f.kind in kinds]
    attribute = [f"{scope}.attributes.{key}" for scope in ("contact", "contract")
                 for key in ("size", "vip", "joined", "tag", "absent")]  # fmt: skip
    name = draw(st.sampled_from(names + attribute))
    declared = None
    if ".attributes." in name:
        declared = draw(st.sampled_from([k for k in ("text", "number", "date", "bool")
                                         if kinds is None or k in kinds]))  # fmt: skip
    spec = rules.field_spec(name, declared)
    allowed = [op for op in rules.OPS_BY_KIND[spec.kind] if ops is None or op in ops]
    if not allowed:
        return draw(field_conditions(ops, kinds))
    op = draw(st.sampled_from(allowed))
    shape = rules.OPERATORS[op][1]
    cond: dict[str, Any] = {"field": name, "op": op}
    if declared:
        cond["type"] = declared
    scalar = scalars_of(spec)
    if shape == "one":
        cond["value"] = draw(scalar)
    elif shape == "list":
        cond["value"] = draw(st.lists(scalar, min_size=1, max_size=3))
    elif shape == "pair":
        a, b = draw(scalar), draw(scalar)
        if spec.kind == "date":
            a, b = (TODAY + timedelta(draw(day_offsets))).isoformat(), \
                (TODAY + timedelta(draw(day_offsets))).isoformat()  # fmt: skip
        key = (lambda x: Decimal(str(x))) if spec.kind == "number" else (lambda x: x)
        cond["value"] = sorted([a, b], key=key)
    elif shape == "days":
        cond["value"] = draw(st.sampled_from([0, 1, 14, 30, 60]) | st.integers(0, 400))
    elif shape == "years":
        cond["value"] = draw(st.integers(0, 12))
    elif shape == "days_pair":
        cond["value"] = sorted(draw(st.lists(st.integers(0, 400), min_size=2, max_size=2)))
    return cond


aggregates = st.builds(
    lambda a, op, v, w: {
        "aggregate": a,
        "op": op,
        "value": sorted([v, w]) if op == "between" else v,
    },  # fmt: skip
    st.sampled_from(list(rules.AGGREGATES)),
    st.sampled_from(rules.AGGREGATE_OPS),
    st.integers(0, 4) | st.sampled_from([0.5, 1.5]),
    st.integers(0, 6),
)
engagements = st.builds(
    lambda kind, days, at_least, letter, letter_kind, category: {
        k: v
        for k, v in {
            "engagement": kind,
            "days": days,
            "at_least": at_least,
            "letter_id": letter,
            "letter_kind": letter_kind,
            "letter_category": category,
        }.items()
        if v is not None and not (kind == "renewed" and k.startswith("letter"))
    },  # fmt: skip
    st.sampled_from(list(rules.ENGAGEMENTS)),
    st.sampled_from([1, 14, 30]) | st.integers(1, 50),
    st.sampled_from([1, 1, 2, 3]),
    st.none() | st.sampled_from([1, 2, 3]),  # a place in LETTERS, made an id below
    st.none() | st.sampled_from(list(LetterKind)),
    st.none() | st.sampled_from(list(LetterCategory)),
)
targets = st.sampled_from(list(SegmentTarget))


def with_letter_ids(node: dict[str, Any], world: World) -> dict[str, Any]:
    if "conditions" in node:
        return {**node, "conditions": [with_letter_ids(n, world) for n in node["conditions"]]}
    if node.get("letter_id") is not None:
        return {**node, "letter_id": world.letter_ids[node["letter_id"] - 1]}
    return node


def trees(leaves: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    matches = st.sampled_from(["all", "any", "none"])
    return st.recursive(
        st.builds(
            lambda m, c: {"match": m, "conditions": c}, matches, st.lists(leaves, max_size=3)
        ),  # fmt: skip
        lambda inner: st.builds(
            lambda m, c: {"match": m, "conditions": c},
            matches,
            st.lists(inner | leaves, max_size=3),
        ),  # fmt: skip
        max_leaves=6,
    )


def check(db: Database, world: World, tree: dict[str, Any], target: SegmentTarget) -> None:
    tree = rules.dump(rules.validate(tree))  # what a saved segment holds
    with stored(db, world) as session:
        tree = with_letter_ids(tree, world)
        assert answered(session, tree, target) == expected(world, tree, target), tree


# -- the properties ----------------------------------------------------------------------------


@BOUNDED
@given(world=worlds(), cond=field_conditions(), target=targets)
def test_every_operator_on_every_field_answers_as_python_does(
    db: Database, world: World, cond: dict[str, Any], target: SegmentTarget
) -> None:
    check(db, world, {"match": "all", "conditions": [cond]}, target)


@BOUNDED
@given(world=worlds(), cond=field_conditions(ops=rules.RELATIVE_OPS), target=targets,
       negate=st.booleans())  # fmt: skip
def test_relative_dates_answer_as_python_does(
    db: Database, world: World, cond: dict[str, Any], target: SegmentTarget, negate: bool
) -> None:
    check(db, world, {"match": "none" if negate else "all", "conditions": [cond]}, target)


@BOUNDED
@given(world=worlds(), cond=aggregates, target=targets, negate=st.booleans())
def test_aggregates_answer_as_python_does(
    db: Database, world: World, cond: dict[str, Any], target: SegmentTarget, negate: bool
) -> None:
    check(db, world, {"match": "none" if negate else "all", "conditions": [cond]}, target)


@BOUNDED
@given(world=worlds(), cond=engagements, target=targets, negate=st.booleans())
def test_engagement_answers_as_python_does(
    db: Database, world: World, cond: dict[str, Any], target: SegmentTarget, negate: bool
) -> None:
    check(db, world, {"match": "none" if negate else "all", "conditions": [cond]}, target)


@BOUNDED
@given(world=worlds(), tree=trees(field_conditions(kinds=("choice", "date", "number")) |
                                  aggregates | engagements), target=targets)  # fmt: skip
def test_nested_groups_answer_as_python_does(
    db: Database, world: World, tree: dict[str, Any], target: SegmentTarget
) -> None:
    check(db, world, tree, target)
