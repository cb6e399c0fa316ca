"""Locale variants of a version: which one a contact gets, editing one, and what is missing.

A version's own content is in its letter's default locale; each variant carries another
locale's subject, preheader, HTML and text. A contact's locale picks a variant by exact
match (`de_CH`), then by language (`de`); otherwise the default content goes out.

The locales a letter is missing are worked out from the contacts present (their `locale`,
by language): a language some contacts speak that neither the default nor a variant covers.
No settings to keep in step, and what the editor shows is what the audience needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.errors import ValidationError
from campaigns.letters import authoring
from campaigns.letters.locales import language, normalise, pick
from campaigns.models import Contact, Letter, LetterVariant, LetterVersion


@dataclass(frozen=True)
class Chosen:
    """The content to render for one recipient, and the locale it is in."""

    locale: str
    subject: str
    preheader: str
    html: str  # compiled: layout joined, CSS inlined, links tracked
    text: str


def content_for(version: LetterVersion, locale: str | None) -> Chosen:
    """Return what to render of `version` for a contact whose locale is `locale`."""
    variants = {variant.locale: variant for variant in version.variants}
    chosen = pick(variants, locale)
    if chosen is None:
        return Chosen(locale=version.letter.default_locale, subject=version.subject,
                      preheader=version.preheader, html=version.compiled_html,
                      text=version.compiled_text)  # fmt: skip
    variant = variants[chosen]
    return Chosen(locale=variant.locale, subject=variant.subject, preheader=variant.preheader,
                  html=variant.compiled_html, text=variant.compiled_text)  # fmt: skip


def sources_for(session: Session, version_id: int, locale: str | None) -> authoring.VersionSources:
    """What previewing a version in a locale takes, as plain values (see authoring.preview)."""
    version = authoring.get_version(session, version_id)
    chosen = content_for(version, locale)
    return authoring.VersionSources(subject=chosen.subject, html=chosen.html, text=chosen.text,
                                    link_count=len(version.links),
                                    survey_scale=version.letter.survey_scale)  # fmt: skip


def save_edit(
    session: Session,
    letter_id: int,
    *,
    locale: str | None,
    content: authoring.Content,
    layout_id: int | None | Literal["keep"] = "keep",
    created_by_id: int | None = None,
) -> LetterVersion:
    """Save an edit of one locale as a new version of the letter.

    The new version takes `content` for `locale` (None or the default locale: the version's
    own content) and carries the latest version's other locales over unchanged; every
    locale is validated again, against the layout (`"keep"`: the latest version's).
    """
    letter = authoring.get_letter(session, letter_id)
    latest = latest_version(session, letter.id)
    code = normalise(locale) or letter.default_locale
    own = _content_of(latest) if latest else None
    variants = {v.locale: _variant_content(v) for v in latest.variants} if latest else {}
    if layout_id == "keep":
        layout_id = latest.layout_id if latest else None
    if code == letter.default_locale:
        own = content
    elif own is None:
        raise ValidationError(f"write the letter in its default locale ({letter.default_locale}) "
                              "before translating it", field="locale")  # fmt: skip
    else:
        variants[code] = content
    return authoring.add_version(
        session, letter.id, subject=own.subject, html=own.html, text=own.text,
        preheader=own.preheader, layout_id=layout_id, created_by_id=created_by_id,
        variants=variants,
    )  # fmt: skip


def remove_variant(
    session: Session, letter_id: int, *, locale: str, created_by_id: int | None
) -> LetterVersion:
    """Save a new version without the latest version's variant for `locale`."""
    letter = authoring.get_letter(session, letter_id)
    latest = latest_version(session, letter.id)
    if latest is None:
        raise ValidationError("the letter has no version yet", field="locale")
    variants = {v.locale: _variant_content(v) for v in latest.variants}
    if variants.pop(normalise(locale), None) is None:
        raise ValidationError(f"version {latest.number} has no {locale} variant", field="locale")
    own = _content_of(latest)
    return authoring.add_version(
        session, letter.id, subject=own.subject, html=own.html, text=own.text,
        preheader=own.preheader, layout_id=latest.layout_id, created_by_id=created_by_id,
        variants=variants,
    )  # fmt: skip


def latest_version(session: Session, letter_id: int) -> LetterVersion | None:
    query = (
        select(LetterVersion)
        .where(LetterVersion.letter_id == letter_id)
        .order_by(LetterVersion.number.desc())
        .limit(1)
    )
    return session.scalar(query)


def _content_of(version: LetterVersion) -> authoring.Content:
    return authoring.Content(subject=version.subject, html=version.html_source,
                             text=version.text_source, preheader=version.preheader)  # fmt: skip


def _variant_content(variant: LetterVariant) -> authoring.Content:
    return authoring.Content(subject=variant.subject, html=variant.html_source,
                             text=variant.text_source, preheader=variant.preheader)  # fmt: skip


def editable_content(version: LetterVersion | None, locale: str | None) -> authoring.Content:
    """The content an editor starts from for `locale`: that variant's, else the default's."""
    if version is None:
        return authoring.Content(subject="", html="")
    code = normalise(locale)
    for variant in version.variants:
        if variant.locale == code:
            return _variant_content(variant)
    return _content_of(version)


@dataclass(frozen=True)
class Missing:
    """A language some contacts speak that the letter has no variant for."""

    language: str
    contacts: int
    locales: tuple[str, ...]  # the contacts' own codes, e.g. ("de_AT", "de_CH")


def contact_locales(session: Session) -> dict[str, int]:
    """How many contacts (not erased) have each locale."""
    query = (
        select(Contact.locale, func.count())
        .where(Contact.erased_at.is_(None))
        .group_by(Contact.locale)
    )
    counts: dict[str, int] = {}
    for code, count in session.execute(query):
        key = normalise(code)
        if key:
            counts[key] = counts.get(key, 0) + count
    return counts


def missing_locales(
    letter: Letter, version: LetterVersion | None, contacts: dict[str, int]
) -> list[Missing]:
    """The languages of `contacts` (see contact_locales) the version would send in another."""
    available = [v.locale for v in version.variants] if version else []
    default = language(letter.default_locale)
    missing: dict[str, list[tuple[str, int]]] = {}
    for code, count in contacts.items():
        if pick(available, code) is None and language(code) != default:
            missing.setdefault(language(code), []).append((code, count))
    return [
        Missing(
            language=lang,
            contacts=sum(n for _, n in seen),
            locales=tuple(sorted(code for code, _ in seen)),
        )  # fmt: skip
        for lang, seen in sorted(missing.items(), key=lambda item: -sum(n for _, n in item[1]))
    ]
