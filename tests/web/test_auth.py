"""Login, roles on every route, CSRF on every form, throttled password guessing."""

from __future__ import annotations

import re

from flask import Flask

from campaigns.models import Role
from tests.web.conftest import PASSWORD, csrf_token, login


def test_every_admin_route_declares_the_role_it_needs(app: Flask) -> None:
    # The API has no admin session: every route of it needs a key (the next test).
    open_blueprints = {"auth", "public", "static", "favicon", "healthz", "api"}
    undeclared = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] not in open_blueprints
        and getattr(app.view_functions[rule.endpoint], "required_role", None) is None
    ]
    assert undeclared == []


def test_every_api_route_but_its_documents_refuses_a_request_without_a_key(app: Flask) -> None:
    client = app.test_client()
    documents = {"api.openapi", "api.docs", "api.unknown"}  # api.unknown: the 404 catch-all
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint in documents:
            continue
        # Every id 1, every choice its first: a path the route answers.
        path = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", re.sub(r"<int:\w+>", "1", rule.rule))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            answer = client.open(path, method=method, json={})
            assert answer.status_code == 401, (method, path, answer.status_code)
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_a_visitor_who_is_not_logged_in_is_sent_to_the_login_page(app: Flask) -> None:
    answer = app.test_client().get("/campaigns")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=/campaigns")


def test_a_viewer_can_look_but_not_reach_an_editors_action(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.VIEWER)
    assert client.get("/campaigns").status_code == 200
    assert client.get("/campaigns/new").status_code == 403
    token = csrf_token(client, "/contacts")
    answer = client.post("/contacts", data={"email": "x@example.com", "csrf_token": token})
    assert answer.status_code == 403
    assert client.get("/users").status_code == 403


def test_an_editor_can_add_a_contact_but_not_manage_users(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    token = csrf_token(client, "/contacts")
    answer = client.post("/contacts", data={"email": "New@Example.com", "csrf_token": token})
    assert answer.status_code == 302
    assert "new@example.com" in client.get("/contacts").get_data(as_text=True)
    assert client.get("/users").status_code == 403


def test_a_bad_contact_form_says_which_field_is_wrong(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    token = csrf_token(client, "/contacts")
    answer = client.post("/contacts", data={"email": "not-an-address", "csrf_token": token})
    assert answer.status_code == 400
    assert "&#39;not-an-address&#39; is not a valid e-mail address" in answer.get_data(as_text=True)


def test_a_post_without_a_csrf_token_is_refused(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.ADMIN)
    answer = client.post("/contacts", data={"email": "x@example.com"})
    assert answer.status_code == 400
    assert "did not come from this site" in answer.get_data(as_text=True)
    assert "x@example.com" not in client.get("/contacts").get_data(as_text=True)


def test_a_wrong_password_is_refused(app: Flask) -> None:
    client = app.test_client()
    answer = client.post(
        "/login",
        data={"email": "admin@example.com", "password": "wrong", "csrf_token": csrf_token(client)},
    )
    assert answer.status_code == 401
    assert "wrong" in answer.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still not logged in


def test_repeated_failures_are_throttled_even_for_the_right_password(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client)
    for _ in range(5):
        answer = client.post(
            "/login", data={"email": "admin@example.com", "password": "guess", "csrf_token": token}
        )
        assert answer.status_code == 401
    answer = client.post(
        "/login", data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0
    assert "too many failed logins" in answer.get_data(as_text=True)


def test_the_session_cookie_is_http_only_and_same_site(app: Flask) -> None:
    client = app.test_client()
    answer = client.post(
        "/login",
        data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_never_redirects_off_site(app: Flask) -> None:
    client = app.test_client()
    answer = client.post(
        "/login?next=//evil.example.com/",
        data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert answer.headers["Location"] == "/"
