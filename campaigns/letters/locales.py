"""Locale codes as the letters choose by them: `de-ch` is `de_CH`; a contact gets what is
there for their exact locale, else for their language, else the default."""

from __future__ import annotations

import re
from collections.abc import Iterable

_CODE = re.compile(r"([A-Za-z]{2,3})(?:[_-]([A-Za-z]{2}))?")


def checked(code: str) -> str:
    """A locale code as people write it (`de`, `de-ch`, `de_CH`) in its one spelling
    (`de_CH`); ValueError for anything that is not one."""
    match = _CODE.fullmatch(code.strip())
    if not match:
        raise ValueError(f"{code!r} is not a locale code such as de or de_CH")
    language, region = match.group(1).lower(), match.group(2)
    return f"{language}_{region.upper()}" if region else language


def normalise(code: str | None) -> str:
    """`de-ch` → `de_CH`; an empty or odd code becomes "" (the default content)."""
    if not code:
        return ""
    language, _, region = code.strip().replace("-", "_").partition("_")
    return f"{language.lower()}_{region.upper()}" if region else language.lower()


def language(code: str) -> str:
    return normalise(code).partition("_")[0]


def pick(available: Iterable[str], wanted: str | None) -> str | None:
    """The variant locale for a contact's locale: exact, then its language; None: default."""
    locales = {normalise(code): code for code in available}
    wanted = normalise(wanted)
    if not wanted:
        return None
    return locales.get(wanted) or locales.get(language(wanted))
