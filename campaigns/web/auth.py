"""Login, logout, and role enforcement on every admin route (fail closed)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from campaigns import accounts
from campaigns.errors import LoginThrottled, NotFound
from campaigns.models import Role
from campaigns.web.context import unit_of_work

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
PUBLIC_BLUEPRINTS = {"auth", "public", "static"}


def requires(role: Role) -> Callable[[F], F]:
    """Declare the least role a view needs; views without a declaration are refused."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def install(app: Flask) -> None:
    @app.before_request
    def enforce_roles() -> Response | None:
        endpoint = request.endpoint or ""
        g.user = None
        user_id = session.get("user_id")
        if user_id is not None:
            try:
                with unit_of_work() as s:
                    user = accounts.get_user(s, int(user_id))
                    g.user = {"id": user.id, "email": user.email, "name": user.name,
                              "role": Role(user.role)}  # fmt: skip
            except NotFound:
                session.clear()
        if request.blueprint in PUBLIC_BLUEPRINTS or endpoint == "static":
            return None
        view = app.view_functions.get(endpoint)
        needed = getattr(view, "required_role", None)
        if needed is None:
            abort(404 if view is None else 403)  # undeclared views are closed, not open
        if g.user is None:
            return redirect(url_for("auth.login", next=request.full_path))
        if not g.user["role"].allows(needed):
            abort(403)
        return None

    @app.context_processor
    def inject_user() -> dict[str, Any]:
        user = g.get("user")
        return {
            "current_user": user,
            "can_edit": bool(user and user["role"].allows(Role.EDITOR)),
            "is_admin": bool(user and user["role"].allows(Role.ADMIN)),
        }


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("admin/login.html")
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    try:
        with unit_of_work() as s:
            user = accounts.authenticate(s, email, password, remote_addr=request.remote_addr or "")
            user_id = user.id if user else None
    except LoginThrottled as exc:
        flash(str(exc), "error")
        response = Response(render_template("admin/login.html", email=email), status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if user_id is None:
        flash("The e-mail address or password is wrong.", "error")
        return render_template("admin/login.html", email=email), 401
    session.clear()  # a fresh session on login: no fixation
    session["user_id"] = user_id
    session.permanent = True
    target = request.args.get("next", "")
    # Only same-site paths: never an open redirect after login.
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = url_for("dashboard.index")
    return redirect(target)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
