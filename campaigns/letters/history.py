"""A letter's version history: side-by-side differences between any two of its versions."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.errors import NotFound
from campaigns.models import LetterVersion


@dataclass(frozen=True)
class Section:
    """One part of a version (a locale's subject, HTML…) and how it changed."""

    title: str
    table: str | None  # difflib's HTML table (its text escaped); None when unchanged


@dataclass(frozen=True)
class Comparison:
    old: int
    new: int
    sections: list[Section]

    @property
    def changed(self) -> list[Section]:
        return [section for section in self.sections if section.table is not None]

    @property
    def unchanged(self) -> list[str]:
        return [section.title for section in self.sections if section.table is None]


def _parts(version: LetterVersion) -> dict[str, str]:
    default = version.letter.default_locale
    parts = {
        f"Subject ({default})": version.subject,
        f"Preheader ({default})": version.preheader,
        "Layout": version.layout.name if version.layout else "(none)",
        f"HTML body ({default})": version.html_source,
        f"Plain text ({default})": version.text_source or "(generated from the HTML)",
    }
    for variant in version.variants:
        parts |= {
            f"Subject ({variant.locale})": variant.subject,
            f"Preheader ({variant.locale})": variant.preheader,
            f"HTML body ({variant.locale})": variant.html_source,
            f"Plain text ({variant.locale})": variant.text_source or "(generated from the HTML)",
        }
    return parts


def compare(session: Session, letter_id: int, old: int, new: int) -> Comparison:
    """Compare versions `old` and `new` (numbers) of a letter, part by part."""
    versions = {
        v.number: v
        for v in session.scalars(
            select(LetterVersion).where(
                LetterVersion.letter_id == letter_id, LetterVersion.number.in_([old, new])
            )
        )
    }
    for number in (old, new):
        if number not in versions:
            raise NotFound(f"the letter has no version {number}")
    before, after = _parts(versions[old]), _parts(versions[new])
    titles = list(dict.fromkeys([*before, *after]))
    sections = []
    for title in titles:
        a, b = before.get(title, ""), after.get(title, "")
        if a == b:
            sections.append(Section(title, None))
            continue
        table = difflib.HtmlDiff(tabsize=2, wrapcolumn=60).make_table(
            a.splitlines(), b.splitlines(), fromdesc=f"Version {old}", todesc=f"Version {new}",
            context=True, numlines=2,
        )  # fmt: skip
        sections.append(Section(title, table))
    return Comparison(old=old, new=new, sections=sections)
