"""What a worker process holds: its settings, one Database, one SMTP connection per thread."""

from __future__ import annotations

import os
import socket
import threading
from functools import cache

from campaigns.config import Settings
from campaigns.db import Database
from campaigns.delivery.mailer import SMTPMailer

_local = threading.local()


def worker_id() -> str:
    """This process, as the ledger names who claimed a row (host:pid; differs per fork)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def database() -> Database:
    # Created lazily, so each forked worker process opens its own connections.
    return Database(settings().database_url)


def mailer() -> SMTPMailer:
    """This thread's persistent SMTP connection (opened on first send)."""
    current: SMTPMailer | None = getattr(_local, "mailer", None)
    if current is None:
        config = settings()
        if not config.smtp_url:
            raise RuntimeError("SMTP_URL is not set; `campaigns run` sets it to its catcher")
        current = SMTPMailer(config.smtp_url, timeout=config.smtp_timeout)
        _local.mailer = current
    return current
