"""Users of the admin (admins only)."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from campaigns import accounts
from campaigns.errors import ValidationError
from campaigns.models import Role
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("users", __name__)


@bp.route("/users")
@requires(Role.ADMIN)
def user_list() -> str:
    with unit_of_work() as s:
        return render_template("admin/users.html", users=accounts.list_users(s), roles=list(Role))


@bp.route("/users", methods=["POST"])
@requires(Role.ADMIN)
def user_create() -> Response:
    form = request.form
    try:
        with unit_of_work() as s:
            user = accounts.create_user(s, form.get("email", ""), form.get("password", ""),
                                        role=Role(form.get("role", "viewer")),
                                        name=form.get("name", ""))  # fmt: skip
            accounts.audit(s, "user.create", user_id=g.user["id"], target_type="user",
                           target_id=user.id, role=user.role)  # fmt: skip
            email = user.email
    except (ValidationError, ValueError) as exc:
        flash(f"User not created: {exc}", "error")
    else:
        flash(f"Created {email}.", "success")
    return redirect(url_for("users.user_list"))
