"""SQL constructs the rule compiler needs that SQLite and PostgreSQL spell differently.

Each is a SQLAlchemy function element compiled per dialect; user values only ever enter
them as bound parameters. They are two-valued where it matters: a typed attribute whose
stored JSON is of another type reads as NULL (empty), never as a cast error.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, Numeric, String, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

# JSON types of SQLite's json_type() and PostgreSQL's jsonb_typeof() per declared type.
_SQLITE_TYPES = {"text": "'text'", "number": "'integer', 'real'", "bool": "'true', 'false'",
                 "date": "'text'"}  # fmt: skip
_PG_TYPES = {"text": "'string'", "number": "'number'", "bool": "'boolean'", "date": "'string'"}
_RESULT_TYPES: dict[str, TypeEngine[Any]] = {
    "text": String(),
    "number": Numeric(),
    "bool": String(),
    "date": String(),
}


class typed_attribute(FunctionElement[Any]):  # noqa: N801 (SQL function style)
    """A custom attribute read as one declared type (text, number, date, bool) or NULL.

    Numbers read as numbers; dates as their ISO text `YYYY-MM-DD` (which sorts as dates
    do, and never fails a cast); booleans as the text 'true' / 'false'. One subclass per
    type, so the type is part of the statement cache key.
    """

    name = "typed_attribute"
    inherit_cache = True
    declared = "text"

    def __init__(self, column: ColumnElement[Any], key: str) -> None:
        self.type = _RESULT_TYPES[self.declared]
        super().__init__(column, bindparam(None, key, type_=String()))


class _text_attribute(typed_attribute):  # noqa: N801
    inherit_cache = True
    declared = "text"


class _number_attribute(typed_attribute):  # noqa: N801
    inherit_cache = True
    declared = "number"


class _date_attribute(typed_attribute):  # noqa: N801
    inherit_cache = True
    declared = "date"


class _bool_attribute(typed_attribute):  # noqa: N801
    inherit_cache = True
    declared = "bool"


ATTRIBUTE_READERS: dict[str, type[typed_attribute]] = {
    "text": _text_attribute, "number": _number_attribute, "date": _date_attribute,
    "bool": _bool_attribute,
}  # fmt: skip


def _pg_attribute(element: typed_attribute, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    key = f"CAST({key} AS TEXT)"
    test = f"jsonb_typeof({column} -> {key}) IN ({_PG_TYPES[element.declared]})"
    value = f"({column} ->> {key})"
    if element.declared == "number":
        value = f"CAST({value} AS NUMERIC)"
    elif element.declared == "date":
        test += f" AND {value} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$'"
    return f"(CASE WHEN {test} THEN {value} END)"


def _sqlite_attribute(element: typed_attribute, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    path = f"('$.' || {key})"
    kind = f"json_type({column}, {path})"
    test = f"{kind} IN ({_SQLITE_TYPES[element.declared]})"
    value = f"json_extract({column}, {path})"
    if element.declared == "bool":
        value = kind  # 'true' / 'false', as PostgreSQL's ->> gives them
    elif element.declared == "date":
        test += f" AND {value} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'"
    return f"(CASE WHEN {test} THEN {value} END)"


_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"


def _folded(compiler: SQLCompiler, sql: str) -> str:
    """The text with A–Z as a–z and every other character as typed: SQLite's lower() does
    exactly that, and PostgreSQL's (Unicode) would not, so PostgreSQL translates."""
    if compiler.dialect.name == "postgresql":
        return f"translate(CAST({sql} AS TEXT), '{_UPPER}', '{_LOWER}')"
    return f"lower({sql})"


class text_contains(FunctionElement[bool]):  # noqa: N801
    """True when the first text holds the second, ignoring the case of A–Z (accents and
    other letters as typed): "gold" finds "Gold Support" on both databases alike.

    LIKE would not do: SQLite's ignores ASCII case and PostgreSQL's does not, and both
    treat % and _ in the value as wildcards; this is a plain substring search on each.
    """

    name = "text_contains"
    type = Boolean()
    inherit_cache = True


@compiles(text_contains, "postgresql")
def _pg_contains(element: text_contains, compiler: SQLCompiler, **kw: Any) -> str:
    haystack, needle = (_folded(compiler, compiler.process(c, **kw)) for c in element.clauses)
    return f"(strpos({haystack}, {needle}) > 0)"


@compiles(text_contains, "sqlite")
def _sqlite_contains(element: text_contains, compiler: SQLCompiler, **kw: Any) -> str:
    haystack, needle = (_folded(compiler, compiler.process(c, **kw)) for c in element.clauses)
    return f"(instr({haystack}, {needle}) > 0)"


class text_starts_with(FunctionElement[bool]):  # noqa: N801
    """True when the first text begins with the second, ignoring the case of A–Z (see
    text_contains)."""

    name = "text_starts_with"
    type = Boolean()
    inherit_cache = True


@compiles(text_starts_with)
def _starts_with(element: text_starts_with, compiler: SQLCompiler, **kw: Any) -> str:
    text, prefix = (_folded(compiler, compiler.process(c, **kw)) for c in element.clauses)
    return f"(substr({text}, 1, length({prefix})) = {prefix})"


for _reader in ATTRIBUTE_READERS.values():
    compiles(_reader, "postgresql")(_pg_attribute)
    compiles(_reader, "sqlite")(_sqlite_attribute)
