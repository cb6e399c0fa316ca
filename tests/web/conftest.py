"""An admin app on the test database, users of each role, and a logged-in client helper."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaigns.accounts import users
from campaigns.config import Settings
from campaigns.db import Database
from campaigns.models import Role
from campaigns.tracking import hits

PASSWORD = "correct horse battery"


@pytest.fixture
def app(settings: Settings, db: Database) -> Iterator[Flask]:
    app = create_test_app(settings, db)
    with db.unit_of_work() as s:
        for role in Role:
            users.create_user(s, f"{role}@example.com", PASSWORD, role=role)
    yield app
    # Hits the tracking pages took are written behind them: before the database goes.
    hits.flush_all()


def create_test_app(settings: Settings, db: Database) -> Flask:
    from campaigns.web import create_app

    enqueued: list[list[int]] = []
    app = create_app(settings, database=db, enqueue=enqueued.extend)
    app.config["ENQUEUED"] = enqueued
    return app


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, role: Role | str) -> None:
    answer = client.post(
        "/login",
        data={
            "email": f"{role}@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)


def sign_in(page: Any, base: str, role: Role | str) -> None:
    """Log a Chromium page (Playwright) in as the user of `role`."""
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill(f"{role}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def watch(page: Any) -> list[str]:
    """What goes wrong on a Chromium page from now on: script errors and answers of 400 or
    more, each as a line (a test asserts the list stays empty)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 else None)  # fmt: skip
    return errors


def serve(app: Flask) -> tuple[str, Any]:
    """Serve the app on a free port in a thread, for a browser; returns (base URL, server)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server
