"""Letters and their immutable versions: validation, CSS inlining once, links, text part."""

from __future__ import annotations

import html as html_lib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from jinja2 import meta
from premailer import Premailer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.db import require
from campaigns.errors import TemplateError, ValidationError
from campaigns.letters import fields, layouts, locales, rendering
from campaigns.letters.context import MERGE_FIELDS, sample_context
from campaigns.letters.sandbox import HTML_ENV
from campaigns.models import (
    SURVEY_SCORES,
    Delivery,
    Layout,
    Letter,
    LetterCategory,
    LetterKind,
    LetterVariant,
    LetterVersion,
    Link,
    LinkKind,
    SurveyScale,
)
from campaigns.models.letters import LetterNeeds

_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
_PLACEHOLDER = re.compile(r"xjinja(\d+)x")
_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)
_BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_LINK_CALL = re.compile(r"link_url\((\d+)\)")
# The preheader: the inbox's preview line, hidden in the letter itself. Hidden by display,
# height and overflow only: text in a 0 or 1 px font is what spam filters take for hidden
# words (SpamAssassin's FONT_INVIS_* rules).
PREHEADER = ('<div data-preheader style="display:none;max-height:0;overflow:hidden;'
             'mso-hide:all">{}</div>')  # fmt: skip
_PREHEADER_DIV = re.compile(r"<div data-preheader[^>]*>.*?</div>", re.DOTALL)
PIXEL = '<img src="{{ open_pixel_url }}" width="1" height="1" alt="" style="display:block">'

# Merge fields that need a stored part of the letter, by category and kind: one of each
# tuple (a survey's ratings are links of their own, or the ready-made list of them).
REQUIRED_BY_CATEGORY = {LetterCategory.MARKETING: ("unsubscribe_url",)}
REQUIRED_BY_KIND = {
    LetterKind.RENEWAL: ("renewal_url",),
    LetterKind.POLICY: ("acknowledge_url",),  # the acknowledgment is the evidence it was read
    LetterKind.SURVEY: ("rating_url", "rating_links"),
}
# Gmail clips a message past 102 KB and hides the rest, unsubscribe line included.
MAX_HTML_BYTES = 100 * 1024


def create_layout(session: Session, name: str, html: str) -> Layout:
    """Create a layout; it must contain `{{ body }}` where each letter goes."""
    return layouts.save_layout(session, None, name=name, html=html, user_id=None)


def create_letter(
    session: Session, name: str, *, kind: LetterKind, category: LetterCategory,
    default_locale: str = "en", survey_scale: str = SurveyScale.CSAT,
) -> Letter:  # fmt: skip
    """Create a letter; its versions' own content is in `default_locale`; a survey's rating
    links are on `survey_scale`."""
    name = name.strip()
    if not name:
        raise ValidationError("a letter needs a name", field="name")
    if session.scalar(select(Letter.id).where(Letter.name == name)) is not None:
        raise ValidationError(f"a letter named {name!r} already exists", field="name")
    letter = Letter(name=name, kind=LetterKind(kind), category=LetterCategory(category),
                    default_locale=_locale(default_locale),
                    survey_scale=_scale(survey_scale))  # fmt: skip
    session.add(letter)
    session.flush()
    return letter


@dataclass(frozen=True)
class Content:
    """What an author writes for one locale: subject, preheader, HTML body, optional text."""

    subject: str
    html: str
    text: str | None = None
    preheader: str = ""


@dataclass(frozen=True)
class _Compiled:
    """One locale's content, checked and compiled; its links not yet numbered in the version."""

    content: Content
    html: str
    text: str
    urls: list[str]
    fields: FieldsUsed
    ratings: set[int]  # the scores its rating_url calls took in the sample render


