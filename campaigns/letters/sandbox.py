"""The sandbox letters run in: no attribute tricks, no mutation, and every value size-checked."""

from __future__ import annotations

import functools
import re
import string
import threading
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, ValuesView
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import BlockReference, Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from markupsafe import Markup, escape

from campaigns.letters.fields import MissingField

MAX_OUTPUT_CHARS = 2_000_000  # the whole letter, and any one value built while rendering it
MAX_SEQUENCE_PRODUCT = 100_000  # `'x' * n`, `|batch(n)` and the like
MAX_INT_BITS = 10_000  # `x * y` and `x ** y` on whole numbers
MAX_CALL_DEPTH = 50  # macros, recursive loops and blocks calling themselves

_calls = threading.local()  # .depth: how deeply the render in this thread has nested calls


class LimitExceeded(SecurityError):
    """A template tried to build something larger or deeper than a letter may be."""


def text_size(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """Estimate from above how long `str(value)` is; stop counting once past `limit`.

    Lists that hold one big list many times print it many times, so every reference
    counts: `[[s] * 9] * 9` is 81 copies of `s` once printed, compared or summed.
    """
    if isinstance(value, str):
        return len(value)
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset | KeysView | ValuesView | ItemsView):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, bytes | bytearray):
            total += 3 + 4 * len(item)
        elif isinstance(item, Namespace):
            total += 13
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        else:
            total += 80  # a date, a number, a function, a loop: a short text
    return total


_SIZED = (str, list, tuple, dict, set, frozenset, bytes, bytearray, Namespace, KeysView,
          ValuesView, ItemsView)  # fmt: skip


def _require_fits(value: Any, what: str) -> None:
    if isinstance(value, _SIZED) and text_size(value) > MAX_OUTPUT_CHARS:
        raise LimitExceeded(f"{what} would be longer than {MAX_OUTPUT_CHARS:,} characters")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"{what} would be a number too large for a letter")


def _require_at_most(size: Any, limit: int, what: str, unit: str = "characters") -> None:
    if isinstance(size, int) and size > limit:
        raise LimitExceeded(f"{what} would be longer than {limit:,} {unit}")


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str,
         default: Any = None) -> Any:  # fmt: skip
    return args[index] if len(args) > index else kwargs.get(name, default)


def _joined_size(items: list[Any], separator: Any) -> int:
    size = max(0, len(items) - 1) * len(str(separator))
    for item in items:
        size += text_size(item, MAX_OUTPUT_CHARS - size)
        if size > MAX_OUTPUT_CHARS:
            break
    return size


def _replaced_size(text: str, old: str, new: str, count: Any) -> int:
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


def _number(digits: str) -> int:
    return int(digits) if len(digits) < 10 else MAX_OUTPUT_CHARS + 1


def _formatted_size(template: str, values: Any, fields: list[tuple[str, str]]) -> int:
    """Bound the length of `template` filled with `values`; fields are (width, precision)."""
    if isinstance(values, Mapping):
        values = list(values.values())
    elif not isinstance(values, tuple | list):
        values = [values]
    largest = max((text_size(v) for v in values), default=0)
    padding = 0
    for width, precision in fields:
        if "*" in (width, precision):
            raise LimitExceeded("widths given as '*' are not allowed in a letter")
        padding += _number(width or "0") + _number(precision or "0")
    return len(template) + padding + len(fields) * largest


def _check_percent(template: str, values: Any) -> None:
    fields = [(m[1] or "", m[2] or "") for m in _PERCENT_FIELD.finditer(template) if m[3] != "%"]
    _require_at_most(_formatted_size(template, values, fields), MAX_OUTPUT_CHARS, "'%' formatting")


def _check_str_format(template: str, values: Any) -> None:
    fields = []
    for _text, name, spec, _conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec and "{" in spec:
            raise LimitExceeded("nested fields in a format spec are not allowed in a letter")
        numbers = re.findall(r"\d+", spec or "")
        fields.append(("0", str(sum(_number(n) for n in numbers))))
    _require_at_most(_formatted_size(template, values, fields), MAX_OUTPUT_CHARS, ".format()")


# Checks run before a filter builds its result; each may hand back replacement arguments
# (a generator materialised once, so the check and the filter see the same items).
FilterCheck = Callable[[Any, tuple[Any, ...], dict[str, Any]], tuple[Any, ...] | None]


