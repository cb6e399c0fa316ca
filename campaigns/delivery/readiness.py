"""What the sending setup still lacks before letters reach customers as they should.

Read from the settings alone (no DNS or network look-up), so the dashboard can list the gaps
on every visit until they are closed: where letters go, where their links point, whether
they are signed, and whether they say who sent them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from campaigns.config import Settings

# Names no mail or web can reach (RFC 2606, RFC 6761): fine for a demo, never for customers.
_EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
_RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost", ".local")


@dataclass(frozen=True)
class Gap:
    """One missing piece of the setup: `stop` ones keep letters from working for customers."""

    key: str
    level: Literal["stop", "advice"]
    text: str
    fix: str


def gaps(settings: Settings) -> list[Gap]:
    """Every gap of this setup, the ones that stop letters from working first."""
    found: list[Gap] = []
    if settings.smtp_url is None or settings.smtp_is_outbox:
        found.append(Gap(
            "smtp", "stop", "Letters go to the Outbox on this machine, not to customers.",
            "Set SMTP_URL to your mail server (smtp+starttls://user:password@host:587).",
        ))  # fmt: skip
    host = (urlsplit(settings.public_url).hostname or "").lower()
    if _unreachable(host):
        found.append(Gap(
            "public_url", "stop",
            f"Links in letters point at {settings.public_url}, which customers cannot open: "
            "no click, open, unsubscribe or renewal would reach this server.",
            "Set PUBLIC_URL to the https address customers reach this server at.",
        ))  # fmt: skip
    elif not settings.public_url.startswith("https://"):
        found.append(Gap(
            "https", "advice",
            f"Links in letters use http ({settings.public_url}): mail readers and browsers "
            "warn about them, and admin cookies travel unencrypted.",
            "Serve the web part over https and set PUBLIC_URL to the https:// address.",
        ))  # fmt: skip
    if _unreachable(settings.sender_domain.lower()):
        found.append(Gap(
            "sender", "stop",
            f"Letters are sent as {settings.sender_email}, an address no mailbox provider "
            "accepts mail from.",
            "Set SENDER to your own address, e.g. Customer Care <care@yourcompany.com>.",
        ))  # fmt: skip
    if settings.dkim_private_key_file is None:
        found.append(Gap(
            "dkim", "advice",
            "Letters are not signed with DKIM: Gmail and Yahoo require it of bulk senders, "
            "and DMARC needs it to pass.",
            "Set DKIM_PRIVATE_KEY_FILE and DKIM_SELECTOR and publish the public key "
            "(README, DKIM).",
        ))  # fmt: skip
    elif not _aligned(settings.sender_domain, settings.dkim_domain or settings.sender_domain):
        found.append(Gap(
            "dkim_alignment", "advice",
            f"Letters are signed for {settings.dkim_domain} but sent from "
            f"{settings.sender_domain}: DMARC does not count such a signature.",
            "Set DKIM_DOMAIN to the sender's domain or a parent of it.",
        ))  # fmt: skip
    if not settings.company.address:
        found.append(Gap(
            "postal_address", "advice",
            "Letters show no postal address: the law asks commercial mail for one (CAN-SPAM "
            "in the US, the sender's identity in the EU).",
            "Set COMPANY_ADDRESS (lines separated by \\n).",
        ))  # fmt: skip
    return sorted(found, key=lambda gap: gap.level != "stop")


def _unreachable(host: str) -> bool:
    """Whether a host name or address is one customers' mail or browsers cannot reach."""
    if not host or host == "localhost" or host in _EXAMPLE_DOMAINS:
        return True
    if host.endswith(_RESERVED_SUFFIXES) or any(host.endswith("." + d) for d in _EXAMPLE_DOMAINS):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a bare machine name
    return address.is_loopback or address.is_private or address.is_link_local


def _aligned(sender_domain: str, dkim_domain: str) -> bool:
    """DMARC's relaxed alignment: the signing domain is the sender's or a parent of it."""
    sender, signer = sender_domain.lower().rstrip("."), dkim_domain.lower().rstrip(".")
    return sender == signer or sender.endswith("." + signer)
