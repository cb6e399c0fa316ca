"""`campaigns run` on embedded defaults: a private signing key made once and kept."""

from __future__ import annotations

import mailbox
import re
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import urlsplit

from campaigns.config import PUBLISHED_SECRETS
from campaigns.embedded.services import RedisServer
from tests.conftest import run_command, wait_until


def test_the_run_command_makes_a_private_key_once_and_reuses_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    key_file = tmp_path / "var" / "secret-key"
    with run_command(tmp_path, redis_server, "--no-demo") as (_banner, log):
        assert key_file.stat().st_mode & 0o777 == 0o600
        first = key_file.read_text()
        assert "signing key: " in log.read_text()
    assert first.strip() and first.strip() not in PUBLISHED_SECRETS
    with run_command(tmp_path, redis_server, "--no-demo"):
        assert key_file.read_text() == first
        assert key_file.stat().st_mode & 0o777 == 0o600


def test_with_only_web_port_set_letters_link_to_that_port(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    outbox = tmp_path / "var" / "outbox"
    with run_command(tmp_path, redis_server) as (banner, log):
        admin_url = banner.group(1).rstrip("/")
        port = urlsplit(admin_url).port
        assert f"letters link to http://127.0.0.1:{port}" in log.read_text()
        letters = wait_until(lambda: outbox.is_dir() and list(mailbox.Maildir(outbox)),
                             timeout=60, what="the demo letters in the Outbox")  # fmt: skip
    message = BytesParser(policy=default_policy).parsebytes(letters[0].as_bytes())
    html = message.get_body(preferencelist=("html",)).get_content()
    urls = re.findall(r'(?:href|src)="(http[^"]+)"', html)
    assert any("/o/" in url for url in urls), html
    tracked = [url for url in urls if re.search(r"/[oc]/", url)]
    assert tracked and all(url.startswith(f"http://127.0.0.1:{port}/") for url in tracked)
