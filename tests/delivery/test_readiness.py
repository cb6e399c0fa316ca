"""The sending setup's gaps: what the dashboard lists until letters can reach customers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from campaigns.config import Settings
from campaigns.delivery.readiness import gaps

READY = {
    "SMTP_URL": "smtp+starttls://care:secret@mail.acme-support.com:587",
    "PUBLIC_URL": "https://letters.acme-support.com",
    "SENDER": "Acme Care <care@acme-support.com>",
    "COMPANY_ADDRESS": "1 Harbour Road\\nBristol BS1 5TT",
    "DKIM_SELECTOR": "mail2026",
    "SECRET_KEY": "readiness-test-key-0123456789",
}


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True,
                   capture_output=True)  # fmt: skip
    return path


def _keys(env: dict[str, str]) -> list[str]:
    return [gap.key for gap in gaps(Settings.from_env(env))]


def test_a_fresh_demo_install_lists_every_gap_the_blocking_ones_first() -> None:
    found = gaps(Settings.from_env({"SECRET_KEY": "readiness-test-key-0123456789"}))
    assert [(g.key, g.level) for g in found] == [
        ("smtp", "stop"), ("public_url", "stop"), ("sender", "stop"),
        ("dkim", "advice"), ("postal_address", "advice"),
    ]  # fmt: skip
    public_url = found[1]
    assert "http://127.0.0.1:8000" in public_url.text and "PUBLIC_URL" in public_url.fix
    assert "care@example.com" in found[2].text


def test_a_complete_setup_has_no_gap(dkim_key: Path) -> None:
    assert _keys({**READY, "DKIM_PRIVATE_KEY_FILE": str(dkim_key)}) == []


def test_the_run_commands_local_catcher_counts_as_no_mail_server(dkim_key: Path) -> None:
    env = {**READY, "DKIM_PRIVATE_KEY_FILE": str(dkim_key), "SMTP_URL": "smtp://127.0.0.1:2526",
           "CAMPAIGNS_SMTP_IS_OUTBOX": "1"}  # fmt: skip
    assert _keys(env) == ["smtp"]
    del env["CAMPAIGNS_SMTP_IS_OUTBOX"]  # a relay on this machine (a local Postfix) is one
    assert _keys(env) == []


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("http://letters.acme-support.com", ["https"]),
        ("https://10.0.0.5", ["public_url"]),
        ("https://campaigns.test", ["public_url"]),
        ("https://intranet", ["public_url"]),
        ("https://localhost:8443", ["public_url"]),
        ("https://[::1]:8000", ["public_url"]),
    ],
)
def test_links_customers_cannot_open_stop_and_plain_http_is_advised_against(
    dkim_key: Path, public_url: str, expected: list[str]
) -> None:
    env = {**READY, "DKIM_PRIVATE_KEY_FILE": str(dkim_key), "PUBLIC_URL": public_url}
    assert _keys(env) == expected


@pytest.mark.parametrize(
    ("sender", "dkim_domain", "expected"),
    [
        ("care@acme-support.com", "acme-support.com", []),
        ("care@mail.acme-support.com", "acme-support.com", []),  # a parent domain aligns
        ("care@acme-support.com", "mailer-host.net", ["dkim_alignment"]),
        ("care@acme-support.com", "mail.acme-support.com", ["dkim_alignment"]),
    ],
)
def test_a_signature_for_another_domain_is_named_as_not_aligned(
    dkim_key: Path, sender: str, dkim_domain: str, expected: list[str]
) -> None:
    env = {**READY, "DKIM_PRIVATE_KEY_FILE": str(dkim_key), "SENDER": sender,
           "DKIM_DOMAIN": dkim_domain}  # fmt: skip
    assert _keys(env) == expected


def test_an_example_sender_and_a_missing_address_are_named() -> None:
    env = {**READY, "SENDER": "Care <care@support.example>", "COMPANY_ADDRESS": "",
           "DKIM_SELECTOR": ""}  # fmt: skip
    assert _keys(env) == ["sender", "dkim", "postal_address"]
