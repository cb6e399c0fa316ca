"""Start real Redis, PostgreSQL and an SMTP catcher on loopback for the run command and tests.

Production points DATABASE_URL, REDIS_URL and SMTP_URL at real services instead.
"""

from __future__ import annotations

import asyncio
import glob
import mailbox
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from campaigns.errors import CampaignsError


class ServiceError(CampaignsError):
    """A local service could not be started."""


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise ServiceError(f"{what} did not come up within {timeout:.0f}s")


class RedisServer:
    """A throwaway redis-server on loopback (Debian's `redis-server` package)."""

    def __init__(self, port: int | None = None, directory: Path | None = None) -> None:
        self.port = port or free_port()
        self.directory = directory or Path(tempfile.mkdtemp(prefix="campaigns-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed: apt-get install redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for(lambda: port_open("127.0.0.1", self.port), f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not found:
        raise ServiceError("PostgreSQL is not installed: apt-get install postgresql")
    return Path(found[0]).parent


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary directory, on loopback, fsync off.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="campaigns-pg-"))
        self.bindir = _postgres_bindir()
        self.started = False

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        prefix: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.directory, pw.pw_uid, pw.pw_gid)
            prefix = ["runuser", "-u", "postgres", "--"]
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, cwd="/")
        if result.returncode != 0:
            raise ServiceError(f"{args[0]} failed: {result.stderr.strip() or result.stdout}")

    def start(self) -> PostgresServer:
        data = self.directory / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8")  # fmt: skip
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")  # fmt: skip
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-o", options,
                  "-l", str(self.directory / "log"), "-w", "start")  # fmt: skip
        self.started = True
        return self

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"),
                      "-m", "immediate", "stop")  # fmt: skip
            self.started = False
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Received:
    """One letter as the SMTP server received it."""

    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data)


@dataclass
class _Handler:
    store: Callable[[Received], None]
    # Optional hook deciding the reply per envelope, for fault scenarios in tests.
    reply: Callable[[Received], str | None] | None = None
    # Optional hook: seconds to stall before answering RCPT for an address (a hanging server).
    rcpt_delay: Callable[[str], float] | None = None
    pipelining: bool = True  # offer PIPELINING (RFC 2920), as Postfix and most relays do
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")  # before the closing "250 HELP"
        return responses

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        delay = self.rcpt_delay(address) if self.rcpt_delay is not None else 0.0
        if delay:
            await asyncio.sleep(delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        if self.reply is not None:
            answer = self.reply(received)
            if answer is not None:
                return answer
        with self.lock:
            self.store(received)
        return "250 Message accepted for delivery"


class SMTPCatcher:
    """A real SMTP server (aiosmtpd) that keeps what it receives in memory or in a Maildir."""

    def __init__(self, *, port: int | None = None, maildir: Path | None = None,
                 pipelining: bool = True) -> None:  # fmt: skip
        self.port = port or free_port()
        self.pipelining = pipelining
        self.maildir = maildir
        self.messages: list[Received] = []
        self.reply: Callable[[Received], str | None] | None = None
        self.rcpt_delay: Callable[[str], float] | None = None
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _store(self, received: Received) -> None:
        self.messages.append(received)
        if self.maildir is not None:
            mailbox.Maildir(self.maildir, create=True).add(received.data)

    def start(self) -> SMTPCatcher:
        from aiosmtpd.controller import Controller

        if self.maildir is not None:
            self.maildir.parent.mkdir(parents=True, exist_ok=True)
        handler = _Handler(
            self._store,
            reply=lambda r: self.reply(r) if self.reply else None,
            rcpt_delay=lambda a: self.rcpt_delay(a) if self.rcpt_delay else 0.0,
            pipelining=self.pipelining,
        )
        self._controller = Controller(
            handler, hostname="127.0.0.1", port=self.port, data_size_limit=50 * 1024 * 1024
        )
        self._controller.start()
        return self

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until at least `count` letters have arrived; return them all."""
        _wait_for(lambda: len(self.messages) >= count, f"{count} letter(s)", timeout)
        return list(self.messages)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
