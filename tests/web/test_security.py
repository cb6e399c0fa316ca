"""Holes an attack run found (RELIABILITY.md 37–40): forged sessions, open redirects after
login, sessions that outlive logout, parallel password guessing, 5xx on typed URLs."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.config import PUBLISHED_SECRETS, Settings, load_or_create_secret_key
from campaigns.db import Database
from campaigns.delivery.tokens import Tokens
from campaigns.errors import ConfigError, LoginThrottled, TokenInvalid
from campaigns.models import LoginAttempt, Role, User
from tests.conftest import ROOT
from tests.web.conftest import PASSWORD, create_test_app, csrf_token, login

OLD_CONSTANT = next(iter(PUBLISHED_SECRETS))


def _forged_cookie(app: Flask, secret: str, user_id: int, generation: int = 0) -> str:
    """A session cookie as an attacker would sign it with a key they know."""
    forger = Flask("forger")
    forger.secret_key = secret
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    return str(serializer.dumps({"user_id": user_id, "generation": generation}))


def _user(s: Session, email: str) -> User:
    return next(u for u in users.list_users(s) if u.email == email)


def _admin_id(db: Database) -> int:
    with db.unit_of_work() as s:
        return _user(s, "admin@example.com").id


def test_a_session_forged_with_the_old_built_in_key_is_refused(app: Flask, db: Database) -> None:
    client = app.test_client()
    client.set_cookie("campaigns_session", _forged_cookie(app, OLD_CONSTANT, _admin_id(db)))
    answer = client.get("/users")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")


def test_the_old_built_in_key_is_refused_as_a_setting() -> None:
    with pytest.raises(ConfigError, match="published"):
        Settings.from_env({"SECRET_KEY": OLD_CONSTANT})
    with pytest.raises(ConfigError, match="published"):
        Settings.from_env({"SECRET_KEY": "a" * 32, "OLD_SECRET_KEYS": OLD_CONSTANT})


def test_without_a_secret_key_the_web_app_refuses_to_start(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_test_app(replace(settings, secret_key=""), Database("sqlite://"))


def test_campaigns_web_without_a_secret_key_says_how_to_make_one(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CAMPAIGNS_DATA_DIR": str(tmp_path)}
    answer = subprocess.run(
        [sys.executable, "-m", "campaigns.cli", "web"], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert answer.returncode != 0
    assert "SECRET_KEY is not set" in answer.stderr
    assert "secrets.token_urlsafe" in answer.stderr


def test_the_key_made_on_first_start_is_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_secret_key(tmp_path / "var")
    key_file = tmp_path / "var" / "secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(first) >= 32 and first not in PUBLISHED_SECRETS
    key_file.chmod(0o644)
    assert load_or_create_secret_key(tmp_path / "var") == first
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_a_rotated_key_still_opens_sent_links_but_never_a_session(
    app: Flask, db: Database, settings: Settings
) -> None:
    old, new = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
    link = Tokens(old).sign("open", 7)
    rotated = Tokens(new, old_keys=(old,))
    assert rotated.verify("open", link) == (7,)
    with pytest.raises(TokenInvalid):
        Tokens(new).verify("open", link)

    rotated_app = create_test_app(
        replace(settings, secret_key=new, old_secret_keys=(old,)), db
    )  # fmt: skip
    client = rotated_app.test_client()
    client.set_cookie("campaigns_session", _forged_cookie(app, old, _admin_id(db)))
    assert client.get("/users").status_code == 302


@pytest.mark.parametrize(
    "raw_next",  # as typed in the address bar, percent-encoding included
    [
        "/%09/evil.example.com/",
        "/%5Cevil.example.com",
        "%5C%5Cevil.example.com",
        "//evil.example.com/",
        "/%2F/evil.example.com/",
        "%0A/evil",
        "/%0D%0ASet-Cookie:x=1",
        "https://evil.example.com/",
        "https:%2F%2Fevil.example.com/",
        "http:evil.example.com",
        "javascript:alert(1)",
        "%20//evil.example.com",
        "/%E2%80%AE//evil.example.com",
    ],
)
def test_login_never_leaves_the_site_whatever_next_says(app: Flask, raw_next: str) -> None:
    client = app.test_client()
    answer = client.post(
        f"/login?next={raw_next}",
        data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert not location.scheme and not location.netloc
    assert location.path.startswith("/") and not location.path.startswith("//")
    assert "\\" not in location.path and not any(ord(c) < 0x20 for c in location.path)


def test_login_goes_back_to_the_page_asked_for(app: Flask) -> None:
    client = app.test_client()
    answer = client.post(
        "/login?next=/campaigns%3Fpage%3D2",
        data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert answer.headers["Location"] == "/campaigns?page=2"


def _session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("campaigns_session")
    assert cookie is not None
    return cookie.value


def test_a_cookie_replayed_after_logout_is_refused(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.ADMIN)
    stolen = _session_cookie(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    thief = app.test_client()
    thief.set_cookie("campaigns_session", stolen)
    assert thief.get("/users").status_code == 302


def test_a_password_change_or_disabling_ends_every_session(app: Flask, db: Database) -> None:
    for change in ("password", "disable"):
        client = app.test_client()
        login(client, Role.EDITOR)
        assert client.get("/campaigns").status_code == 200
        with db.unit_of_work() as s:
            editor = _user(s, "editor@example.com")
            if change == "password":
                users.set_password(s, editor.id, PASSWORD)
            else:
                users.set_active(s, editor.id, False)
        answer = client.get("/campaigns")
        assert answer.status_code == 302, change
        with db.unit_of_work() as s:
            users.set_active(s, _user(s, "editor@example.com").id, True)


def test_parallel_wrong_logins_let_no_more_than_the_limit_through(db: Database) -> None:
    guesses = 12
    barrier = threading.Barrier(guesses)
    outcomes: list[str] = []

    def guess() -> None:
        barrier.wait()
        try:
            with db.unit_of_work() as s:
                users.authenticate(s, "admin@example.com", "guess", remote_addr="10.9.9.9")
            outcomes.append("checked")
        except LoginThrottled:
            outcomes.append("throttled")

    threads = [threading.Thread(target=guess) for _ in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == guesses
    assert outcomes.count("checked") == users.MAX_FAILURES_PER_EMAIL
    with db.unit_of_work() as s:
        assert s.query(LoginAttempt).count() == users.MAX_FAILURES_PER_EMAIL


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/outbox/..%2f..%2fsecret-key",
        "/outbox/..%2f..%2fsecret-key/html",
        "/outbox/%00",
        "/letters/versions/99999/preview",
        "/contacts/..%2f..",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/no/such/page",
        "/campaigns/99999",
        "/letters/99999",
    ],
)
def test_a_typed_url_answers_4xx_with_a_page_never_5xx(app: Flask, path: str) -> None:
    client = app.test_client()
    login(client, Role.ADMIN)
    answer = client.get(path)
    assert 400 <= answer.status_code < 500, (path, answer.status_code)
    if answer.mimetype == "text/html":
        assert "Back to the dashboard" in answer.get_data(as_text=True)


def test_an_admin_disabling_a_user_on_the_users_page_logs_them_out(app: Flask) -> None:
    editor = app.test_client()
    login(editor, Role.EDITOR)
    admin = app.test_client()
    login(admin, Role.ADMIN)
    page = admin.get("/users").get_data(as_text=True)
    action = re.search(r'action="(/users/\d+/disable)"', page.split("editor@example.com")[1])
    assert action is not None
    answer = admin.post(action.group(1), data={"csrf_token": csrf_token(admin, "/users")})
    assert answer.status_code == 302
    assert "editor@example.com is disabled" in admin.get("/users").get_data(as_text=True)
    assert editor.get("/campaigns").status_code == 302


def test_changing_your_password_keeps_this_session_and_ends_the_others(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, Role.VIEWER)
    login(phone, Role.VIEWER)
    token = csrf_token(laptop, "/account/password")
    wrong = laptop.post("/account/password", data={
        "current": "not it", "new": "a new long password", "repeat": "a new long password",
        "csrf_token": token})  # fmt: skip
    assert wrong.status_code == 400
    assert "the current password is wrong" in wrong.get_data(as_text=True)
    answer = laptop.post("/account/password", data={
        "current": PASSWORD, "new": "a new long password", "repeat": "a new long password",
        "csrf_token": token})  # fmt: skip
    assert answer.status_code == 302
    assert laptop.get("/campaigns").status_code == 200
    assert phone.get("/campaigns").status_code == 302