def add_version(
    session: Session,
    letter_id: int,
    *,
    subject: str,
    html: str,
    text: str | None = None,
    preheader: str = "",
    layout_id: int | None = None,
    created_by_id: int | None = None,
    variants: Mapping[str, Content] | None = None,
) -> LetterVersion:
    """Validate and store a new immutable version; CSS is inlined here, once.

    `variants` (locale → content) are checked exactly like the version's own content, which
    is in the letter's default locale; every locale's links are stored with the version.
    """
    own = _clean(Content(subject=subject, html=html, text=text, preheader=preheader))
    others = {_locale(code): _clean(content, locale=code)
              for code, content in (variants or {}).items()}  # fmt: skip
    if layout_id is None:
        # Before the first query: on SQLite it takes the write lock for the rest of the
        # caller's transaction, and a template that renders slowly must not hold it.
        compiled = {"": _compile(own, None)}
        compiled |= {code: _compile(content, None, locale=code) for code, content in others.items()}
    letter = get_letter(session, letter_id)
    layout = session.get(Layout, layout_id) if layout_id is not None else None
    if layout_id is not None and layout is None:
        raise ValidationError(f"no layout #{layout_id}", field="layout_id")
    if layout is not None:
        # The body may use what the layout defines, so it cannot be tried alone; the
        # render budget (rendering.RENDER_SECONDS) bounds how long this holds the lock.
        compiled = {"": _compile(own, layout.html)}
        compiled |= {code: _compile(content, layout.html, locale=code)
                     for code, content in others.items()}  # fmt: skip
    for code, one in compiled.items():
        _check_ratings(letter, one.ratings, locale=code)
    if letter.default_locale in others:
        raise ValidationError(f"{letter.default_locale} is the letter's default locale: its "
                              "text is the version's own, not a variant",
                              field="locale")  # fmt: skip
    for code, one in compiled.items():
        _check_required_parts(letter, one.fields.names, locale=code)
    needs = (LetterNeeds.CONTRACT
             if any(one.fields.needs == LetterNeeds.CONTRACT for one in compiled.values())
             else LetterNeeds.CONTACT)  # fmt: skip

    number = (session.scalar(
        select(func.max(LetterVersion.number)).where(LetterVersion.letter_id == letter.id)
    ) or 0) + 1  # fmt: skip
    first = compiled.pop("")
    version = LetterVersion(
        letter_id=letter.id, number=number, layout_id=layout_id, subject=own.subject,
        preheader=own.preheader, html_source=own.html, text_source=own.text,
        compiled_html=first.html, compiled_text=first.text, needs=needs,
        requires_approval=needs_approval(letter), created_by_id=created_by_id,
    )  # fmt: skip
    session.add(version)
    session.flush()
    urls = list(first.urls)
    for code, one in sorted(compiled.items()):
        # A variant's links follow the version's own, so one position names one stored link.
        offset = len(urls)
        urls += one.urls
        session.add(LetterVariant(
            version_id=version.id, locale=code, subject=one.content.subject,
            preheader=one.content.preheader, html_source=one.content.html,
            text_source=one.content.text, compiled_html=_shift_links(one.html, offset),
            compiled_text=_shift_links(one.text, offset),
        ))  # fmt: skip
    session.add_all(
        Link(version_id=version.id, position=i, url=url, kind=LinkKind.REGULAR)
        for i, url in enumerate(urls)
    )
    session.flush()
    session.expire(letter, ["versions"])
    return version


def needs_approval(letter: Letter) -> bool:
    """Legal letters (and policy re-statements whatever their category) need a second user."""
    return letter.category == LetterCategory.LEGAL or letter.kind == LetterKind.POLICY


def _locale(code: str) -> str:
    """Normalise a locale code (`de-ch` → `de_CH`); refuse what is not one."""
    try:
        return locales.checked(code)
    except ValueError as exc:
        raise ValidationError(str(exc), field="locale") from None


def _clean(content: Content, *, locale: str | None = None) -> Content:
    where = f"{locale}: " if locale else ""
    subject, preheader = content.subject.strip(), content.preheader.strip()
    if not subject:
        raise ValidationError(f"{where}the subject is empty", field="subject")
    for name, value in (("subject", subject), ("preheader", preheader)):
        if "\r" in value or "\n" in value or len(value) > 500:
            raise ValidationError(f"{where}the {name} must be one line of at most 500 characters",
                                  field=name)  # fmt: skip
    if not content.html.strip():
        raise ValidationError(f"{where}the HTML body is empty", field="html")
    return Content(subject=subject, html=content.html, text=content.text or None,
                   preheader=preheader)  # fmt: skip


def _sources(content: Content, layout: str | None) -> list[tuple[str, str, bool]]:
    """The templates of one content to check: (field, source, whether it is HTML)."""
    sources = [("subject", content.subject, False), ("html", content.html, True)]
    if content.preheader:
        sources.append(("preheader", content.preheader, True))
    if content.text:
        sources.append(("text", content.text, False))
    if layout is not None:
        sources.append(("layout", layout, True))
    return sources


