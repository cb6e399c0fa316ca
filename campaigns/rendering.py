"""Render letter versions in an immutable Jinja2 sandbox with size limits and a compile cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from campaigns.errors import TemplateError

MAX_OUTPUT_CHARS = 2_000_000
MAX_SEQUENCE_PRODUCT = 100_000


class LetterSandbox(ImmutableSandboxedEnvironment):
    """The sandbox letters run in: no attribute tricks, no mutation, bounded output."""

    # Intercept `*` and `**` so `'x' * 10**9` fails fast instead of eating the worker's memory.
    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja's default renders a refused attribute as empty text; a letter that tries
        # `__class__` and friends is an attack or a mistake, so say so instead.
        raise SecurityError(f"access to attribute {attribute!r} is not allowed in a letter")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("exponent too large in a letter template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_SEQUENCE_PRODUCT:
                        raise SecurityError("a repeated string or list is too long for a letter")
        return super().call_binop(context, operator, left, right)


HTML_ENV = LetterSandbox(autoescape=True)
TEXT_ENV = LetterSandbox(autoescape=False)


def parse(source: str, *, field: str, html: bool = True) -> nodes.Template:
    """Parse a template, reporting a syntax error with its line number."""
    env = HTML_ENV if html else TEXT_ENV
    try:
        return env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"{field}, line {exc.lineno}: {exc.message}", line=exc.lineno, field=field
        ) from None


def variables_used(source: str, *, field: str) -> set[str]:
    """Return the names a template reads from its context."""
    return set(meta.find_undeclared_variables(parse(source, field=field)))


def render_string(
    env: LetterSandbox, source: str, context: Mapping[str, Any], *, field: str
) -> str:
    """Render one template string, turning every failure into a TemplateError."""
    try:
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{field}, line {exc.lineno}: {exc.message}", line=exc.lineno,
                            field=field) from None  # fmt: skip
    return _bounded(template.generate(context), field=field)


def _bounded(chunks: Any, *, field: str) -> str:
    out: list[str] = []
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError(
                    f"{field}: the letter is larger than {MAX_OUTPUT_CHARS:,} characters",
                    field=field,
                )
            out.append(chunk)
    except SecurityError as exc:
        raise TemplateError(f"{field}: not allowed in a letter: {exc}", field=field) from None
    except JinjaTemplateError as exc:
        raise TemplateError(f"{field}: {exc}", field=field) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        raise TemplateError(f"{field}: {type(exc).__name__}: {exc}", field=field) from None
    return "".join(out)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class _Compiled:
    subject: Any
    html: Any
    text: Any


class VersionCache:
    """Per-process cache of compiled letter templates, so a batch compiles its letter once."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], _Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, subject: str, html: str, text: str) -> _Compiled:
        # Keyed by the sources, not a version id: ids repeat across databases (tests,
        # staging copies) and a stale hit would send the wrong letter.
        key = (subject, html, text)
        with self._lock:
            compiled = self._items.get(key)
            if compiled is not None:
                self._items.move_to_end(key)
                return compiled
        compiled = _Compiled(
            TEXT_ENV.from_string(subject), HTML_ENV.from_string(html), TEXT_ENV.from_string(text)
        )
        with self._lock:
            self._items[key] = compiled
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return compiled


_cache = VersionCache()


def render_version(*, subject: str, html: str, text: str, context: Mapping[str, Any]) -> Rendered:
    """Render a stored version's subject, HTML and text with one context."""
    compiled = _cache.get(subject, html, text)
    return Rendered(
        subject=_bounded(compiled.subject.generate(context), field="subject").strip(),
        html=_bounded(compiled.html.generate(context), field="html"),
        text=_bounded(compiled.text.generate(context), field="text"),
    )
