"""The Flask edge: create_app() wires the admin, the public endpoints and error pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from campaigns.config import Settings
from campaigns.db import Database

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"
Enqueue = Callable[[list[list[int]]], None]


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    enqueue: Enqueue | None = None,
) -> Flask:
    """Build the web application; `enqueue` hands ledger batches to the workers."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder=str(TEMPLATES), static_folder="static")
    app.config.update(
        # Only the current key signs sessions: no SECRET_KEY_FALLBACKS, so a retired
        # (possibly leaked) key can never log anyone in.
        SECRET_KEY=settings.require_secret_key(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_NAME="campaigns_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
    )
    app.extensions["campaigns"] = {
        "settings": settings,
        "db": database or Database(settings.database_url),
        "enqueue": enqueue or _enqueue_with_workers,
    }
    csrf = CSRFProtect(app)

    from campaigns.web import admin, api, auth, errors, public

    app.register_blueprint(auth.bp)
    for blueprint in admin.BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.register_blueprint(public.bp)
    for view in public.CSRF_EXEMPT:
        csrf.exempt(view)
    # The API authenticates each request by its key, never by the session: no CSRF to fear.
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
    auth.PUBLIC_BLUEPRINTS.add(api.bp.name)
    # Every browser asks for /favicon.ico on every page; answer it, not with the 404 page.
    app.add_url_rule("/favicon.ico", "favicon",
                     lambda: app.send_static_file("favicon.ico"))  # fmt: skip
    # For load balancers and monitors, and the empty route benchmarks compare hits with.
    app.add_url_rule("/healthz", "healthz", lambda: ("ok\n", 200, {"Content-Type": "text/plain"}))
    auth.PUBLIC_ENDPOINTS.add("healthz")
    auth.install(app)
    errors.install(app)
    return app


def _enqueue_with_workers(batches: list[list[int]]) -> None:
    # Imported on first use so the web process needs Redis only when it enqueues.
    from workers.actors import enqueue

    enqueue(batches)
