"""Letters, their versions and previews."""

from __future__ import annotations

from collections.abc import Mapping

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as WerkzeugResponse

from campaigns.delivery import test_sends
from campaigns.delivery.mailer import SendError
from campaigns.errors import (
    ConfigError,
    NotFound,
    PermissionDenied,
    TemplateError,
    ValidationError,
)
from campaigns.letters import approvals, authoring, history, translations
from campaigns.models import LetterCategory, LetterKind, Role
from campaigns.web.auth import requires
from campaigns.web.context import settings, unit_of_work

bp = Blueprint("letters", __name__)
SCALES = {"csat": "CSAT: 1 to 5", "nps": "NPS: 0 to 10"}
# The preview runs no script and loads nothing but inline styles and data: images.
PREVIEW_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@bp.route("/letters")
@requires(Role.VIEWER)
def letter_list() -> str:
    return _letters_page(None)


def _letters_page(values: Mapping[str, str] | None) -> str:
    """The letters, and the new-letter form (open and filled with `values` after a refusal)."""
    with unit_of_work() as s:
        return render_template("admin/letters.html", letters=authoring.list_letters(s),
                               kinds=list(LetterKind), categories=list(LetterCategory),
                               scales=SCALES, values=values)  # fmt: skip


@bp.route("/letters", methods=["POST"])
@requires(Role.EDITOR)
def letter_create() -> WerkzeugResponse | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            letter = authoring.create_letter(
                s, form.get("name", ""), kind=LetterKind(form.get("kind", "other")),
                category=LetterCategory(form.get("category", "service")),
                default_locale=form.get("default_locale") or "en",
                survey_scale=form.get("survey_scale") or "csat",
            )  # fmt: skip
            letter_id = letter.id
    except (ValidationError, ValueError) as exc:
        flash(f"Letter not created: {exc}", "error")
        return _letters_page(form), 400
    return redirect(url_for("letters.letter_detail", letter_id=letter_id))


@bp.route("/letters/<int:letter_id>")
@requires(Role.VIEWER)
def letter_detail(letter_id: int) -> str:
    return _letter_page(letter_id, locale=request.args.get("locale"))


def _letter_page(
    letter_id: int, *, locale: str | None, form: authoring.Content | None = None,
    scale_error: str = "",
) -> str:  # fmt: skip
    with unit_of_work() as s:
        letter = authoring.get_letter(s, letter_id)
        latest = letter.versions[-1] if letter.versions else None
        code = translations.normalise(locale) or letter.default_locale
        missing = translations.missing_locales(letter, latest, translations.contact_locales(s))
        variants = [v.locale for v in latest.variants] if latest else []
        locales = [letter.default_locale, *variants, *(m.language for m in missing)]
        if code not in locales:
            locales.append(code)
        return render_template(
            "admin/letter.html", letter=letter, latest=latest, layouts=authoring.list_layouts(s),
            statuses={v.id: approvals.status(v) for v in letter.versions},
            decisions=approvals.decisions(s, letter.id), missing=missing, locales=locales,
            edit_locale=code, content=form or translations.editable_content(latest, code),
            user_id=g.user["id"], scales=SCALES, scale_error=scale_error,
        )  # fmt: skip


@bp.route("/letters/<int:letter_id>/survey-scale", methods=["POST"])
@requires(Role.EDITOR)
def survey_scale(letter_id: int) -> WerkzeugResponse | tuple[str, int]:
    """Put a survey letter's rating links on the CSAT or the NPS scale."""
    chosen = request.form.get("survey_scale", "")
    try:
        with unit_of_work() as s:
            authoring.set_survey_scale(s, letter_id, chosen)
    except ValidationError as exc:
        return _letter_page(letter_id, locale=None, scale_error=str(exc)), 400
    flash(f"Ratings are on the {chosen.upper()} scale now.", "success")
    return redirect(url_for("letters.letter_detail", letter_id=letter_id) + "#survey-scale")


@bp.route("/letters/<int:letter_id>/versions", methods=["POST"])
@requires(Role.EDITOR)
def version_create(letter_id: int) -> WerkzeugResponse | tuple[str, int]:
    form = request.form
    content = authoring.Content(
        subject=form.get("subject", ""), html=form.get("html", ""),
        text=form.get("text") or None, preheader=form.get("preheader", ""),
    )  # fmt: skip
    locale = form.get("locale") or None
    try:
        with unit_of_work() as s:
            version = translations.save_edit(
                s, letter_id, locale=locale, content=content,
                layout_id=(int(form["layout_id"]) if form.get("layout_id") else None)
                if "layout_id" in form else "keep",
                created_by_id=g.user["id"],
            )  # fmt: skip
            number = version.number
    except ValidationError as exc:
        flash(f"Version not saved: {exc}", "error")
        return _letter_page(letter_id, locale=locale, form=content), 400
    flash(f"Saved version {number}.", "success")
    return redirect(url_for("letters.letter_detail", letter_id=letter_id, locale=locale or None))


