"""Segment rule trees: the catalogue of fields and operators, and the schema that validates them.

A rule tree is JSON kept in `Segment.rules`:

    {"match": "all" | "any" | "none", "conditions": [node, ...]}

where a node is a nested group or one of these conditions:

    {"field": "contract.ends_on", "op": "in_next_days", "value": 30}
    {"field": "contact.attributes.industry", "type": "text", "op": "eq", "value": "retail"}
    {"aggregate": "active_contracts", "op": "gte", "value": 2}
    {"engagement": "opened", "letter_kind": "renewal", "days": 14}
    {"engagement": "received", "letter_category": "marketing", "days": 30, "at_least": 3}
    {"segment": 12}

`validate(raw)` returns the parsed tree or raises `ValidationError` whose message starts with
the place in the tree (`rules.conditions[2].value: ...`). Values are data: they are checked
against the field's type here and reach SQL only as bound parameters (see `compiler`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic import ValidationError as SchemaError
from pydantic_core import PydanticCustomError

from campaigns.errors import ValidationError
from campaigns.models import ContactStatus, ContractStatus, LetterCategory, LetterKind

MAX_DEPTH = 6  # groups inside groups
MAX_CONDITIONS = 200  # in the whole tree
MAX_LIST = 1000  # values of one `in` / `not in`
MAX_TEXT = 500
MAX_NUMBER = 10**12
MAX_DAYS = 36_500
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

Kind = Literal["text", "number", "date", "bool", "choice"]
AttributeType = Literal["text", "number", "date", "bool"]


@dataclass(frozen=True)
class FieldSpec:
    """A field a condition may name: where it lives, its type, and how the builder shows it."""

    name: str
    label: str
    kind: Kind
    nullable: bool = False
    choices: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        return self.name.split(".", 1)[0]


FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        FieldSpec("contact.email", "E-mail", "text"),
        FieldSpec("contact.first_name", "First name", "text"),
        FieldSpec("contact.last_name", "Last name", "text"),
        FieldSpec("contact.locale", "Locale", "text"),
        FieldSpec("contact.time_zone", "Time zone", "text"),
        FieldSpec("contact.status", "Contact status", "choice", choices=tuple(ContactStatus)),
        FieldSpec("contact.customer_since", "Customer since", "date", nullable=True),
        FieldSpec("contact.lifetime_spend", "Lifetime spend", "number"),
        FieldSpec("contact.external_id", "Contact external id", "text", nullable=True),
        FieldSpec("contract.product", "Product", "text"),
        FieldSpec("contract.plan", "Plan", "text"),
        FieldSpec("contract.status", "Contract status", "choice", choices=tuple(ContractStatus)),
        FieldSpec("contract.starts_on", "Contract starts on", "date"),
        FieldSpec("contract.ends_on", "Contract ends on", "date"),
        FieldSpec("contract.term", "Contract term number", "number"),
        FieldSpec("contract.price", "Contract price", "number"),
        FieldSpec("contract.currency", "Contract currency", "text"),
        FieldSpec("contract.service_points", "Service points", "number"),
        FieldSpec("contract.external_id", "Contract external id", "text", nullable=True),
    )
}
ATTRIBUTE_PREFIXES = ("contact.attributes.", "contract.attributes.")

# Operator -> (label, value shape). Shapes: one, list, pair, none, days, days_pair, years.
OPERATORS: dict[str, tuple[str, str]] = {
    "eq": ("equals", "one"),
    "ne": ("does not equal", "one"),
    "in": ("is one of", "list"),
    "not_in": ("is none of", "list"),
    "contains": ("contains", "one"),
    "starts_with": ("starts with", "one"),
    "lt": ("is less than", "one"),
    "lte": ("is at most", "one"),
    "gt": ("is more than", "one"),
    "gte": ("is at least", "one"),
    "between": ("is between", "pair"),
    "is_empty": ("is empty", "none"),
    "is_not_empty": ("is not empty", "none"),
    "in_next_days": ("is within the next N days", "days"),
    "in_last_days": ("was within the last N days", "days"),
    "days_ahead_between": ("is between N and M days ahead", "days_pair"),
    "days_ago_between": ("was between N and M days ago", "days_pair"),
    "more_than_days_ago": ("was more than N days ago", "days"),
    "more_than_years_ago": ("was more than N years ago", "years"),
    "less_than_years_ago": ("was less than N years ago", "years"),
}
_ORDER = ("lt", "lte", "gt", "gte", "between")
RELATIVE_OPS = ("in_next_days", "in_last_days", "days_ahead_between", "days_ago_between",
             "more_than_days_ago", "more_than_years_ago", "less_than_years_ago")  # fmt: skip
OPS_BY_KIND: dict[str, tuple[str, ...]] = {
    "text": ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_empty", "is_not_empty"),
    "choice": ("eq", "ne", "in", "not_in"),
    "number": ("eq", "ne", "in", "not_in", *_ORDER, "is_empty", "is_not_empty"),
    "date": ("eq", "ne", *_ORDER, *RELATIVE_OPS, "is_empty", "is_not_empty"),
    "bool": ("eq", "ne", "is_empty", "is_not_empty"),
}
AGGREGATES: dict[str, str] = {
    "contracts": "Number of contracts",
    "active_contracts": "Number of active contracts",
    "service_points": "Service points on active contracts",
    "renewals": "Number of renewals",
}
AGGREGATE_OPS = ("eq", "ne", *_ORDER)
ENGAGEMENTS: dict[str, str] = {
    "received": "Received",
    "opened": "Opened",
    "clicked": "Clicked",
    "renewed": "Renewed a contract",
}


def field_spec(name: str, declared: str | None) -> FieldSpec:
    """Return the spec of a field name, attributes typed by their declared type."""
    if name in FIELDS:
        return FIELDS[name]
    for prefix in ATTRIBUTE_PREFIXES:
        if name.startswith(prefix):
            key = name[len(prefix) :]
            if not ATTRIBUTE_KEY.match(key):
                raise _fail("field", "an attribute name is a letter or _ then letters, digits, _")
            if declared is None:
                raise _fail("type", "an attribute condition needs a type: text, number, date, bool")
            return FieldSpec(name, key, declared, nullable=True)  # type: ignore[arg-type]
    known = ", ".join([*FIELDS, "contact.attributes.<name>", "contract.attributes.<name>"])
    raise _fail("field", f"unknown field {name!r}; known fields: {known}")


def _fail(where: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("rule", "{message}", {"where": where, "message": message})


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FieldCondition(_Node):
    field: str = Field(max_length=100)
    type: AttributeType | None = None
    op: str
    value: Any = None

    @model_validator(mode="after")
    def _check(self) -> FieldCondition:
        spec = field_spec(self.field, self.type)
        if self.type is not None and spec.name in FIELDS:
            raise _fail("type", f"{self.field} has a fixed type; leave out 'type'")
        allowed = OPS_BY_KIND[spec.kind]
        if self.op not in allowed:
            raise _fail("op", f"{self.op!r} does not apply to {spec.kind} field "
                              f"{self.field}; use one of: {', '.join(allowed)}")  # fmt: skip
        check_value(self.value, OPERATORS[self.op][1], spec)
        return self

    @property
    def spec(self) -> FieldSpec:
        return field_spec(self.field, self.type)


class AggregateCondition(_Node):
    aggregate: Literal["contracts", "active_contracts", "service_points", "renewals"]
    op: Literal["eq", "ne", "lt", "lte", "gt", "gte", "between"]
    value: Any = None

    @model_validator(mode="after")
    def _check(self) -> AggregateCondition:
        check_value(self.value, OPERATORS[self.op][1], FieldSpec(self.aggregate, "", "number"))
        return self


class EngagementCondition(_Node):
    engagement: Literal["received", "opened", "clicked", "renewed"]
    days: int = Field(ge=1, le=MAX_DAYS)
    at_least: int = Field(default=1, ge=1, le=10_000)
    letter_id: int | None = Field(default=None, ge=1)
    # Strict mode would want enum members; JSON carries their values.
    letter_kind: LetterKind | None = Field(default=None, strict=False)
    letter_category: LetterCategory | None = Field(default=None, strict=False)

    @model_validator(mode="after")
    def _check(self) -> EngagementCondition:
        letter = (self.letter_id, self.letter_kind, self.letter_category)
        if self.engagement == "renewed" and any(v is not None for v in letter):
            raise _fail("engagement", "a renewal is not about one letter: leave out letter_*")
        return self


class SegmentCondition(_Node):
    segment: int = Field(ge=1)


class Group(_Node):
    match: Literal["all", "any", "none"] = "all"
    conditions: list[Node] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.conditions


def _tag(raw: Any) -> str | None:
    if isinstance(raw, _Node):  # serialising a parsed tree
        raw = {_TAGS[type(raw)]: None}
    if isinstance(raw, dict):
        for key in ("conditions", "field", "aggregate", "engagement", "segment"):
            if key in raw:
                return "~" + key
    return None


Node = Annotated[
    Annotated[Group, Tag("~conditions")]
    | Annotated[FieldCondition, Tag("~field")]
    | Annotated[AggregateCondition, Tag("~aggregate")]
    | Annotated[EngagementCondition, Tag("~engagement")]
    | Annotated[SegmentCondition, Tag("~segment")],
    Discriminator(
        _tag,
        custom_error_type="rule",
        custom_error_message="a condition needs one of: conditions (a group), field, "
        "aggregate, engagement, segment",
    ),
]
Group.model_rebuild()
_TAGS: dict[type, str] = {Group: "conditions", FieldCondition: "field",
                          AggregateCondition: "aggregate", EngagementCondition: "engagement",
                          SegmentCondition: "segment"}  # fmt: skip
Condition = FieldCondition | AggregateCondition | EngagementCondition | SegmentCondition


def check_value(value: Any, shape: str, spec: FieldSpec) -> None:
    """Refuse a value that does not fit the operator's shape and the field's type."""
    if shape == "none":
        if value is not None:
            raise _fail("value", "this operator takes no value")
        return
    if shape in ("days", "years"):
        _count(value, MAX_DAYS if shape == "days" else 200, "value")
        return
    if shape == "days_pair":
        _pair(value)
        _count(value[0], MAX_DAYS, "value[0]")
        _count(value[1], MAX_DAYS, "value[1]")
        if value[0] > value[1]:
            raise _fail("value", "the first number of days must not exceed the second")
        return
    if shape == "one":
        _scalar(value, spec, "value")
    elif shape == "list":
        if not isinstance(value, list) or not value:
            raise _fail("value", "must be a non-empty list")
        if len(value) > MAX_LIST:
            raise _fail("value", f"at most {MAX_LIST} values")
        for i, item in enumerate(value):
            _scalar(item, spec, f"value[{i}]")
    elif shape == "pair":
        _pair(value)
        _scalar(value[0], spec, "value[0]")
        _scalar(value[1], spec, "value[1]")
        if spec.kind != "date" or all(isinstance(v, str) for v in value):
            low, high = (float(v) if spec.kind == "number" else v for v in value)
            if low > high:
                raise _fail("value", "the first bound must not exceed the second")


def _pair(value: Any) -> None:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail("value", "must be a list of two values [from, to]")


def _count(value: Any, top: int, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise _fail(where, f"must be a whole number from 0 to {top}")


def _scalar(value: Any, spec: FieldSpec, where: str) -> None:
    kind = spec.kind
    if kind in ("text", "choice"):
        if not isinstance(value, str) or not value:
            raise _fail(where, "must be text (not empty)")
        if len(value) > MAX_TEXT:
            raise _fail(where, f"must be at most {MAX_TEXT} characters")
        if "\x00" in value or not _encodable(value):
            raise _fail(where, "contains a character that cannot be stored")
        if kind == "choice" and value not in spec.choices:
            raise _fail(where, f"{value!r} is not one of: {', '.join(spec.choices)}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, "must be a number")
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise _fail(where, f"must be a number between -{MAX_NUMBER} and {MAX_NUMBER}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _fail(where, "must be true or false")
    elif kind == "date":
        if isinstance(value, dict):
            days = value.get("days_from_today")
            if set(value) != {"days_from_today"} or isinstance(days, bool) \
                    or not isinstance(days, int) or abs(days) > MAX_DAYS:  # fmt: skip
                raise _fail(where, f"a relative date is {{'days_from_today': N}}, |N| ≤ {MAX_DAYS}")
            return
        if not isinstance(value, str) or not ISO_DATE.match(value):
            raise _fail(where, "must be a date like 2027-01-31")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise _fail(where, f"{value!r} is not a calendar date") from None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate(raw: Any) -> Group:
    """Parse a rule tree, or raise ValidationError naming the place of the first problem."""
    _check_shape(raw)
    try:
        return Group.model_validate(raw)
    except SchemaError as exc:
        error = exc.errors()[0]
        place = _place(error["loc"], (error.get("ctx") or {}).get("where"))
        raise ValidationError(f"{place}: {error['msg']}", field=place) from None


def _check_shape(raw: Any) -> None:
    """Refuse trees too deep or too large before the schema walks them."""
    if not isinstance(raw, dict):
        raise ValidationError("rules: must be an object like {'match': 'all', 'conditions': []}",
                              field="rules")  # fmt: skip
    count = 0
    stack: list[tuple[Any, str, int]] = [(raw, "rules", 1)]
    while stack:
        node, place, depth = stack.pop()
        if not isinstance(node, dict) or "conditions" not in node:
            count += 1
            continue
        if depth > MAX_DEPTH:
            raise ValidationError(f"{place}: groups nest deeper than {MAX_DEPTH} levels",
                                  field=place)  # fmt: skip
        children = node["conditions"]
        if isinstance(children, list):
            count += len(children)
            stack.extend((c, f"{place}.conditions[{i}]", depth + 1) for i, c in enumerate(children))
        if count > MAX_CONDITIONS:
            raise ValidationError(f"{place}: a segment holds at most {MAX_CONDITIONS} conditions",
                                  field=place)  # fmt: skip


def _place(loc: tuple[int | str, ...], where: str | None) -> str:
    place = "rules"
    for part in loc:
        if isinstance(part, int):
            place += f"[{part}]"
        elif not part.startswith("~"):
            place += f".{part}"
    if where:
        place += where if where.startswith("[") else f".{where}"
    return place


def referenced_segments(tree: Group) -> list[tuple[str, int]]:
    """Return (place, segment id) of every segment condition in the tree."""
    found: list[tuple[str, int]] = []

    def walk(group: Group, place: str) -> None:
        for i, node in enumerate(group.conditions):
            here = f"{place}.conditions[{i}]"
            if isinstance(node, Group):
                walk(node, here)
            elif isinstance(node, SegmentCondition):
                found.append((f"{here}.segment", node.segment))

    walk(tree, "rules")
    return found


def dump(tree: Group) -> dict[str, Any]:
    """Return the tree as the JSON kept in `Segment.rules`."""
    return tree.model_dump(mode="json", exclude_none=True)


def catalogue() -> dict[str, Any]:
    """Describe fields, operators, aggregates and engagements for the segment builder."""
    return {
        "fields": [
            {
                "name": f.name,
                "label": f.label,
                "kind": f.kind,
                "scope": f.scope,
                "choices": list(f.choices),
            }
            for f in FIELDS.values()
        ],  # fmt: skip
        "attribute_types": ["text", "number", "date", "bool"],
        "operators": {
            op: {"label": label, "shape": shape} for op, (label, shape) in OPERATORS.items()
        },  # fmt: skip
        "ops_by_kind": {kind: list(ops) for kind, ops in OPS_BY_KIND.items()},
        "aggregates": AGGREGATES,
        "aggregate_ops": list(AGGREGATE_OPS),
        "engagements": ENGAGEMENTS,
        "letter_kinds": list(LetterKind),
        "letter_categories": list(LetterCategory),
    }
