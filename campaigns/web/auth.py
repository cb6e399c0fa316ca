"""Login, logout, and role enforcement on every admin route (fail closed)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

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

from campaigns.accounts import users
from campaigns.errors import LoginThrottled, NotFound
from campaigns.models import Role
from campaigns.web.context import unit_of_work

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
PUBLIC_BLUEPRINTS = {"auth", "public", "static"}
PUBLIC_ENDPOINTS = {"static", "favicon"}


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
                    user = users.get_user(s, int(user_id))
                    if session.get("generation") != user.session_generation:
                        raise NotFound("this session was ended")  # logout, new password
                    g.user = {"id": user.id, "email": user.email, "name": user.name,
                              "role": Role(user.role)}  # fmt: skip
            except (NotFound, TypeError, ValueError):
                session.clear()
        if request.blueprint in PUBLIC_BLUEPRINTS or endpoint in PUBLIC_ENDPOINTS:
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
            user = users.authenticate(s, email, password, remote_addr=request.remote_addr or "")
            user_id = user.id if user else None
            generation = user.session_generation if user else None
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
    session["generation"] = generation
    session.permanent = True
    return redirect(same_site_path(request.args.get("next", "")) or url_for("dashboard.index"))


def same_site_path(target: str) -> str | None:
    """Return `target` if it is a path on this site, else None (never an open redirect).

    Parsed, not pattern-matched: browsers drop tabs and newlines and read a backslash as
    a slash, so `/\t/evil.example` or `/\\evil.example` would leave the site.
    """
    if not target.startswith("/") or target.startswith("//"):
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path.startswith("//"):
        return None
    return urlunsplit(("", "", parts.path, parts.query, ""))


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    if g.get("user"):
        with unit_of_work() as s:
            users.end_sessions(s, g.user["id"])
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
