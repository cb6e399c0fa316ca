"""A guard against 5xx pages: every admin page reachable from the navigation, as every role.

New pages are covered without a change here: the crawler follows every link and frame it
finds, starting from the dashboard, on a product holding the demo data after a real send.
"""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling
from campaigns.embedded import demo
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Role
from tests.factories import deliver
from tests.web.conftest import login

LINK = re.compile(r'(?:href|src)="([^"#]+)"')
UNKNOWN = [
    "/no/such/page", "/contacts/999999", "/segments/999999", "/campaigns/999999",
    "/letters/999999", "/outbox/no-such-letter", "/letters/versions/999999/preview",
    "/%2e%2e/%2e%2e/etc/passwd", "/static/no-such.css", "/c/forged", "/o/forged.gif",
]  # fmt: skip
MAX_PAGES = 400


@pytest.fixture
def sent_demo(app: Flask, db: Database, settings: Settings) -> Flask:
    """The demo data, its campaign sent through a real SMTP server into the Outbox."""
    with db.unit_of_work() as s:
        demo.load(s, today=utcnow().date(), now=utcnow())
    with db.unit_of_work() as s:
        launches = scheduling.launch_due(s, now=utcnow())
    catcher = SMTPCatcher(maildir=settings.outbox_dir).start()
    try:
        deliver(db, [b for launch in launches for b in launch.batches], smtp_url=catcher.url,
                settings=settings)  # fmt: skip
    finally:
        catcher.stop()
    return app


def _crawl(client: FlaskClient, start: str = "/") -> dict[str, int]:
    """GET every same-site page reachable from `start`; return path → status."""
    seen: dict[str, int] = {}
    queue = deque([start])
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        answer = client.get(path)
        seen[path] = answer.status_code
        page = answer.get_data(as_text=True) if answer.mimetype == "text/html" else ""
        answer.close()  # static files are streamed from an open file
        if answer.status_code >= 300:
            continue
        for href in LINK.findall(page):
            target = urlsplit(urljoin(path, href.replace("&amp;", "&")))
            if target.netloc or target.scheme not in ("", "http"):
                continue  # off-site, data: or mailto:
            full = target.path + (f"?{target.query}" if target.query else "")
            if full not in seen:
                queue.append(full)
    return seen


@pytest.mark.parametrize("role", list(Role))
def test_every_page_reachable_as_each_role_answers_without_a_server_error(
    sent_demo: Flask, role: Role
) -> None:
    client = sent_demo.test_client()
    login(client, role)
    statuses = _crawl(client)
    broken = {path: status for path, status in statuses.items() if status >= 500}
    assert broken == {}
    assert all(status in (200, 302, 303, 403) for status in statuses.values()), statuses
    # The crawl really went through the product, not just the dashboard.
    for expected in ("/contacts/", "/segments/", "/campaigns/", "/letters/", "/outbox/"):
        assert any(path.startswith(expected) for path in statuses), (expected, statuses)
    if role == Role.ADMIN:
        assert statuses.get("/users") == 200


@pytest.mark.parametrize("logged_in", [True, False])
def test_unknown_urls_answer_4xx_and_the_favicon_is_served(app: Flask, logged_in: bool) -> None:
    client = app.test_client()
    if logged_in:
        login(client, Role.VIEWER)
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 200 and favicon.data[:4] == b"\x00\x00\x01\x00"
    favicon.close()
    for path in UNKNOWN:
        answer = client.get(path)
        answer.close()
        expected = (404,) if logged_in or path.startswith(("/c/", "/o/")) else (302, 404)
        assert answer.status_code in expected, (path, answer.status_code)
    if logged_in:
        page = client.get("/no/such/page")
        assert "404 · Not found" in page.get_data(as_text=True)
        assert "Back to the dashboard" in page.get_data(as_text=True)


def test_the_crawler_finds_a_page_that_fails(sent_demo: Flask) -> None:
    def broken() -> str:
        raise RuntimeError("a page that fails")

    broken.required_role = Role.VIEWER  # type: ignore[attr-defined]
    sent_demo.add_url_rule("/broken", "broken", broken)
    sent_demo.config["PROPAGATE_EXCEPTIONS"] = False
    client = sent_demo.test_client()
    login(client, Role.VIEWER)
    client.get("/")
    assert _crawl(client, start="/broken")["/broken"] == 500
