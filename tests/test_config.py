"""Settings come from the environment with safe defaults and clear errors."""

from __future__ import annotations

import pytest

from campaigns.config import Caps, Settings
from campaigns.errors import ConfigError


def test_defaults_run_locally_on_sqlite_redis_and_the_catcher() -> None:
    settings = Settings.from_env({"CAMPAIGNS_DATA_DIR": "/tmp/somewhere"})
    assert settings.database_url == "sqlite:////tmp/somewhere/campaigns.db"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.smtp_url is None
    assert settings.sender_email == "care@example.com"
    assert settings.cookie_secure is False
    # Nobody is flooded by default: 2 marketing letters a week, a day apart; 3 service a day.
    assert settings.caps == Caps(marketing_per_week=2, marketing_gap_hours=24, service_per_day=3)
    assert settings.max_lateness_hours == 24


def test_the_frequency_caps_and_lateness_are_settings() -> None:
    settings = Settings.from_env({
        "CAP_MARKETING_PER_WEEK": "1", "CAP_MARKETING_GAP_HOURS": "48",
        "CAP_SERVICE_PER_DAY": "0", "MAX_LATENESS_HOURS": "6",
    })  # fmt: skip
    assert settings.caps == Caps(marketing_per_week=1, marketing_gap_hours=48, service_per_day=0)
    assert settings.max_lateness_hours == 6


def test_a_postgresql_url_is_given_the_shipped_driver() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u:p@db/campaigns"})
    assert settings.database_url == "postgresql+psycopg://u:p@db/campaigns"


def test_an_https_public_url_makes_cookies_secure() -> None:
    assert Settings.from_env({"PUBLIC_URL": "https://mail.example.com/"}).cookie_secure is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"SMTP_URL": "http://relay"}, "SMTP_URL"),
        ({"WEB_PORT": "eighty"}, "WEB_PORT='eighty' is not a whole number"),
        ({"WEB_PORT": "70000"}, "out of range"),
        ({"SECRET_KEY": "short"}, "at least 16 characters"),
        ({"SENDER": "Care <care@example.com>\r\nBcc: x@evil.test"}, "SENDER"),
        ({"CAP_MARKETING_PER_WEEK": "-1"}, "CAP_MARKETING_PER_WEEK"),
        ({"MAX_LATENESS_HOURS": "0"}, "MAX_LATENESS_HOURS"),
    ],
)
def test_a_bad_value_is_refused_with_a_message_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
