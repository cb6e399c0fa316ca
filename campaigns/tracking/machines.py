"""Machine traffic: whether a hit on a letter's pixel or links was a person or a machine, and why.

Privacy proxies fetch every image of a letter whether or not anyone reads it, and mail
gateways' link scanners follow every link before the recipient sees the letter. Their hits
are recorded, flagged, with the rule that caught them as the reason; rates count people.
The rules are documented, with their sources and limits, in docs/machine-traffic.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

# Hits this soon after the letter left are gateways and proxies fetching on arrival: no
# person has opened the letter yet, let alone clicked in it.
SOON_AFTER_DELIVERY = timedelta(seconds=5)
# Two different links of one letter followed this close together: a scanner following every
# link (a person needs longer to come back from the first page and choose another link).
LINKS_TOGETHER = timedelta(seconds=1)

# Markers in a lower-cased User-Agent, with the reason recorded. First match wins.
AGENTS: tuple[tuple[str, str], ...] = (
    ("googleimageproxy", "google-image-proxy"),
    ("yahoomailproxy", "yahoo-mail-proxy"),
    ("existence discovery", "microsoft-scanner"),  # Office checking that a link exists
    ("protocol discovery", "microsoft-scanner"),
    ("bingpreview", "microsoft-scanner"),
    ("skypeuripreview", "microsoft-scanner"),  # Teams / Skype link previews
    ("barracuda", "barracuda"),
    ("mimecast", "mimecast"),
    ("proofpoint", "proofpoint"),
    ("symantec", "symantec"),
    ("messagelabs", "symantec"),
    ("trendmicro", "trend-micro"),
    ("python-requests", "http-library"),
    ("python-urllib", "http-library"),
    ("python-httpx", "http-library"),
    ("aiohttp", "http-library"),
    ("go-http-client", "http-library"),
    ("okhttp", "http-library"),
    ("apache-httpclient", "http-library"),
    ("java/", "http-library"),
    ("libwww-perl", "http-library"),
    ("curl/", "http-library"),
    ("wget/", "http-library"),
    ("headlesschrome", "headless-browser"),
    ("phantomjs", "headless-browser"),
)  # fmt: skip
# "bot" as a word or a product name (Googlebot/2.1, Slackbot-LinkExpanding, bingbot), not
# inside a word: the phone maker CUBOT's models say "CUBOT_X19" or "CUBOT P30".
BOT = re.compile(r"(?<!cu)bot(?:\b|[/_-])|spider|crawler")

# Apple Mail Privacy Protection fetches from Apple's own network with a bare WebKit agent;
# Apple Mail on a device says Safari or Version too, and so do people browsing at Apple.
APPLE = ipaddress.ip_network("17.0.0.0/8")
# Google's image proxy (Gmail) and its link checks fetch from these ranges, also without
# saying so in the User-Agent at times.
GOOGLE = (ipaddress.ip_network("66.102.0.0/20"), ipaddress.ip_network("66.249.64.0/19"))


@dataclass(frozen=True, slots=True)
class Hit:
    """What the web edge knows of a request for a pixel or a tracked link."""

    method: str = "GET"
    remote_addr: str = ""
    user_agent: str = ""


def reason(hit: Hit, *, sent_at: datetime | None, now: datetime) -> str | None:
    """Return why `hit` was a machine's, or None if it looks like a person's."""
    if hit.method.upper() == "HEAD":
        return "head-request"  # browsers never HEAD a link; checkers do
    agent = hit.user_agent.lower()
    if not agent.strip():
        return "no-user-agent"  # every mail client and browser sends one
    by_agent = agent_reason(agent)
    if by_agent is not None:
        return by_agent
    address = _address(hit.remote_addr)
    if address is not None:
        if address in APPLE and _bare_webkit(agent):
            return "apple-mpp"
        if any(address in google for google in GOOGLE):
            return "google-proxy"
    if sent_at is not None and now - sent_at < SOON_AFTER_DELIVERY:
        return "soon-after-delivery"
    return None


@lru_cache(maxsize=1024)
def agent_reason(agent: str) -> str | None:
    """Return the reason a lower-cased User-Agent names a known machine, or None."""
    for marker, why in AGENTS:
        if marker in agent:
            return why
    return "bot" if BOT.search(agent) else None


def _bare_webkit(agent: str) -> bool:
    return "applewebkit" in agent and "safari/" not in agent and "version/" not in agent


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:17.58.1.2 on a dual-stack listener
    return ip


@dataclass(frozen=True, slots=True)
class Click:
    """A click (on a tracked link or a renewal link) of a delivery, for `clicked_together`."""

    delivery_id: int
    link: str  # which link: different links of a letter have different values
    at: datetime


def clicked_together(clicks: Sequence[Click]) -> set[int]:
    """Return the positions in `clicks` of those within LINKS_TOGETHER of a click of another
    link of the same delivery: a scanner following every link of a letter at once."""
    by_delivery: dict[int, list[int]] = {}
    for position, click in enumerate(clicks):
        by_delivery.setdefault(click.delivery_id, []).append(position)
    together: set[int] = set()
    for positions in by_delivery.values():
        positions.sort(key=lambda p: clicks[p].at)
        # Forwards: a click of another link shortly before; backwards: shortly after.
        for order in (positions, positions[::-1]):
            last: dict[str, datetime] = {}  # link -> its click seen last in this direction
            for position in order:
                click = clicks[position]
                if any(abs(click.at - at) <= LINKS_TOGETHER
                       for link, at in last.items() if link != click.link):  # fmt: skip
                    together.add(position)
                last[click.link] = click.at
    return together


def judge_click(
    hit: Hit, *, sent_at: datetime | None, clicks: Sequence[tuple[str, datetime]], now: datetime
) -> tuple[str | None, set[int]]:
    """Judge the last of a letter's recent `clicks` ((which link, when), oldest first), made
    now by `hit`: why it was a machine's (None: a person's), and the positions of the earlier
    clicks that it shows to be a machine's (another link of the letter within a second)."""
    together = clicked_together([Click(0, link, at) for link, at in clicks])
    last = len(clicks) - 1
    why = reason(hit, sent_at=sent_at, now=now)
    if why is None and last in together:
        why = "links-together"
    return why, together - {last}
