"""DKIM: letters signed with the configured key verify, and tampering breaks the signature."""

from __future__ import annotations

import base64
import dataclasses
import re
import subprocess
from pathlib import Path
from typing import Any

import dkim
import pytest

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery import sending
from campaigns.delivery.mailer import Letter, SMTPMailer, build_message, dkim_signer
from campaigns.embedded.services import SMTPCatcher
from campaigns.errors import ConfigError
from tests.factories import launch_now, schedule_campaign

SELECTOR = "mail2026"


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A 2048-bit key made as the README says, and the TXT record that publishes it."""
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True,
                   capture_output=True)  # fmt: skip
    public = subprocess.run(["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout  # fmt: skip
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def _dns(record: bytes, domain: str = "example.com") -> Any:
    def lookup(name: bytes, **_options: Any) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{domain}.".encode() else None

    return lookup


def _with_dkim(env: dict[str, str], key: Path, **extra: str) -> Settings:
    return Settings.from_env({**env, "DKIM_PRIVATE_KEY_FILE": str(key), "DKIM_SELECTOR": SELECTOR,
                              **extra})  # fmt: skip


def _signed_tags(data: bytes) -> dict[str, str]:
    match = re.search(rb"^DKIM-Signature: (.*?)\r\n(?! )(?!\t)", data, re.S | re.M)
    assert match is not None, "no DKIM-Signature header"
    value = re.sub(r"\s+", "", match.group(1).decode())
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def test_a_letter_from_the_smtp_server_verifies_and_covers_the_listed_headers(
    db: Database, env: dict[str, str], key_pair: tuple[Path, bytes], smtp_server: SMTPCatcher
) -> None:
    key, record = key_pair
    settings = _with_dkim(env, key)
    campaign_id = schedule_campaign(db, "Signed offer", ["ann@example.com"])
    (batch,) = launch_now(db)
    mailer = SMTPMailer(smtp_server.url)
    assert sending.deliver_batch(db, batch, mailer=mailer, settings=settings).sent == 1
    mailer.close()
    (received,) = smtp_server.wait_for(1)
    assert campaign_id

    assert dkim.verify(received.data, dnsfunc=_dns(record))
    tags = _signed_tags(received.data)
    assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    assert (tags["d"], tags["s"]) == ("example.com", SELECTOR)  # the sender's domain by default
    assert tags["h"].split(":") == ["from", "subject", "date", "message-id", "to",
                                    "list-unsubscribe", "list-unsubscribe-post"]  # fmt: skip

    tampered = re.sub(rb"(List-Unsubscribe: <[^>]*)>", rb"\1x>", received.data, count=1)
    assert tampered != received.data
    assert not dkim.verify(tampered, dnsfunc=_dns(record))
    dropped = received.data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"")
    assert dropped != received.data and not dkim.verify(dropped, dnsfunc=_dns(record))


def test_a_letter_without_unsubscribe_headers_is_signed_without_them(
    env: dict[str, str], key_pair: tuple[Path, bytes]
) -> None:
    key, record = key_pair
    settings = _with_dkim(env, key, DKIM_DOMAIN="Mail.Example.com")
    letter = Letter(sender_name="Care", sender_email="care@example.com", to="zoe@example.org",
                    subject="Grüße", html="<p>Hallo</p>", text="Hallo\n")  # fmt: skip
    data = build_message(letter, message_id="<1@example.com>", signer=dkim_signer(settings))
    assert _signed_tags(data)["h"] == "from:subject:date:message-id:to"
    assert _signed_tags(data)["d"] == "mail.example.com"
    assert dkim.verify(data, dnsfunc=_dns(record, "mail.example.com"))
    assert not dkim.verify(
        data.replace(b"Hallo", b"Hello", 1), dnsfunc=_dns(record, "mail.example.com")
    )


def test_the_key_is_read_and_parsed_once_per_process(
    env: dict[str, str], key_pair: tuple[Path, bytes]
) -> None:
    settings = _with_dkim(env, key_pair[0])
    again = dataclasses.replace(settings, batch_size=7)  # another Settings, the same key
    assert dkim_signer(settings) is dkim_signer(again) is not None
    assert dkim_signer(Settings.from_env(env)) is None  # no key: no signing


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"DKIM_SELECTOR": ""}, "DKIM_SELECTOR must be set with DKIM_PRIVATE_KEY_FILE"),
        ({"DKIM_SELECTOR": "bad selector"}, "DKIM_SELECTOR='bad selector' is not a DNS name"),
        ({"DKIM_PRIVATE_KEY_FILE": "/nonexistent/dkim.pem"}, "cannot be read"),
        ({"DKIM_PRIVATE_KEY_FILE": "", "DKIM_DOMAIN": "example.com"}, "need DKIM_PRIVATE_KEY"),
    ],
)
def test_a_dkim_setting_that_cannot_work_is_refused_with_what_to_do(
    env: dict[str, str], key_pair: tuple[Path, bytes], changes: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _with_dkim(env, key_pair[0], **changes)


def test_a_file_that_is_not_a_key_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    not_a_key = tmp_path / "dkim.pem"
    not_a_key.write_text("-----BEGIN NOTHING-----\nabc\n-----END NOTHING-----\n")
    with pytest.raises(ConfigError, match="no RSA private key in PEM form.*openssl genrsa"):
        _with_dkim(env, not_a_key)
