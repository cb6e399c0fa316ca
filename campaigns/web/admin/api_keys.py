"""API keys (admins only): create one (its secret shown once), list them, revoke one."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from campaigns.accounts import api_keys, audit
from campaigns.errors import ValidationError
from campaigns.models import ApiScope, Role
from campaigns.web.auth import requires
from campaigns.web.context import unit_of_work

bp = Blueprint("api_keys", __name__)


@bp.route("/api-keys")
@requires(Role.ADMIN)
def key_list() -> str:
    return _page()


@bp.route("/api-keys", methods=["POST"])
@requires(Role.ADMIN)
def key_create() -> str | tuple[str, int]:
    form = request.form
    try:
        scope = ApiScope(form.get("scope", ""))
    except ValueError:
        flash("Key not created: choose read or write.", "error")
        return _page(name=form.get("name", "")), 400
    try:
        with unit_of_work() as s:
            key, secret = api_keys.create_key(s, form.get("name", ""), scope=scope,
                                              user_id=g.user["id"])  # fmt: skip
            audit.record(s, "api_key.create", user_id=g.user["id"], target_type="api_key",
                         target_id=key.id, scope=scope, prefix=key.prefix)  # fmt: skip
    except ValidationError as exc:
        flash(f"Key not created: {exc}", "error")
        return _page(name=form.get("name", ""), field=exc.field), 400
    # Rendered in this answer, never flashed: a flash message travels in the session cookie.
    return _page(secret=secret, created=key.name)


@bp.route("/api-keys/<int:key_id>/revoke", methods=["POST"])
@requires(Role.ADMIN)
def key_revoke(key_id: int) -> Response:
    with unit_of_work() as s:
        key = api_keys.revoke_key(s, key_id)
        audit.record(s, "api_key.revoke", user_id=g.user["id"], target_type="api_key",
                     target_id=key.id, prefix=key.prefix)  # fmt: skip
        name = key.name
    flash(f"Revoked the key {name}: requests with it are refused from now on.", "success")
    return redirect(url_for("api_keys.key_list"))


def _page(**extra: object) -> str:
    with unit_of_work() as s:
        keys = api_keys.list_keys(s)
        return render_template("admin/api_keys.html", keys=keys, scopes=list(ApiScope),
                               mark=api_keys.KEY_MARK, **extra)  # fmt: skip
