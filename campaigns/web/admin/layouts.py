"""Layouts: the frame letters render into; editors create and change them."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from campaigns.errors import ValidationError
from campaigns.letters import authoring, layouts
from campaigns.models import Role
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("layouts", __name__)


@bp.route("/layouts")
@requires(Role.VIEWER)
def layout_list() -> str:
    return _page(None)


@bp.route("/layouts/<int:layout_id>")
@requires(Role.VIEWER)
def layout_detail(layout_id: int) -> str:
    return _page(layout_id)


@bp.route("/layouts", methods=["POST"], defaults={"layout_id": None})
@bp.route("/layouts/<int:layout_id>", methods=["POST"])
@requires(Role.EDITOR)
def layout_save(layout_id: int | None) -> Response | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            saved = layouts.save_layout(
                s, layout_id, name=form.get("name", ""), html=form.get("html", ""),
                user_id=g.user["id"],
            ).id  # fmt: skip
    except ValidationError as exc:
        return _page(layout_id, error=exc), 400
    flash("Layout saved. Letters saved from now on use it; saved versions keep theirs.", "success")
    return redirect(url_for("layouts.layout_detail", layout_id=saved))


def _page(layout_id: int | None, *, error: ValidationError | None = None) -> str:
    """The list of layouts beside one layout's form (a new one when `layout_id` is None)."""
    with unit_of_work() as s:
        current = layouts.get_layout(s, layout_id) if layout_id is not None else None
        return render_template(
            "admin/layouts.html", layouts=authoring.list_layouts(s), current=current,
            error=error, form=request.form if error else None,
        )  # fmt: skip
