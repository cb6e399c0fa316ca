"""Machine traffic rules, checked with User-Agents as proxies, scanners and people send them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.db import utcnow
from campaigns.tracking.machines import (
    LINKS_TOGETHER,
    SOON_AFTER_DELIVERY,
    Click,
    Hit,
    clicked_together,
    reason,
)

NOW = utcnow()
LONG_AGO = NOW - timedelta(hours=3)

PEOPLE = [
    # Gmail on the web, in Chrome (images come through Google's proxy, clicks from the person)
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    # Apple Mail on an iPhone, privacy protection off: WebKit with Mobile, no Safari token,
    # but not from Apple's network
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    # Safari on a Mac
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
    # Outlook for Windows (Word renders its mail; it names itself)
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    # Thunderbird
    "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1",
    # Firefox on Android
    "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
    # A CUBOT phone: "bot" inside a maker's name is not a bot
    "Mozilla/5.0 (Linux; Android 9; CUBOT_X19) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/110.0.0.0 Mobile Safari/537.36",
]

MACHINES = [
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "google-image-proxy"),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
     "yahoo-mail-proxy"),
    ("Microsoft Office Existence Discovery", "microsoft-scanner"),
    ("Microsoft Office Protocol Discovery", "microsoft-scanner"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "BingPreview/1.0b", "microsoft-scanner"),
    ("Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", "microsoft-scanner"),
    ("Barracuda Sentinel (EE)", "barracuda"),
    ("Mimecast-URL-Protect/1.0", "mimecast"),
    ("Proofpoint URL Defense", "proofpoint"),
    ("Symantec Email Security.cloud link scanner", "symantec"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot"),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "bot"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "bot"),
    ("curl/7.88.1", "http-library"),
    ("python-requests/2.31.0", "http-library"),
    ("Python-urllib/3.11", "http-library"),
    ("Go-http-client/1.1", "http-library"),
    ("Wget/1.21.3", "http-library"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/124.0.0.0 Safari/537.36", "headless-browser"),
]  # fmt: skip

APPLE_MPP_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)


@pytest.mark.parametrize("agent", PEOPLE)
def test_people_browsing_from_ordinary_networks_are_people(agent: str) -> None:
    assert reason(Hit("GET", "203.0.113.9", agent), sent_at=LONG_AGO, now=NOW) is None


@pytest.mark.parametrize(("agent", "why"), MACHINES)
def test_known_proxies_and_scanners_are_machines_named_by_their_agent(agent: str, why: str) -> None:
    assert reason(Hit("GET", "203.0.113.9", agent), sent_at=LONG_AGO, now=NOW) == why


def test_apple_privacy_protection_is_a_bare_webkit_agent_from_apples_network() -> None:
    assert reason(Hit("GET", "17.58.101.7", APPLE_MPP_AGENT), sent_at=LONG_AGO, now=NOW) == (
        "apple-mpp"
    )
    # The same agent elsewhere is Apple Mail on a Mac with the protection off.
    assert reason(Hit("GET", "198.51.100.4", APPLE_MPP_AGENT), sent_at=LONG_AGO, now=NOW) is None
    # Someone at Apple reading the letter in Safari is a person.
    safari = PEOPLE[2]
    assert reason(Hit("GET", "17.58.101.7", safari), sent_at=LONG_AGO, now=NOW) is None
    # The address as a dual-stack listener reports it.
    mapped = Hit("GET", "::ffff:17.58.101.7", APPLE_MPP_AGENT)
    assert reason(mapped, sent_at=LONG_AGO, now=NOW) == "apple-mpp"


def test_hits_from_googles_proxy_ranges_are_machines_whatever_they_say() -> None:
    chrome = PEOPLE[0]
    assert reason(Hit("GET", "66.102.8.33", chrome), sent_at=LONG_AGO, now=NOW) == "google-proxy"
    assert reason(Hit("GET", "66.249.84.1", chrome), sent_at=LONG_AGO, now=NOW) == "google-proxy"
    assert reason(Hit("GET", "66.102.16.1", chrome), sent_at=LONG_AGO, now=NOW) is None


def test_head_requests_and_missing_agents_are_machines() -> None:
    chrome = PEOPLE[0]
    assert reason(Hit("HEAD", "203.0.113.9", chrome), sent_at=LONG_AGO, now=NOW) == "head-request"
    assert reason(Hit("GET", "203.0.113.9", ""), sent_at=LONG_AGO, now=NOW) == "no-user-agent"
    assert reason(Hit("GET", "not an address", chrome), sent_at=LONG_AGO, now=NOW) is None


def test_a_hit_within_seconds_of_delivery_is_a_gateway_not_a_reader() -> None:
    chrome = PEOPLE[0]
    just_sent = NOW - SOON_AFTER_DELIVERY + timedelta(milliseconds=100)
    a_bit_later = NOW - SOON_AFTER_DELIVERY - timedelta(milliseconds=100)
    hit = Hit("GET", "203.0.113.9", chrome)
    assert reason(hit, sent_at=just_sent, now=NOW) == "soon-after-delivery"
    assert reason(hit, sent_at=a_bit_later, now=NOW) is None
    assert reason(hit, sent_at=None, now=NOW) is None


def test_clicks_on_different_links_within_a_second_are_all_flagged() -> None:
    half = LINKS_TOGETHER / 2
    clicks = [
        Click(1, "link:1", NOW),
        Click(1, "link:1", NOW + half),  # the same link again: a double click
        Click(1, "link:2", NOW + 3 * half),  # another link, within a second of the one before
        Click(2, "link:1", NOW),  # another letter's click at the same time
        Click(2, "renewal:7", NOW + 3 * LINKS_TOGETHER),  # another link, but much later
        Click(3, "link:5", NOW + half),
        Click(3, "link:6", NOW),  # out of order: still found
    ]
    assert clicked_together(clicks) == {1, 2, 5, 6}


def test_a_person_clicking_two_links_seconds_apart_is_not_flagged() -> None:
    clicks = [Click(1, "link:1", NOW), Click(1, "link:2", NOW + 4 * LINKS_TOGETHER)]
    assert clicked_together(clicks) == set()
