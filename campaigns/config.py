"""Settings.from_env() — the one place configuration is read."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from campaigns.errors import ConfigError

DEFAULT_DATA_DIR = Path("var")
DEV_SECRET = "dev-only-secret-change-me"


@dataclass(frozen=True)
class Settings:
    """Everything the product needs to know about its surroundings."""

    database_url: str
    redis_url: str
    smtp_url: str | None
    secret_key: str
    public_url: str
    sender_name: str
    sender_email: str
    data_dir: Path
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    tick_seconds: float = 5.0
    batch_size: int = 200
    smtp_timeout: float = 30.0
    cookie_secure: bool = False

    @property
    def outbox_dir(self) -> Path:
        """Maildir where the local SMTP catcher keeps what it received."""
        return self.data_dir / "outbox"

    @property
    def sender_domain(self) -> str:
        return self.sender_email.rpartition("@")[2]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from the environment; unset values fall back to safe local defaults."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("CAMPAIGNS_DATA_DIR", str(DEFAULT_DATA_DIR))).resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'campaigns.db'}"
        _check_url("DATABASE_URL", database_url, {"sqlite", "postgresql", "postgresql+psycopg"})
        redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        _check_url("REDIS_URL", redis_url, {"redis", "rediss", "unix"})
        smtp_url = env.get("SMTP_URL") or None
        if smtp_url:
            _check_url("SMTP_URL", smtp_url, {"smtp", "smtps", "smtp+starttls"})
        public_url = (env.get("PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
        _check_url("PUBLIC_URL", public_url, {"http", "https"})
        secret_key = env.get("SECRET_KEY") or DEV_SECRET
        if secret_key != DEV_SECRET and len(secret_key) < 16:
            raise ConfigError(
                "SECRET_KEY must be at least 16 characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        sender = env.get("SENDER", "Customer Care <care@example.com>")
        sender_name, sender_email = parseaddr(sender)
        if "@" not in sender_email or "\r" in sender or "\n" in sender:
            raise ConfigError("SENDER must look like 'Name <address@domain>'")
        return cls(
            database_url=_normalise_database_url(database_url),
            redis_url=redis_url,
            smtp_url=smtp_url,
            secret_key=secret_key,
            public_url=public_url,
            sender_name=sender_name,
            sender_email=sender_email,
            data_dir=data_dir,
            web_host=env.get("WEB_HOST", "127.0.0.1"),
            web_port=_int(env, "WEB_PORT", 8000, low=1, high=65535),
            tick_seconds=_float(env, "TICK_SECONDS", 5.0, low=0.05),
            batch_size=_int(env, "BATCH_SIZE", 200, low=1, high=10_000),
            smtp_timeout=_float(env, "SMTP_TIMEOUT", 30.0, low=0.1),
            cookie_secure=public_url.startswith("https://"),
        )


def _normalise_database_url(url: str) -> str:
    # psycopg 3 is the driver we ship; a bare postgresql:// would ask for psycopg2.
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _check_url(name: str, value: str, schemes: set[str]) -> None:
    scheme = urlsplit(value).scheme
    if scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ConfigError(f"{name}={value!r} is not valid: the scheme must be one of {allowed}")


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range ({low}..{high})")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < low:
        raise ConfigError(f"{name}={value} must be at least {low}")
    return value
