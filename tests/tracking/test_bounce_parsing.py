"""Reading bounce and complaint mail as real servers send it, and the settings of the rules."""

from __future__ import annotations

import pytest

from campaigns.config import Settings
from campaigns.errors import ConfigError
from campaigns.models import EventKind
from campaigns.tracking import bounces
from tests.tracking.conftest import report_mail

VERP = "bounces+WzEyMzQ1XQ.XkYtZ7s4R2vuMso3CelncVdYFv4@example.com"
TOKEN = "WzEyMzQ1XQ.XkYtZ7s4R2vuMso3CelncVdYFv4"


@pytest.mark.parametrize(
    ("fixture", "kind", "source", "severity", "status"),
    [
        ("dsn_postfix_user_unknown", EventKind.BOUNCE, "dsn", "hard", "5.1.1"),
        ("dsn_gmail_mailbox_full", EventKind.BOUNCE, "dsn", "soft", "5.2.2"),
        ("qmail_failure_notice", EventKind.BOUNCE, "text", "hard", "5.1.1"),
        ("arf_abuse", EventKind.COMPLAINT, "arf", "", ""),
    ],
)
def test_bounces_and_complaints_are_read_with_the_clues_to_their_letter(
    fixture: str, kind: EventKind, source: str, severity: str, status: str
) -> None:
    raw = report_mail(
        fixture, verp=VERP, recipient="bob@example.org", message_id="<m.1@example.com>"
    )
    report = bounces.parse(raw)
    assert report is not None
    assert (report.kind, report.source, report.severity, report.status) == (
        kind, source, severity, status)  # fmt: skip
    assert report.tokens == (TOKEN,)
    assert report.message_ids == ("<m.1@example.com>",)
    assert report.recipient in ("bob@example.org", "")  # qmail names no recipient field


@pytest.mark.parametrize("fixture", ["dsn_delayed", "out_of_office"])
def test_delay_notices_and_auto_replies_are_neither(fixture: str) -> None:
    raw = report_mail(fixture, verp=VERP, recipient="bob@example.org", message_id="<m@x>")
    assert bounces.parse(raw) is None


def test_the_address_a_bounce_was_mailed_to_is_the_first_clue() -> None:
    raw = report_mail("dsn_postfix_user_unknown", verp="bounces@example.com",
                      recipient="bob@example.org", message_id="<m.1@example.com>")  # fmt: skip
    report = bounces.parse(raw, envelope_recipients=(VERP,))
    assert report is not None and report.tokens == (TOKEN,)


def test_bounce_settings_default_to_the_sender_domain_and_are_checked() -> None:
    rules = Settings.from_env({"SENDER": "Care <care@Mail.Example.com>"}).bounces
    assert (rules.domain, rules.smtp_host, rules.smtp_port, rules.soft_limit) == (
        "mail.example.com", "127.0.0.1", 2525, 3)  # fmt: skip
    assert (rules.pause_min_sent, rules.pause_hard_percent, rules.pause_complaint_percent) == (
        500, 5.0, 0.3)  # fmt: skip
    assert rules.ses_topics == ()
    for bad in ({"BOUNCE_DOMAIN": "not a domain"}, {"PAUSE_COMPLAINT_PERCENT": "120"},
                {"SES_SNS_TOPICS": "my-topic"}, {"SOFT_BOUNCE_LIMIT": "0"}):  # fmt: skip
        with pytest.raises(ConfigError):
            Settings.from_env(bad)
