"""Real services for the suite: Redis, PostgreSQL, an SMTP server, and Dramatiq workers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from campaigns import schema
from campaigns.config import Settings
from campaigns.db import Base, Database
from campaigns.embedded.services import PostgresServer, RedisServer, SMTPCatcher, free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "campaigns.db"
    schema.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    url = postgres_server.create_database("campaigns_test")
    schema.upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or PostgreSQL with tables emptied."""
    if request.param == "sqlite":
        path = tmp_path / "campaigns.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    database = Database(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with database.unit_of_work() as session:
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    database.dispose()
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def smtp_server() -> Iterator[SMTPCatcher]:
    server = SMTPCatcher().start()
    yield server
    server.stop()


@pytest.fixture
def env(
    database_url: str, redis_server: RedisServer, smtp_server: SMTPCatcher, tmp_path: Path
) -> dict[str, str]:
    """The environment a product process of this test runs with."""
    return dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=redis_server.url,
        SMTP_URL=smtp_server.url,
        SECRET_KEY="test-secret-key-0123456789",
        PUBLIC_URL="http://campaigns.test",
        CAMPAIGNS_DATA_DIR=str(tmp_path / "var"),
        TICK_SECONDS="0.2",
        # Tests send several letters to the same people within seconds; frequency caps have
        # tests of their own (tests/delivery/test_automations.py), with the default caps.
        CAP_MARKETING_PER_WEEK="0",
        CAP_MARKETING_GAP_HOURS="0",
        CAP_SERVICE_PER_DAY="0",
        WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",  # the tests' webhook receivers listen on loopback
    )


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def start_worker(env: dict[str, str], log: Path, *, threads: int = 2) -> subprocess.Popen[bytes]:
    """Start a real Dramatiq worker process logging to `log` (a new file); wait till it is ready."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1",
             "--threads", str(threads)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while b"ready for action" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process, as an operator would, and wait (SIGKILL to its group after 15 s).

    Only the process itself: Dramatiq's main process forwards the signal to its workers,
    and a worker that gets a second SIGTERM (the group's) takes it as "kill now".
    """
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        kill(process)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and its children (Dramatiq forks its workers): no goodbye."""
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


@pytest.fixture
def worker(env: dict[str, str], redis_server: RedisServer, tmp_path: Path) -> Iterator[Path]:
    """A real Dramatiq worker process on the test's Redis; yields its log file."""
    # Ledger ids restart in every test database: no message of an earlier test may survive.
    redis.Redis.from_url(redis_server.url).flushall()
    log = tmp_path / "worker.log"
    process = start_worker(env, log)
    yield log
    stop(process)


def wait_until(check, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def run_command(
    tmp_path: Path, redis_server: RedisServer, *args: str, **extra_env: str
) -> Iterator[tuple[re.Match[str], Path]]:
    """`campaigns run` on the data dir `tmp_path/var`; yields its banner and its log file."""
    redis.Redis.from_url(redis_server.url).flushall()
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SMTP_URL", "SECRET_KEY", "PUBLIC_URL")}  # fmt: skip
    env.update(CAMPAIGNS_DATA_DIR=str(tmp_path / "var"), REDIS_URL=redis_server.url,
               WEB_PORT=str(port), TICK_SECONDS="0.5")  # fmt: skip
    env.update(extra_env)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaigns.cli", "run", *args], env=env, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:

        def started() -> re.Match[str] | None:
            if process.poll() is not None:
                pytest.fail(f"`campaigns run` exited with {process.returncode}:\n{log.read_text()}")
            return re.search(r"Admin:\s+(\S+)\s+Login:\s+(\S+) / (\S+)", log.read_text())

        banner = wait_until(started, timeout=60, what="the run command's banner")
        yield banner, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def scheduler_once(env: dict[str, str]) -> str:
    """Run one scheduler tick as the `campaigns scheduler --once` command; return its output."""
    tick = subprocess.run(
        [sys.executable, "-m", "campaigns.cli", "scheduler", "--once"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert tick.returncode == 0, tick.stderr
    return tick.stdout
