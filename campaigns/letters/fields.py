"""Merge fields: the undefined that refuses a hole, and what a letter needs from its context.

A letter never goes out with a blank where a value belongs. Printing, comparing or looping
over a field the context does not hold raises, with the field named; only tests stay quiet
(`{% if contract %}`, `contract is defined`, `|default(…)`), since they are how an author
writes a letter that works without a value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.runtime import StrictUndefined, missing

from campaigns.models.letters import LetterNeeds

# Top-level merge fields that come from the recipient's contract: a letter using either
# outside a test of them needs a ledger row that carries a contract.
CONTRACT_FIELDS = frozenset({"contract", "renewal_url"})


class MissingField(StrictUndefined):
    """A merge field with no value: false in a test, an error anywhere it would print.

    Reading through it (`contract.product` when there is no contract) gives itself, so the
    error names the field that is missing rather than the attribute read from it.
    """

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]
        return False

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, _name: Any) -> MissingField:  # type: ignore[override]
        return self

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name, obj = self._undefined_name, self._undefined_obj
        if obj is missing:
            return f"{{{{ {name} }}}} is not a merge field"
        if isinstance(obj, Fields):
            if obj.path.endswith(".attributes"):
                return f"{{{{ {obj.path}.{name} }}}} is not set for this recipient"
            return f"{{{{ {obj.path}.{name} }}}} is not a merge field"
        return f"{{{{ {name} }}}} is not available here"


def missing_field(name: str, why: str) -> MissingField:
    """A top-level merge field this recipient has no value for, and why."""
    return MissingField(hint=f"{{{{ {name} }}}} is missing: {why}", name=name)


class Fields(dict[str, Any]):
    """A mapping of merge fields that knows its own name, so a missing key is named in full."""

    __slots__ = ("path",)

    def __init__(self, path: str, items: Mapping[str, Any]) -> None:
        super().__init__(items)
        self.path = path


class SampleFields(Fields):
    """Free attributes in a preview with sample data: any key reads as a placeholder."""

    __slots__ = ()

    def __missing__(self, key: str) -> str:
        return f"[{key}]"


def wrap(path: str, value: Any) -> Any:
    """Make `value` a merge field: mappings name their keys; None or blank text is missing."""
    if value is None or isinstance(value, str) and not value.strip():
        return MissingField(hint=f"{{{{ {path} }}}} is empty for this recipient", name=path)
    if isinstance(value, Fields | StrictUndefined):
        return value
    if isinstance(value, Mapping):
        return Fields(path, {key: wrap(f"{path}.{key}", item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return [wrap(f"{path}[{index}]", item) for index, item in enumerate(value)]
    return value


def prepare(context: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap a render context's values, so each missing field is named when it is used."""
    return {name: wrap(name, value) for name, value in context.items()}


def contract_uses(*templates: nodes.Template) -> list[str]:
    """The uses of contract fields in these templates that are not guarded by a test of them.

    `{{ contract.product }}` needs a contract; `{% if contract %}{{ contract.product }}{% endif %}`,
    `{{ contract.product if contract }}` and `{{ contract.product|default('…') }}` do not.
    """
    found: list[str] = []
    for template in templates:
        for use in _uses(template, guarded=False):
            if use not in found:
                found.append(use)
    return found


def needs_of(uses: list[str]) -> LetterNeeds:
    return LetterNeeds.CONTRACT if uses else LetterNeeds.CONTACT


def _mentions_contract(node: nodes.Node) -> bool:
    names = [node] if isinstance(node, nodes.Name) else node.find_all(nodes.Name)
    return any(name.name in CONTRACT_FIELDS for name in names)


def _uses(node: nodes.Node, *, guarded: bool) -> Iterator[str]:
    if isinstance(node, nodes.If):
        inner = guarded or _mentions_contract(node.test)  # the test itself only reads
        for child in (*node.body, *node.else_):
            yield from _uses(child, guarded=inner)
        for elif_ in node.elif_:
            yield from _uses(elif_, guarded=inner)
        return
    if isinstance(node, nodes.CondExpr):
        inner = guarded or _mentions_contract(node.test)
        for expr in (node.expr1, node.expr2):
            if expr is not None:
                yield from _uses(expr, guarded=inner)
        return
    if isinstance(node, nodes.Filter) and node.name in ("default", "d"):
        return  # a fallback is given: never a hole
    if isinstance(node, nodes.Test) and node.name in ("defined", "undefined", "none"):
        return
    if not guarded:
        path = _dotted(node)
        if path is not None and path.split(".")[0] in CONTRACT_FIELDS:
            yield path
            return
    for child in node.iter_child_nodes():
        yield from _uses(child, guarded=guarded)


def _dotted(node: nodes.Node) -> str | None:
    """`contract.ends_on` for a chain of attribute reads on a name, else None."""
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return str(node.name)
    if isinstance(node, nodes.Getattr):
        inner = _dotted(node.node)
        return None if inner is None else f"{inner}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        inner = _dotted(node.node)
        return None if inner is None else f"{inner}.{node.arg.value}"
    return None