def _compile(content: Content, layout: str | None, *, locale: str | None = None) -> _Compiled:
    """Check one locale's content against the merge fields and compile it."""
    sources = _sources(content, layout)
    try:
        fields_used = _fields_used(sources)
        compiled_html, urls, compiled_text, ratings = _compile_and_try(
            content.subject, content.html, content.text, layout, needs=fields_used.needs,
            preheader=content.preheader,
        )  # fmt: skip
    except ValidationError as exc:
        if locale is None:
            raise
        raise type(exc)(f"{locale} variant: {exc}", field=exc.field) from None
    return _Compiled(content, compiled_html, compiled_text, urls, fields_used, ratings)


def _check_required_parts(letter: Letter, used: set[str], *, locale: str) -> None:
    where = f"{locale} variant: " if locale else ""
    for needed, why in (
        (REQUIRED_BY_CATEGORY.get(letter.category, ()), f"{letter.category} letters"),
        (REQUIRED_BY_KIND.get(letter.kind, ()), f"{letter.kind} letters"),
    ):
        if needed and not used.intersection(needed):
            links = " or ".join(f"{{{{ {name} }}}}" for name in needed)
            raise ValidationError(f"{where}{why} must contain a link to {links}",
                                  field="html")  # fmt: skip


def _check_ratings(letter: Letter, ratings: set[int], *, locale: str) -> None:
    """Refuse rating_url scores off the letter's scale (the sample render takes 0 to 10, so
    that it runs before the letter is read; see add_version)."""
    scores = SURVEY_SCORES[SurveyScale(letter.survey_scale)]
    off = sorted(ratings.difference(scores))
    if off:
        where = f"{locale} variant: " if locale else ""
        raise ValidationError(
            f"{where}rating_url takes a rating from {scores[0]} to {scores[-1]} (the letter's "
            f"{letter.survey_scale.upper()} scale), not {off[0]}", field="html",
        )  # fmt: skip


def _shift_links(compiled: str, offset: int) -> str:
    """Renumber `link_url(i)` calls by `offset` (a variant's links follow the version's)."""
    if not offset:
        return compiled
    return _LINK_CALL.sub(lambda m: f"link_url({int(m.group(1)) + offset})", compiled)


@dataclass(frozen=True)
class FieldsUsed:
    """The merge fields a version reads, and the uses that need a contract."""

    names: set[str]
    contract_uses: list[str]

    @property
    def needs(self) -> LetterNeeds:
        return fields.needs_of(self.contract_uses)


def _fields_used(sources: list[tuple[str, str, bool]]) -> FieldsUsed:
    """Parse (field, source, is_html) templates; refuse merge fields that do not exist."""
    names: set[str] = set()
    parsed = []
    for field, source, is_html in sources:
        tree = rendering.parse(source, field=field, html=is_html)
        parsed.append(tree)
        unknown = sorted(set(meta.find_undeclared_variables(tree)) - KNOWN_NAMES)
        if unknown:
            known = ", ".join(sorted(MERGE_FIELDS))
            raise ValidationError(
                f"{field}: unknown merge field {{{{ {unknown[0]} }}}}; the merge fields are "
                f"{known}", field=field,
            )  # fmt: skip
        names |= set(meta.find_undeclared_variables(tree))
    return FieldsUsed(names=names, contract_uses=fields.contract_uses(*parsed))


def contract_uses(version: LetterVersion) -> list[str]:
    """Where a stored version uses the contract outside a test of it (for messages)."""
    sources = [("subject", version.subject, False), ("html", version.html_source, True)]
    if version.text_source:
        sources.append(("text", version.text_source, False))
    if version.layout is not None:
        sources.append(("layout", version.layout.html, True))
    return _fields_used(sources).contract_uses


def _compile_and_try(
    subject: str, html: str, text: str | None, layout: str | None, *, needs: LetterNeeds,
    preheader: str = "",
) -> tuple[str, list[str], str, set[int]]:  # fmt: skip
    """Compile a version's HTML and text, and render them once with sample data so errors
    that only show at run time surface now; return the HTML, its links, the text and the
    scores its rating_url calls took (any from 0 to 10 here: see _check_ratings).

    A letter that needs only the contact is also tried without a contract, as it will be
    sent to a segment of contacts: a use of the contract its tests do not guard shows here.
    """
    compiled_html, urls = compile_html(html, layout, preheader=preheader)
    compiled_text = text if text else html_to_text(compiled_html)
    ratings: set[int] = set()
    size = len(_render_sample(subject, compiled_html, compiled_text, len(urls),
                              scale=SurveyScale.NPS, ratings=ratings).html.encode())  # fmt: skip
    if size > MAX_HTML_BYTES:
        raise ValidationError(
            f"the letter's HTML is {size // 1024} KB with its layout; keep it under "
            f"{MAX_HTML_BYTES // 1024} KB, or Gmail cuts it off (unsubscribe line included)",
            field="html",
        )
    if needs == LetterNeeds.CONTACT:
        _render_sample(subject, compiled_html, compiled_text, len(urls), contract=False,
                       scale=SurveyScale.NPS, ratings=ratings)  # fmt: skip
    return compiled_html, urls, compiled_text, ratings