def _check_replace(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    s, old, new = (
        _arg(args, kwargs, 0, "s"),
        _arg(args, kwargs, 1, "old"),
        _arg(args, kwargs, 2, "new"),
    )
    if ctx.autoescape:  # mirror jinja2.filters.do_replace: Markup escapes what it replaces
        if hasattr(old, "__html__") or hasattr(new, "__html__") and not hasattr(s, "__html__"):
            s = escape(s)
        if isinstance(s, Markup):
            old, new = escape(old), escape(new)
    size = _replaced_size(str(s), str(old), str(new), _arg(args, kwargs, 3, "count"))
    _require_at_most(size, MAX_OUTPUT_CHARS, "|replace")


def _check_center(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _require_at_most(_arg(args, kwargs, 1, "width", 80), MAX_OUTPUT_CHARS, "|center")


def _check_indent(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text, width = str(_arg(args, kwargs, 0, "s")), _arg(args, kwargs, 1, "width", 4)
    _require_at_most(width, MAX_OUTPUT_CHARS, "|indent")
    step = width if isinstance(width, int) else len(str(width))
    _require_at_most(len(text) + (text.count("\n") + 1) * step, MAX_OUTPUT_CHARS, "|indent")


def _check_join(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    items = list(args[0])
    _require_at_most(_joined_size(items, _arg(args, kwargs, 1, "d", "")), MAX_OUTPUT_CHARS, "|join")
    return (items, *args[1:])


def _check_format(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _check_percent(str(args[0]), kwargs or tuple(args[1:]))


def _check_wordwrap(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text, width = str(_arg(args, kwargs, 0, "s")), _arg(args, kwargs, 1, "width", 79)
    wrap = str(_arg(args, kwargs, 3, "wrapstring") or "\n")
    if isinstance(width, int):
        breaks = 2 * len(text) // max(width, 1) + text.count("\n") + 2
        _require_at_most(len(text) + breaks * len(wrap), MAX_OUTPUT_CHARS, "|wordwrap")


def _check_tojson(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    indent = _arg(args, kwargs, 1, "indent")
    _require_at_most(indent if isinstance(indent, int) else text_size(indent), 16, "|tojson indent")


def _check_urlize(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # target and rel are repeated in every link found: keep them short.
    for index, name in ((3, "target"), (4, "rel"), (5, "extra_schemes")):
        _require_at_most(text_size(_arg(args, kwargs, index, name)), 200, f"|urlize {name}")


def _check_count(index: int, name: str, what: str) -> FilterCheck:
    def check(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        _require_at_most(_arg(args, kwargs, index, name), MAX_SEQUENCE_PRODUCT, what, "items")

    return check


def _check_sum(ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # Summing lists copies the growing total again for every item, in one C call.
    if not isinstance(_arg(args, kwargs, 2, "start", 0), int | float):
        raise LimitExceeded("|sum adds up numbers only in a letter")


FILTER_CHECKS: dict[str, FilterCheck] = {
    "replace": _check_replace, "center": _check_center, "indent": _check_indent,
    "join": _check_join, "format": _check_format, "wordwrap": _check_wordwrap,
    "tojson": _check_tojson, "urlize": _check_urlize, "sum": _check_sum,
    "batch": _check_count(1, "linecount", "|batch"), "slice": _check_count(1, "slices", "|slice"),
}  # fmt: skip


def _guard_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    check = FILTER_CHECKS.get(name)
    # Filters declared with pass_context/pass_eval_context/pass_environment get that first.
    skip = 0 if getattr(original, "jinja_pass_arg", None) is None else 1

    @functools.wraps(original)  # keeps jinja_pass_arg, so Jinja still passes the context
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            changed = check(args[0] if skip else None, args[skip:], kwargs)
            if changed is not None:
                args = (*args[:skip], *changed)
        result = original(*args, **kwargs)
        _require_fits(result, f"|{name}")
        return result

    return guarded


def _check_method_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse string methods that would build a text beyond the limit in one C call."""
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        what = f".{name}()"
        if name in ("center", "ljust", "rjust", "zfill"):
            _require_at_most(_arg(args, kwargs, 0, "width"), MAX_OUTPUT_CHARS, what)
        elif name == "expandtabs":
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            size = len(owner) + tabs * _arg(args, kwargs, 0, "tabsize", 8)
            _require_at_most(size, MAX_OUTPUT_CHARS, what)
        elif name == "join" and args:
            args = (list(args[0]), *args[1:])
            _require_at_most(_joined_size(args[0], owner), MAX_OUTPUT_CHARS, what)
        elif name == "replace" and isinstance(owner, str) and len(args) >= 2:
            old, new = (escape(a) for a in args[:2]) if isinstance(owner, Markup) else args[:2]
            size = _replaced_size(owner, str(old), str(new), _arg(args, kwargs, 2, "count"))
            _require_at_most(size, MAX_OUTPUT_CHARS, what)
        elif name == "translate":
            raise LimitExceeded(".translate() is not allowed in a letter")
    elif isinstance(owner, int) and name == "to_bytes":
        _require_at_most(_arg(args, kwargs, 0, "length", 1), MAX_OUTPUT_CHARS, ".to_bytes()")
    return args


class _Buffer(list[str]):
    """Where a macro, a `{% set %}` block or a `{% filter %}` block collects its output."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def append(self, item: str) -> None:
        self.size += len(item)
        if self.size > MAX_OUTPUT_CHARS:
            raise LimitExceeded(f"a macro or block would be longer than {MAX_OUTPUT_CHARS:,} "
                                "characters")  # fmt: skip
        super().append(item)

    def extend(self, items: Iterable[str]) -> None:
        for item in items:
            self.append(item)


def _concat(parts: Iterable[str]) -> str:
    if isinstance(parts, _Buffer):
        return "".join(parts)  # counted as it filled
    buffer = _Buffer()
    buffer.extend(parts)
    return "".join(buffer)


class _Namespace(Namespace):
    """`namespace()` in a letter: attributes may be set, but not beyond the size limit."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, value)
        _require_fits(self, "a namespace")


class _CheckedCodeGenerator(CodeGenerator):
    """Emit a size check around every value a template builds without calling the sandbox.

    Jinja compiles `a ~ b`, `[a, b]`, `(a, b)` and `{k: v}` to plain Python and collects
    macro output in plain lists; `{% set s = s ~ s %}` written twenty times would double a
    text twenty times without one hook. These wrap them in `environment.letter_fits(…)`.
    """

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.letter_buffer()")

    def _checked(self, visit: Callable[[Any, Frame], None], node: Any, frame: Frame) -> None:
        self.write("environment.letter_fits(")
        visit(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._checked(super().visit_Concat, node, frame)

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":  # not `{% for a, b in … %}`, which assigns
            self._checked(super().visit_Tuple, node, frame)
        else:
            super().visit_Tuple(node, frame)


class LetterSandbox(ImmutableSandboxedEnvironment):
    """The sandbox letters run in: no attribute tricks, no mutation, bounded sizes, no holes."""

    code_generator_class = _CheckedCodeGenerator
    concat = staticmethod(_concat)
    # `*`, `**` and `%` can build huge values from small ones in one step; `+` doubles.
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        # A field the context lacks is an error where it would print, never a blank.
        options.setdefault("undefined", MissingField)
        super().__init__(**options)
        self.globals["namespace"] = _Namespace
        del self.globals["lipsum"]  # generates text in bulk; no letter needs it
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}

    def letter_fits(self, value: Any) -> Any:
        _require_fits(value, "a value in the letter")
        return value

    def letter_buffer(self) -> _Buffer:
        return _Buffer()

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja's default renders a refused attribute as empty text; a letter that tries
        # `__class__` and friends is an attack or a mistake, so say so instead.
        raise SecurityError(f"access to attribute {attribute!r} is not allowed in a letter")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int):
            if abs(right) > 64:
                raise SecurityError("exponent too large in a letter template")
            if isinstance(left, int) and left.bit_length() * right > MAX_INT_BITS:
                raise LimitExceeded("a number in the letter would grow too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_SEQUENCE_PRODUCT:
                        raise SecurityError("a repeated string or list is too long for a letter")
                    if not isinstance(seq, str) and text_size(seq) * times > MAX_OUTPUT_CHARS:
                        raise SecurityError("a repeated string or list is too long for a letter")
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise LimitExceeded("a number in the letter would grow too large")
        if operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        result = super().call_binop(context, operator, left, right)
        _require_fits(result, f"'{operator}'")
        return result

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, Macro | LoopContext | BlockReference):
            # The only way a template recurses; refuse before Python's own limit does,
            # with a message the author can act on.
            depth = getattr(_calls, "depth", 0)
            if depth >= MAX_CALL_DEPTH:
                raise LimitExceeded(f"a macro, loop or block calls itself too deeply (more "
                                    f"than {MAX_CALL_DEPTH} levels)")  # fmt: skip
            _require_fits((args, kwargs), "the arguments of a macro")  # `varargs` shows them
            _calls.depth = depth + 1
            try:
                return super().call(context, obj, *args, **kwargs)
            finally:
                _calls.depth = depth
        args = _check_method_call(obj, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        _require_fits(result, "a call")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            values = args[0] if is_map and args else (*args, *kwargs.values())
            _check_str_format(template, values)
            return wrapped(*args, **kwargs)

        return checked


HTML_ENV = LetterSandbox(autoescape=True)
TEXT_ENV = LetterSandbox(autoescape=False)


def reset_call_depth() -> None:
    """Start a render at depth 0 (a call cut short by a deadline may have left it raised)."""
    _calls.depth = 0
