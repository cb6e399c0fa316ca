"""The dashboard names what the sending setup lacks, and says no more once it is complete."""

from __future__ import annotations

import dataclasses
import re

from flask import Flask

from campaigns.config import Company, Settings
from campaigns.db import Database
from campaigns.models import Role
from tests.web.conftest import create_test_app, login


def _setup_items(page: str) -> list[str]:
    section = re.search(r'<section id="setup">(.*?)</section>', page, re.S)
    return re.findall(r'<li class="gap-(\w+)"><strong>([^<]*)', section.group(1)) if section else []


def test_the_dashboard_lists_the_setup_gaps_the_blocking_ones_first(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.VIEWER)
    page = client.get("/").get_data(as_text=True)
    items = _setup_items(page)
    # The test settings: links to http://campaigns.test, the example sender, no DKIM key,
    # no postal address (SMTP_URL is set).
    assert [level for level, _ in items] == ["stop", "stop", "advice", "advice"]
    assert "http://campaigns.test" in items[0][1] and "care@example.com" in items[1][1]
    assert "Set PUBLIC_URL to the https address" in page
    assert "Set COMPANY_ADDRESS" in page


def test_a_complete_setup_shows_no_setup_section(
    app: Flask, settings: Settings, db: Database
) -> None:
    ready = dataclasses.replace(
        settings, public_url="https://letters.acme-support.com",
        sender_email="care@acme-support.com", dkim_private_key_file=settings.data_dir / "k.pem",
        company=Company(address="1 Harbour Road\nBristol BS1 5TT"),
    )  # fmt: skip
    client = create_test_app(ready, db).test_client()  # `app` made the users
    login(client, Role.VIEWER)
    page = client.get("/").get_data(as_text=True)
    assert "<h1>Dashboard</h1>" in page
    assert '<section id="setup">' not in page