@bp.route("/letters/versions/<int:version_id>/<any(approve, reject):decision>", methods=["POST"])
@requires(Role.EDITOR)
def version_decide(version_id: int, decision: str) -> WerkzeugResponse:
    comment = request.form.get("comment", "")
    try:
        with unit_of_work() as s:
            letter_id = authoring.get_version(s, version_id).letter_id
        with unit_of_work() as s:
            if decision == "approve":
                approvals.approve(s, version_id, user_id=g.user["id"], comment=comment)
            else:
                approvals.reject(s, version_id, user_id=g.user["id"], comment=comment)
    except (ValidationError, PermissionDenied) as exc:
        flash(f"Not recorded: {exc}", "error")
    else:
        flash(f"Version {'approved' if decision == 'approve' else 'rejected'}.", "success")
    return redirect(url_for("letters.letter_detail", letter_id=letter_id) + "#approval")


@bp.route("/letters/<int:letter_id>/diff")
@requires(Role.VIEWER)
def version_diff(letter_id: int) -> str:
    try:
        old, new = int(request.args.get("old", "")), int(request.args.get("new", ""))
    except ValueError:
        raise NotFound("choose two versions to compare") from None
    with unit_of_work() as s:
        letter = authoring.get_letter(s, letter_id)
        return render_template("admin/letter_diff.html", letter=letter,
                               comparison=history.compare(s, letter_id, old, new))  # fmt: skip


@bp.route("/letters/versions/<int:version_id>/preview")
@requires(Role.VIEWER)
def version_preview(version_id: int) -> Response:
    with unit_of_work() as s:
        sources = translations.sources_for(s, version_id, request.args.get("locale"))
    # Rendered once the unit of work has closed: on SQLite even this read holds the write
    # lock, and a slow template would keep every other writer waiting.
    headers = {"Content-Security-Policy": PREVIEW_CSP}
    try:
        rendered = authoring.preview(sources, contract=request.args.get("contract") != "0")
    except TemplateError as exc:
        # Shown where the letter would be, so the author sees which field has no value.
        page = render_template("admin/letter_preview_error.html", error=str(exc))
        return Response(page, status=400, mimetype="text/html", headers=headers)
    return Response(rendered.html, mimetype="text/html", headers=headers)


def _optional_id(name: str) -> int | None:
    value = request.values.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValidationError(f"{name} must be a number", field=name)
    return int(value)


@bp.route("/letters/<int:letter_id>/live-preview", methods=["POST"])
@requires(Role.EDITOR)
def live_preview(letter_id: int) -> tuple[Response, int]:
    """Render the editor's unsaved content (JSON): the letter, or the error and its line."""
    form = request.form
    content = authoring.Content(
        subject=form.get("subject", ""), html=form.get("html", ""),
        text=form.get("text") or None, preheader=form.get("preheader", ""),
    )  # fmt: skip
    try:
        with unit_of_work() as s:
            letter = authoring.get_letter(s, letter_id)
            kind, scale = letter.kind, letter.survey_scale
            latest = translations.latest_version(s, letter.id)
            layout_id = (_optional_id("layout_id") if "layout_id" in form
                         else latest.layout_id if latest else None)  # fmt: skip
            layout = authoring.layout_html(s, layout_id)
            who = test_sends.recipient(s, kind=kind, contact_id=_optional_id("contact_id"),
                                       contract_id=_optional_id("contract_id"),
                                       survey_scale=scale)  # fmt: skip
        # Rendered once the unit of work has closed (see version_preview).
        merge = test_sends.merge_fields(who, settings=settings(), kind=kind, survey_scale=scale)
        rendered = authoring.preview_content(content, layout, context=merge)
    except (ValidationError, NotFound) as exc:
        return jsonify(ok=False, error=str(exc), field=getattr(exc, "field", None),
                       line=getattr(exc, "line", None)), 422  # fmt: skip
    return jsonify(ok=True, subject=rendered.subject, html=rendered.html,
                   text=rendered.text), 200  # fmt: skip


@bp.route("/letters/recipients")
@requires(Role.EDITOR)
def recipient_search() -> Response:
    """Contacts to preview a letter for, searched by e-mail (JSON)."""
    with unit_of_work() as s:
        found = test_sends.find_recipients(s, request.args.get("q", ""))
        return jsonify(contacts=[{"id": c.id, "email": c.email, "name": c.name,
                                  "contracts": c.contracts} for c in found])  # fmt: skip


@bp.route("/letters/versions/<int:version_id>/test-send", methods=["POST"])
@requires(Role.EDITOR)
def test_send(version_id: int) -> WerkzeugResponse:
    form = request.form
    to = form.get("to", "")
    locale = form.get("locale") or None
    try:
        with unit_of_work() as s:
            prepared = test_sends.prepare(
                s, version_id, locale=locale, contact_id=_optional_id("contact_id"),
                contract_id=_optional_id("contract_id"),
            )  # fmt: skip
    except (ValidationError, NotFound) as exc:
        flash(f"Test not sent: {exc}", "error")
        with unit_of_work() as s:
            letter_id = authoring.get_version(s, version_id).letter_id
        return redirect(url_for("letters.letter_detail", letter_id=letter_id) + "#test-send")
    back = url_for("letters.letter_detail", letter_id=prepared.letter_id, locale=locale)
    try:
        test_sends.send(prepared, to, settings=settings())
    except (ValidationError, ConfigError, SendError) as exc:
        flash(f"Test not sent: {exc}", "error")
        outcome = f"not sent: {exc}"
    else:
        flash(f"Test of version {prepared.version_number} sent to {to.strip()}.", "success")
        outcome = "sent"
    with unit_of_work() as s:
        test_sends.record(s, prepared, to=to.strip(), user_id=g.user["id"], outcome=outcome)
    return redirect(back + "#test-send")
