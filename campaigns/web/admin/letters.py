"""Letters, their versions and previews."""

from __future__ import annotations

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from campaigns.errors import TemplateError, ValidationError
from campaigns.letters import authoring
from campaigns.models import LetterCategory, LetterKind, Role
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("letters", __name__)
# The preview runs no script and loads nothing but inline styles and data: images.
PREVIEW_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@bp.route("/letters")
@requires(Role.VIEWER)
def letter_list() -> str:
    with unit_of_work() as s:
        return render_template("admin/letters.html", letters=authoring.list_letters(s),
                               kinds=list(LetterKind), categories=list(LetterCategory))  # fmt: skip


@bp.route("/letters", methods=["POST"])
@requires(Role.EDITOR)
def letter_create() -> WerkzeugResponse:
    form = request.form
    try:
        with unit_of_work() as s:
            letter = authoring.create_letter(
                s, form.get("name", ""), kind=LetterKind(form.get("kind", "other")),
                category=LetterCategory(form.get("category", "service")),
            )  # fmt: skip
            letter_id = letter.id
    except (ValidationError, ValueError) as exc:
        flash(f"Letter not created: {exc}", "error")
        return redirect(url_for("letters.letter_list"))
    return redirect(url_for("letters.letter_detail", letter_id=letter_id))


@bp.route("/letters/<int:letter_id>")
@requires(Role.VIEWER)
def letter_detail(letter_id: int) -> str:
    with unit_of_work() as s:
        letter = authoring.get_letter(s, letter_id)
        return render_template("admin/letter.html", letter=letter,
                               layouts=authoring.list_layouts(s),
                               latest=letter.versions[-1] if letter.versions else None)  # fmt: skip


@bp.route("/letters/<int:letter_id>/versions", methods=["POST"])
@requires(Role.EDITOR)
def version_create(letter_id: int) -> WerkzeugResponse | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            version = authoring.add_version(
                s, letter_id, subject=form.get("subject", ""), html=form.get("html", ""),
                text=form.get("text") or None,
                layout_id=int(form["layout_id"]) if form.get("layout_id") else None,
                created_by_id=g.user["id"],
            )  # fmt: skip
            number = version.number
    except ValidationError as exc:
        flash(f"Version not saved: {exc}", "error")
        with unit_of_work() as s:
            letter = authoring.get_letter(s, letter_id)
            page = render_template("admin/letter.html", letter=letter, form=form,
                                   layouts=authoring.list_layouts(s), latest=None)  # fmt: skip
        return page, 400
    flash(f"Saved version {number}.", "success")
    return redirect(url_for("letters.letter_detail", letter_id=letter_id))


@bp.route("/letters/versions/<int:version_id>/preview")
@requires(Role.VIEWER)
def version_preview(version_id: int) -> Response:
    with unit_of_work() as s:
        sources = authoring.version_sources(s, version_id)
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
