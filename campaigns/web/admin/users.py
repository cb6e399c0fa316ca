"""Users of the admin (admins only)."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from campaigns.accounts import audit, users
from campaigns.errors import ValidationError
from campaigns.models import Role
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("users", __name__)


@bp.route("/users")
@requires(Role.ADMIN)
def user_list() -> str:
    with unit_of_work() as s:
        return render_template("admin/users.html", users=users.list_users(s), roles=list(Role))


@bp.route("/users", methods=["POST"])
@requires(Role.ADMIN)
def user_create() -> Response:
    form = request.form
    try:
        with unit_of_work() as s:
            user = users.create_user(s, form.get("email", ""), form.get("password", ""),
                                        role=Role(form.get("role", "viewer")),
                                        name=form.get("name", ""))  # fmt: skip
            audit.record(s, "user.create", user_id=g.user["id"], target_type="user",
                           target_id=user.id, role=user.role)  # fmt: skip
            email = user.email
    except (ValidationError, ValueError) as exc:
        flash(f"User not created: {exc}", "error")
    else:
        flash(f"Created {email}.", "success")
    return redirect(url_for("users.user_list"))


@bp.route("/users/<int:user_id>/<any(disable, enable):action>", methods=["POST"])
@requires(Role.ADMIN)
def user_active(user_id: int, action: str) -> Response:
    try:
        with unit_of_work() as s:
            user = users.set_active(s, user_id, action == "enable", by_user_id=g.user["id"])
            audit.record(s, f"user.{action}", user_id=g.user["id"], target_type="user",
                           target_id=user.id)  # fmt: skip
            email = user.email
    except ValidationError as exc:
        flash(f"Not changed: {exc}", "error")
    else:
        flash(f"{email} is {action}d" + (" and logged out everywhere." if action == "disable"
                                          else "."), "success")  # fmt: skip
    return redirect(url_for("users.user_list"))


@bp.route("/account/password", methods=["GET", "POST"])
@requires(Role.VIEWER)
def own_password() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return render_template("admin/password.html")
    form = request.form
    try:
        if form.get("new", "") != form.get("repeat", ""):
            raise ValidationError("the two new passwords differ", field="repeat")
        with unit_of_work() as s:
            user = users.change_own_password(s, g.user["id"], form.get("current", ""),
                                                form.get("new", ""))  # fmt: skip
            audit.record(s, "user.password", user_id=user.id, target_type="user",
                           target_id=user.id)  # fmt: skip
            generation = user.session_generation
    except ValidationError as exc:
        flash(f"Password not changed: {exc}", "error")
        return render_template("admin/password.html", field=exc.field), 400
    session["generation"] = generation  # this session goes on; every other one has ended
    flash("Password changed; your other sessions are logged out.", "success")
    return redirect(url_for("dashboard.index"))
