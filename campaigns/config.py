"""Settings.from_env() — the one place configuration is read."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from campaigns.errors import ConfigError

DEFAULT_DATA_DIR = Path("var")
# Keys that were ever published (in this code or its docs): a session or token signed with
# one of them could be forged by anyone, so they are refused wherever a key is read.
PUBLISHED_SECRETS = frozenset({"dev-only-secret-change-me"})
SECRET_KEY_FILE = "secret-key"
# Set by `campaigns run` for its children when it starts the local catcher as SMTP_URL.
OUTBOX_FLAG = "CAMPAIGNS_SMTP_IS_OUTBOX"
MAKE_A_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


@dataclass(frozen=True)
class Settings:
    """Everything the product needs to know about its surroundings."""

    database_url: str
    redis_url: str
    smtp_url: str | None
    secret_key: str  # empty when unset: require_secret_key() refuses to go on
    public_url: str
    sender_name: str
    sender_email: str
    data_dir: Path
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    tick_seconds: float = 5.0
    # Automations are decided at most this often (their steps are days, their windows hours;
    # at 1M contracts deciding them costs the database about 2 s even when nothing is due).
    automation_seconds: float = 60.0
    batch_size: int = 200
    smtp_timeout: float = 30.0
    heartbeat_seconds: float = 10.0
    worker_stale_seconds: float = 60.0
    reconcile_seconds: float = 120.0
    send_rate_per_second: int = 0  # 0: no global rate
    domain_rates: tuple[tuple[str, int], ...] = ()
    cookie_secure: bool = False
    # SMTP_URL is the local catcher `campaigns run` starts when none is set: the Outbox.
    smtp_is_outbox: bool = False
    reply_to: str = ""  # where replies to letters go; empty: to the sender
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0: workers export no metrics
    # The header a reverse proxy puts the client's address in; empty: the socket's peer.
    trusted_proxy_header: str = ""
    # Retired keys still accepted for tracking links already sent; never for sessions.
    old_secret_keys: tuple[str, ...] = ()
    # DKIM signing: on when a key file is given; the domain defaults to the sender's.
    dkim_private_key_file: Path | None = None
    dkim_selector: str = ""
    dkim_domain: str = ""
    # What letters say about the company (the `company` merge field), and its discount rules.
    company: Company = field(default_factory=lambda: Company())
    # Bounces and complaints (docs/bounces.md): where they come back, and what they decide.
    bounces: Bounces = field(default_factory=lambda: Bounces())
    # Webhooks out (docs/webhooks.md): how often they are sent, how patiently.
    webhooks: Webhooks = field(default_factory=lambda: Webhooks())
    # How many letters a customer may get, by category (legal letters are never capped).
    caps: Caps = field(default_factory=lambda: Caps())
    # A scheduled campaign this late (a long outage, a restored backup) is not sent by itself.
    max_lateness_hours: int = 24
    # How renewals are credited and reported (campaigns.tracking.conversions and .results).
    results: Results = field(default_factory=lambda: Results())

    @property
    def outbox_dir(self) -> Path:
        """Maildir where the local SMTP catcher keeps what it received."""
        return self.data_dir / "outbox"

    def require_secret_key(self) -> str:
        """Return the signing key, or stop with a message that says how to make one."""
        if not self.secret_key:
            raise ConfigError(
                "SECRET_KEY is not set. `campaigns run` makes and keeps one for a single "
                "machine; to run the parts separately, generate one with "
                f"`{MAKE_A_KEY}` and give every part the same SECRET_KEY"
            )
        return self.secret_key

    def metrics_environment(self) -> dict[str, str]:
        """The variables Dramatiq's Prometheus middleware reads, for a worker group's processes.

        They must be in the environment before Dramatiq's main process starts, since it
        forks the exposition server itself. Each group keeps its own multi-process directory
        so two groups on one machine do not mix their figures.
        """
        if not self.metrics_port:
            return {}
        return {
            "dramatiq_prom_host": self.metrics_host,
            "dramatiq_prom_port": str(self.metrics_port),
            "dramatiq_prom_db": str(self.data_dir / f"metrics-{self.metrics_port}"),
        }

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
        web_host = env.get("WEB_HOST", "127.0.0.1")
        web_port = _int(env, "WEB_PORT", 8000, low=1, high=65535)
        public_url = (env.get("PUBLIC_URL") or local_url(web_host, web_port)).rstrip("/")
        _check_url("PUBLIC_URL", public_url, {"http", "https"})
        secret_key = env.get("SECRET_KEY", "")
        if secret_key:
            _check_secret("SECRET_KEY", secret_key)
        old_keys = tuple(k.strip() for k in env.get("OLD_SECRET_KEYS", "").split(",") if k.strip())
        for key in old_keys:
            _check_secret("OLD_SECRET_KEYS", key)
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
            web_host=web_host,
            web_port=web_port,
            tick_seconds=_float(env, "TICK_SECONDS", 5.0, low=0.05),
            automation_seconds=_float(env, "AUTOMATION_SECONDS", 60.0, low=0.05),
            batch_size=_int(env, "BATCH_SIZE", 200, low=1, high=10_000),
            smtp_timeout=_float(env, "SMTP_TIMEOUT", 30.0, low=0.1),
            heartbeat_seconds=_float(env, "HEARTBEAT_SECONDS", 10.0, low=0.1),
            worker_stale_seconds=_float(env, "WORKER_STALE_SECONDS", 60.0, low=0.5),
            reconcile_seconds=_float(env, "RECONCILE_SECONDS", 120.0, low=0.5),
            send_rate_per_second=_int(env, "SEND_RATE_PER_SECOND", 0, low=0, high=1_000_000),
            domain_rates=_domain_rates(env.get("DOMAIN_RATES", "")),
            cookie_secure=public_url.startswith("https://"),
            smtp_is_outbox=env.get(OUTBOX_FLAG) == "1" and smtp_url is not None,
            reply_to=_reply_to(env.get("REPLY_TO", "")),
            metrics_host=env.get("METRICS_HOST", "127.0.0.1"),
            metrics_port=_int(env, "METRICS_PORT", 0, low=0, high=65535),
            trusted_proxy_header=_header_name(env, "TRUSTED_PROXY_HEADER"),
            old_secret_keys=old_keys,
            **_dkim(env, sender_email),
            company=_company(env, sender_name, sender_email),
            bounces=_bounces(env, sender_email),
            webhooks=Webhooks(
                seconds=_float(env, "WEBHOOK_SECONDS", 10.0, low=0.05),
                max_attempts=_int(env, "WEBHOOK_MAX_ATTEMPTS", 8, low=1, high=30),
                timeout_seconds=_float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0, low=0.1),
                allow_networks=_networks(env, "WEBHOOK_ALLOW_NETWORKS"),
                keep_days=_int(env, "WEBHOOK_KEEP_DAYS", 30, low=1, high=3650),
            ),
            caps=Caps(
                marketing_per_week=_int(env, "CAP_MARKETING_PER_WEEK", 2, low=0, high=100),
                marketing_gap_hours=_int(env, "CAP_MARKETING_GAP_HOURS", 24, low=0, high=24 * 30),
                service_per_day=_int(env, "CAP_SERVICE_PER_DAY", 3, low=0, high=100),
            ),
            max_lateness_hours=_int(env, "MAX_LATENESS_HOURS", 24, low=1, high=24 * 365),
            results=Results(
                attribution_days=_int(env, "ATTRIBUTION_DAYS", 30, low=1, high=366),
                currency=_currency_code(env.get("REPORT_CURRENCY", "EUR"), "REPORT_CURRENCY"),
                rates=_rates(env.get("CURRENCY_RATES", "")),
                refresh_seconds=_float(env, "REPORT_SECONDS", 300.0, low=0.05),
            ),
        )


@dataclass(frozen=True)
class Caps:
    """Frequency caps: what one customer may get, so that nobody is flooded.

    At most `marketing_per_week` marketing letters in any 7 days, and none within
    `marketing_gap_hours` of another letter of any kind; at most `service_per_day` service
    letters in any 24 hours. Legal letters are never capped. 0 turns a rule off.
    """

    marketing_per_week: int = 2
    marketing_gap_hours: int = 24
    service_per_day: int = 3


@dataclass(frozen=True)
class Results:
    """Renewals and reports.

    A renewal is credited to the last renewal or expiry letter delivered for its contract
    within `attribution_days` before it (none: organic). Revenue is shown per currency, and
    also as a total in `currency` when `rates` (how much one unit of a currency is worth
    in `currency`) cover every currency seen. The report figures are rebuilt every
    `refresh_seconds` by the scheduler (and on demand in the admin).
    """

    attribution_days: int = 30
    currency: str = "EUR"
    rates: tuple[tuple[str, Decimal], ...] = ()
    refresh_seconds: float = 300.0


@dataclass(frozen=True)
class Company:
    """The company letters speak for: the `company` merge field and its discount rules.

    A renewal offer carries a discount only for long-standing customers (a customer for at
    least `discount_min_years`) or high-spend ones (lifetime spend of at least
    `discount_min_spend`); 0 switches a rule off, and a percent of 0 switches discounts off.
    """

    name: str = "Customer Care"
    address: str = ""
    support_email: str = "care@example.com"
    support_terms_url: str = ""
    logo_url: str = ""
    brand_colour: str = "#0f4c81"
    currency: str = "EUR"
    incident_price: Decimal = Decimal("0")  # priority phone support, per incident; 0: unstated
    # The incident price's currency (the service settings'); "": `currency`.
    incident_currency: str = ""
    discount_min_years: int = 3
    discount_min_spend: Decimal = Decimal("5000")
    discount_percent: int = 10
    discount_code: str = "LOYALTY"


@dataclass(frozen=True)
class Bounces:
    """Where bounce mail comes back to, and the rules it is judged by (docs/bounces.md).

    Letters go out with the envelope sender `bounces+<signed delivery id>@<domain>`; a hard
    bounce or a complaint suppresses the address at once, `soft_limit` soft bounces in a
    row do too; a running campaign pauses once at least `pause_min_sent` of its letters
    went out and more than `pause_hard_percent` of them bounced hard, or more than
    `pause_complaint_percent` drew a complaint.
    """

    domain: str = "example.com"  # the domain of the envelope sender (its MX: our receiver)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    soft_limit: int = 3
    pause_min_sent: int = 500
    pause_hard_percent: float = 5.0
    pause_complaint_percent: float = 0.3
    # Amazon SNS topics whose SES notifications POST /hooks/ses accepts; none: it is off.
    ses_topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Webhooks:
    """Webhooks out: collected and sent every `seconds`; a subscriber that does not answer
    2xx within `timeout_seconds` is tried again with back-off, `max_attempts` times in all."""

    seconds: float = 10.0
    max_attempts: int = 8
    timeout_seconds: float = 10.0
    # Networks besides the public internet that webhooks may be posted to (CIDR texts); none:
    # a subscriber's host must resolve to public addresses only (no loopback, private, link-
    # local or cloud metadata address: the product is not a way into its own network).
    allow_networks: tuple[str, ...] = ()
    keep_days: int = 30  # delivered and failed webhooks are removed from the log after this


def _bounces(env: Mapping[str, str], sender_email: str) -> Bounces:
    """BOUNCE_*, SOFT_BOUNCE_LIMIT, PAUSE_* and SES_SNS_TOPICS, checked."""
    domain = (env.get("BOUNCE_DOMAIN", "") or sender_email.rpartition("@")[2]).lower()
    if not _DNS_NAME.fullmatch(domain):
        raise ConfigError(f"BOUNCE_DOMAIN={domain!r} is not a DNS name (letters, digits, '-', '.')")
    topics = tuple(t.strip() for t in env.get("SES_SNS_TOPICS", "").split(",") if t.strip())
    for topic in topics:
        if not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}", topic):
            raise ConfigError(f"SES_SNS_TOPICS: {topic!r} is not a topic ARN like "
                              "arn:aws:sns:eu-west-1:123456789012:ses-bounces")  # fmt: skip
    return Bounces(
        domain=domain, smtp_host=env.get("BOUNCE_SMTP_HOST", "127.0.0.1"),
        smtp_port=_int(env, "BOUNCE_SMTP_PORT", 2525, low=1, high=65535),
        soft_limit=_int(env, "SOFT_BOUNCE_LIMIT", 3, low=1, high=100),
        pause_min_sent=_int(env, "PAUSE_MIN_SENT", 500, low=1, high=100_000_000),
        pause_hard_percent=_percent(env, "PAUSE_HARD_BOUNCE_PERCENT", 5.0),
        pause_complaint_percent=_percent(env, "PAUSE_COMPLAINT_PERCENT", 0.3),
        ses_topics=topics,
    )  # fmt: skip


def _percent(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default, low=0.0)
    if value > 100:
        raise ConfigError(f"{name}={value} is a percentage: 0 to 100")
    return value


_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_CURRENCY = re.compile(r"[A-Z]{3}")


def _company(env: Mapping[str, str], sender_name: str, sender_email: str) -> Company:
    """COMPANY_*, SUPPORT_*, BRAND_COLOUR, INCIDENT_PRICE and DISCOUNT_*, checked."""
    name = env.get("COMPANY_NAME", "").strip() or sender_name or "Customer Care"
    # Lines of the address, separated by newlines or a literal "\n" (as .env files allow).
    raw_address = env.get("COMPANY_ADDRESS", "").replace("\\n", "\n")
    address = "\n".join(filter(None, (line.strip() for line in raw_address.splitlines())))
    for var in ("SUPPORT_TERMS_URL", "COMPANY_LOGO_URL"):
        if env.get(var):
            _check_url(var, env[var], {"https", "http"})
    colour = env.get("BRAND_COLOUR", "") or "#0f4c81"
    if not _COLOUR.fullmatch(colour):
        raise ConfigError(f"BRAND_COLOUR={colour!r} must be a colour like #0f4c81")
    currency = (env.get("COMPANY_CURRENCY", "") or "EUR").upper()
    if not _CURRENCY.fullmatch(currency):
        raise ConfigError(f"COMPANY_CURRENCY={currency!r} must be a currency code like EUR")
    code = env.get("DISCOUNT_CODE", "") or "LOYALTY"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", code):
        raise ConfigError(f"DISCOUNT_CODE={code!r} must be letters, digits, '-' or '_'")
    return Company(
        name=name, address=address.strip(),
        support_email=env.get("SUPPORT_EMAIL", "").strip() or sender_email,
        support_terms_url=env.get("SUPPORT_TERMS_URL", ""),
        logo_url=env.get("COMPANY_LOGO_URL", ""), brand_colour=colour.lower(),
        currency=currency, incident_price=_money(env, "INCIDENT_PRICE", "0"),
        discount_min_years=_int(env, "DISCOUNT_MIN_YEARS", 3, low=0, high=100),
        discount_min_spend=_money(env, "DISCOUNT_MIN_SPEND", "5000"),
        discount_percent=_int(env, "DISCOUNT_PERCENT", 10, low=0, high=90),
        discount_code=code,
    )  # fmt: skip


def _money(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name}={raw!r} is not an amount like 90 or 90.50") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{name}={raw!r} must be an amount of 0 or more")
    return value.quantize(Decimal("0.01"))


_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
MAKE_A_DKIM_KEY = "openssl genrsa -out dkim.pem 2048"


def _dkim(env: Mapping[str, str], sender_email: str) -> dict[str, Any]:
    """DKIM_PRIVATE_KEY_FILE, DKIM_SELECTOR and DKIM_DOMAIN, checked together."""
    key_file, selector = env.get("DKIM_PRIVATE_KEY_FILE", ""), env.get("DKIM_SELECTOR", "")
    domain = env.get("DKIM_DOMAIN", "") or sender_email.rpartition("@")[2]
    if not key_file:
        if selector or env.get("DKIM_DOMAIN"):
            raise ConfigError(
                "DKIM_SELECTOR and DKIM_DOMAIN need DKIM_PRIVATE_KEY_FILE, the PEM file of the "
                f"signing key (make one with `{MAKE_A_DKIM_KEY}`)"
            )
        return {}
    if not selector:
        raise ConfigError("DKIM_SELECTOR must be set with DKIM_PRIVATE_KEY_FILE: it names the "
                          "DNS record of the public key, e.g. DKIM_SELECTOR=mail2026 for "
                          f"mail2026._domainkey.{domain}")  # fmt: skip
    for name, value in (("DKIM_SELECTOR", selector), ("DKIM_DOMAIN", domain)):
        if not _DNS_NAME.fullmatch(value):
            raise ConfigError(f"{name}={value!r} is not a DNS name (letters, digits, '-' and '.')")
    path = Path(key_file).expanduser()
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"DKIM_PRIVATE_KEY_FILE={key_file!r} cannot be read: "
                          f"{exc.strerror or exc}") from None  # fmt: skip
    try:
        from dkim.crypto import parse_pem_private_key  # only where DKIM is on

        parse_pem_private_key(pem)
    except Exception:
        raise ConfigError(
            f"DKIM_PRIVATE_KEY_FILE={key_file!r} holds no RSA private key in PEM form; make "
            f"one with `{MAKE_A_DKIM_KEY}`"
        ) from None
    return {"dkim_private_key_file": path.resolve(), "dkim_selector": selector,
            "dkim_domain": domain.lower()}  # fmt: skip


def _reply_to(raw: str) -> str:
    _name, address = parseaddr(raw)
    if raw and ("@" not in address or "\r" in raw or "\n" in raw):
        raise ConfigError("REPLY_TO must look like 'Name <address@domain>' or an address")
    return raw.strip()


def _domain_rates(raw: str) -> tuple[tuple[str, int], ...]:
    rates: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        domain, _, value = item.partition("=")
        if not domain.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ConfigError(
                f"DOMAIN_RATES: {item!r} is not like gmail.com=20 (letters per second)"
            )
        rates.append((domain.strip().lower(), int(value)))
    return tuple(rates)


def _currency_code(raw: str, name: str) -> str:
    code = raw.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ConfigError(f"{name}: {raw!r} is not a three-letter currency code such as EUR")
    return code


def _rates(raw: str) -> tuple[tuple[str, Decimal], ...]:
    rates: list[tuple[str, Decimal]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        code, _, value = item.partition("=")
        try:
            rate = Decimal(value.strip())
        except InvalidOperation:
            rate = Decimal(0)
        if not re.fullmatch(r"[A-Za-z]{3}", code.strip()) or not rate > 0:
            raise ConfigError(
                f"CURRENCY_RATES: {item!r} is not like USD=0.92 (one USD in REPORT_CURRENCY)"
            )
        rates.append((code.strip().upper(), rate))
    return tuple(rates)


def local_url(host: str, port: int) -> str:
    """Where this machine's own web server answers: the default base of tracked links."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # listening everywhere: loopback answers too
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _check_secret(name: str, value: str) -> None:
    if value in PUBLISHED_SECRETS:
        raise ConfigError(
            f"{name} holds a key published in this product's code, so anyone could forge "
            f"sessions with it; generate your own with `{MAKE_A_KEY}`"
        )
    if len(value) < 16:
        raise ConfigError(
            f"{name} must be at least 16 characters; generate one with `{MAKE_A_KEY}`"
        )


def load_or_create_secret_key(data_dir: Path) -> str:
    """Return the key kept in the data dir, making a random one (mode 0600) on first use."""
    path = data_dir / SECRET_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        key = path.read_text().strip()
        _check_secret(str(path), key)
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


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


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = []
    for raw in env.get(name, "").split(","):
        if raw.strip():
            try:
                found.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
            except ValueError:
                raise ConfigError(f"{name}: {raw.strip()!r} is not a network like 10.20.0.0/16 "
                                  "or 192.0.2.7") from None  # fmt: skip
    return tuple(found)


def _header_name(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if raw and not re.fullmatch(r"[A-Za-z0-9-]+", raw):
        raise ConfigError(f"{name}={raw!r} is not an HTTP header name (like X-Forwarded-For)")
    return raw


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
