"""`campaigns run` on embedded defaults: a private signing key made once and kept."""

from __future__ import annotations

from pathlib import Path

from campaigns.config import PUBLISHED_SECRETS
from campaigns.localservices import RedisServer
from tests.conftest import run_command


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