def compile_html(body: str, layout: str | None, *, preheader: str = "") -> tuple[str, list[str]]:
    """Join body and layout, inline CSS, and point every literal link at its stored position.

    Jinja tags are swapped for inert placeholders while premailer parses the HTML, so merge
    fields survive inlining untouched (even inside attributes). A preheader becomes the
    letter's first (hidden) text, where inboxes take their preview line from.
    """
    source = layouts.BODY_SLOT.sub(lambda _: body, layout) if layout else body
    if preheader:
        hidden = PREHEADER.format(_escape_outside_tags(preheader))
        opening = _BODY_TAG.search(source)
        at = opening.end() if opening else 0
        source = source[:at] + hidden + source[at:]
    tags: list[str] = []

    def protect(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return f"xjinja{len(tags) - 1}x"

    protected = _JINJA.sub(protect, source)
    try:
        inlined = Premailer(
            protected, keep_style_tags=False, strip_important=False, disable_validation=True,
            cssutils_logging_level=logging.CRITICAL, allow_network=False,
            disable_link_rewrites=True,
        ).transform()  # fmt: skip
    except Exception as exc:  # premailer raises bare lxml/cssutils errors
        raise TemplateError(f"html: the HTML or CSS could not be processed: {exc}",
                            field="html") from None  # fmt: skip

    urls: list[str] = []

    def track(match: re.Match[str]) -> str:
        url = html_lib.unescape(match.group(1))
        if _PLACEHOLDER.search(url):
            return match.group(0)  # built from merge fields: cannot be stored, left as is
        urls.append(url)
        return f'href="{{{{ link_url({len(urls) - 1}) }}}}"'

    tracked = _HREF.sub(track, inlined)
    if "</body>" in tracked:
        tracked = tracked.replace("</body>", PIXEL + "</body>", 1)
    else:
        tracked += PIXEL
    restored = _PLACEHOLDER.sub(lambda m: tags[int(m.group(1))], tracked)
    return restored, urls


class _TextExtractor(HTMLParser):
    BLOCKS = {"p", "div", "br", "tr", "h1", "h2", "h3", "h4", "li", "table", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.href: str | None = None
        self.cells: list[int] = []  # per open table: the cells of its current row so far

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.cells.append(0)
        elif tag == "tr" and self.cells:
            self.cells[-1] = 0
        elif tag in ("td", "th") and self.cells:
            # The cells of a row stay apart ("SC-00012 On-site support", not "SC-00012On-…").
            if self.cells[-1] and self.parts and not self.parts[-1].endswith((" ", "\n")):
                self.parts.append(" ")
            self.cells[-1] += 1
        if tag in ("style", "script", "head", "title"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.cells:
            self.cells.pop()
        if tag in ("style", "script", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag in ("p", "h1", "h2", "h3", "h4", "table"):
            self.parts.append("\n")
        if tag == "a" and self.href:
            self.parts.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def _escape_outside_tags(text: str) -> str:
    """HTML-escape literal text, leaving its Jinja tags (merge fields) as they are."""
    out, last = [], 0
    for match in _JINJA.finditer(text):
        out += [html_lib.escape(text[last : match.start()], quote=False), match.group(0)]
        last = match.end()
    return "".join([*out, html_lib.escape(text[last:], quote=False)])


def html_to_text(compiled_html: str) -> str:
    """Generate the plain-text alternative from the compiled HTML (merge fields kept)."""
    without_pixel = _PREHEADER_DIV.sub("", compiled_html.replace(PIXEL, ""))
    extractor = _TextExtractor()
    extractor.feed(without_pixel)
    text = "".join(extractor.parts)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


# Every name a letter may read: the merge fields (context.py), the sandbox's globals, and
# `body` in a layout.
KNOWN_NAMES = MERGE_FIELDS | set(HTML_ENV.globals) | {"body"}


@dataclass(frozen=True)
class VersionSources:
    """What rendering a stored version takes, as plain values read in a unit of work."""

    subject: str
    html: str
    text: str
    link_count: int
    survey_scale: str = SurveyScale.CSAT


def version_sources(session: Session, version_id: int) -> VersionSources:
    version = get_version(session, version_id)
    return VersionSources(subject=version.subject, html=version.compiled_html,
                          text=version.compiled_text, link_count=len(version.links),
                          survey_scale=version.letter.survey_scale)  # fmt: skip


def preview(sources: VersionSources, *, contract: bool = True) -> rendering.Rendered:
    """Render a version with sample data (without a contract if asked); a missing merge
    field raises a TemplateError naming it. Call it after the unit of work has closed."""
    return _render_sample(sources.subject, sources.html, sources.text, sources.link_count,
                          contract=contract, scale=sources.survey_scale)  # fmt: skip


def preview_content(
    content: Content, layout: str | None, *, context: Mapping[str, Any]
) -> rendering.Rendered:
    """Render unsaved content with `context` for the editor's live preview; store nothing.

    Checked as saving checks it (syntax errors with their line, unknown merge fields), then
    compiled and rendered strictly: a field the context lacks raises a TemplateError naming
    it. Call it outside any unit of work.
    """
    sources = _sources(content, layout)
    _fields_used(sources)
    html, _urls = compile_html(content.html, layout, preheader=content.preheader)
    return rendering.render_version(
        subject=content.subject, html=html, text=content.text or html_to_text(html),
        context=context,
    )  # fmt: skip


def layout_html(session: Session, layout_id: int | None) -> str | None:
    """The HTML of a layout (None: no layout)."""
    if layout_id is None:
        return None
    return require(session, Layout, layout_id, what="layout").html


def _render_sample(
    subject: str, html: str, text: str, link_count: int, *, contract: bool = True,
    scale: str = SurveyScale.CSAT, ratings: set[int] | None = None,
) -> rendering.Rendered:  # fmt: skip
    """Render with sample data on `scale`, noting the scores rating_url takes in `ratings`."""
    context = sample_context(link_count, contract=contract, survey_scale=scale)
    if ratings is not None:
        rate = context["rating_url"]

        def rating_url(score: Any) -> str:
            url = str(rate(score))
            ratings.add(score)
            return url

        context["rating_url"] = rating_url
    return rendering.render_version(subject=subject, html=html, text=text, context=context)


def _scale(value: str) -> SurveyScale:
    try:
        return SurveyScale(value)
    except ValueError:
        raise ValidationError("the rating scale is csat (1 to 5) or nps (0 to 10)",
                              field="survey_scale") from None  # fmt: skip


def set_survey_scale(session: Session, letter_id: int, scale: str) -> Letter:
    """Put a survey letter's rating links on another scale: CSAT (1–5) or NPS (0–10).

    Not once the letter has gone out (its responses would mix two scales), and only when
    the latest version's ratings fit the new scale (`rating_links` always do).
    """
    letter = get_letter(session, letter_id)
    chosen = _scale(scale)
    if chosen == letter.survey_scale:
        return letter
    used = session.scalar(
        select(Delivery.id).join(LetterVersion, LetterVersion.id == Delivery.letter_version_id)
        .where(LetterVersion.letter_id == letter.id).limit(1)
    )  # fmt: skip
    if used is not None:
        raise ValidationError(
            f"this letter has gone out with {letter.survey_scale.upper()} ratings, and its "
            "responses must stay comparable: make a new letter for the other scale",
            field="survey_scale",
        )  # fmt: skip
    latest = letter.versions[-1] if letter.versions else None
    if latest is not None:
        parts = [
            (latest.subject, latest.compiled_html, latest.compiled_text),
            *((v.subject, v.compiled_html, v.compiled_text) for v in latest.variants),
        ]
        for subject, html, text in parts:
            try:
                _render_sample(subject, html, text, len(latest.links), scale=chosen)
            except ValidationError as exc:
                raise ValidationError(
                    f"version {latest.number} does not fit the {chosen.upper()} scale "
                    f"({exc}): save a version that uses rating_links first",
                    field="survey_scale",
                ) from None
    letter.survey_scale = chosen
    return letter


def get_letter(session: Session, letter_id: int) -> Letter:
    return require(session, Letter, letter_id, what="letter")


def get_version(session: Session, version_id: int) -> LetterVersion:
    return require(session, LetterVersion, version_id, what="letter version")


def list_letters(session: Session) -> list[Letter]:
    return list(session.scalars(select(Letter).order_by(Letter.name)))


def list_versions(session: Session) -> list[LetterVersion]:
    query = select(LetterVersion).join(Letter).order_by(Letter.name, LetterVersion.number.desc())
    return list(session.scalars(query))


def list_layouts(session: Session) -> list[Layout]:
    return list(session.scalars(select(Layout).order_by(Layout.name)))
