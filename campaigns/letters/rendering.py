"""Render letter versions in the sandbox within a time budget, with a compile cache."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError

from campaigns.errors import TemplateError
from campaigns.letters import deadlines, fields
from campaigns.letters.sandbox import (
    HTML_ENV,
    MAX_OUTPUT_CHARS,
    TEXT_ENV,
    LetterSandbox,
    LimitExceeded,
    reset_call_depth,
)

RENDER_SECONDS = 2.0  # one letter: subject, HTML and text together


def parse(source: str, *, field: str, html: bool = True) -> nodes.Template:
    """Parse a template, reporting a syntax error with its line number."""
    env = HTML_ENV if html else TEXT_ENV
    try:
        return env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"{field}, line {exc.lineno}: {exc.message}", line=exc.lineno, field=field
        ) from None
    except RecursionError:
        raise TemplateError(f"{field}: the template nests too deeply", field=field) from None


def variables_used(source: str, *, field: str) -> set[str]:
    """Return the names a template reads from its context."""
    return set(meta.find_undeclared_variables(parse(source, field=field)))


class TemplateCache:
    """Per-process cache of compiled templates, so a batch compiles its letter once."""

    def __init__(self, size: int = 768) -> None:
        self.size = size
        self._items: OrderedDict[tuple[bool, str], Template] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, env: LetterSandbox, source: str) -> Template:
        # Keyed by the source, not a version id: ids repeat across databases (tests,
        # staging copies) and a stale hit would send the wrong letter.
        key = (env is HTML_ENV, source)
        with self._lock:
            template = self._items.get(key)
            if template is not None:
                self._items.move_to_end(key)
                return template
        template = env.from_string(source)
        with self._lock:
            self._items[key] = template
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return template


_cache = TemplateCache()


def _render(env: LetterSandbox, source: str, context: Mapping[str, Any], *, field: str) -> str:
    """Compile (cached) and render one template; every failure becomes a TemplateError."""
    try:
        chunks = _cache.get(env, source).generate(context)
        out: list[str] = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError(
                    f"{field}: the letter is larger than {MAX_OUTPUT_CHARS:,} characters",
                    field=field,
                )
            out.append(chunk)
        return "".join(out)
    except TemplateError:
        raise
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{field}, line {exc.lineno}: {exc.message}", line=exc.lineno,
                            field=field) from None  # fmt: skip
    except LimitExceeded as exc:
        raise TemplateError(f"{field}: {exc}", field=field) from None
    except SecurityError as exc:
        raise TemplateError(f"{field}: not allowed in a letter: {exc}", field=field) from None
    except JinjaTemplateError as exc:
        raise TemplateError(f"{field}: {exc}", field=field) from None
    except RecursionError:
        raise TemplateError(f"{field}: the template nests too deeply", field=field) from None
    except MemoryError:
        raise TemplateError(f"{field}: the letter needs too much memory", field=field) from None
    except Exception as exc:  # the template is the author's code: any error is theirs
        raise TemplateError(f"{field}: {type(exc).__name__}: {exc}", field=field) from None


def _too_slow(field: str, seconds: float) -> TemplateError:
    return TemplateError(f"{field}: the letter takes longer than {seconds:g} seconds to render; "
                         "look for a loop that runs too often", field=field)  # fmt: skip


def render_string(
    env: LetterSandbox, source: str, context: Mapping[str, Any], *, field: str,
    seconds: float = RENDER_SECONDS,
) -> str:  # fmt: skip
    """Render one template string within the time budget; a missing merge field is an error."""
    context = fields.prepare(context)
    try:
        with deadlines.Deadline(seconds):
            reset_call_depth()
            return _render(env, source, context, field=field)
    except deadlines.Expired:
        raise _too_slow(field, seconds) from None


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def render_version(
    *, subject: str, html: str, text: str, context: Mapping[str, Any],
    seconds: float = RENDER_SECONDS,
) -> Rendered:  # fmt: skip
    """Render a stored version's subject, HTML and text with one context, within `seconds`.

    A merge field the context lacks (or holds as None) raises a TemplateError naming it.
    Call it outside any database transaction: on SQLite even a read holds the write lock.
    """
    context = fields.prepare(context)
    field = "subject"
    try:
        with deadlines.Deadline(seconds):
            reset_call_depth()
            rendered_subject = _render(TEXT_ENV, subject, context, field=field).strip()
            field = "html"
            rendered_html = _render(HTML_ENV, html, context, field=field)
            field = "text"
            rendered_text = tidy_text(_render(TEXT_ENV, text, context, field=field))
    except deadlines.Expired:
        raise _too_slow(field, seconds) from None
    return Rendered(subject=rendered_subject, html=rendered_html, text=rendered_text)


_BLANK_LINES = re.compile(r"\n{3,}")


def tidy_text(text: str) -> str:
    """The text part without what the template's tags left: spaces at line ends, blank runs.

    Line by line: a multiline regex for the line ends took ten times as long (~70 µs a
    letter on the send path).
    """
    text = "\n".join([line.rstrip(" \t") for line in text.split("\n")])
    return _BLANK_LINES.sub("\n\n", text) if "\n\n\n" in text else text
