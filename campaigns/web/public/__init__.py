"""Customer-facing pages and endpoints: no login, signed tokens, readable on a phone.

One module per concept: `tracking` (open pixel, tracked clicks, renewal links),
`subscriptions` (unsubscribe, one-click, preferences), `surveys` (rating links), `letters`
(view online, acknowledgment), `relays` (hosted relays' bounce and complaint notifications).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint

bp = Blueprint("public", __name__)

# Views that answer POSTs from mail providers, proxies or relays, which carry no CSRF token
# (RELIABILITY.md 27): every other public form is checked like the admin's.
CSRF_EXEMPT: list[Callable[..., Any]] = []


def csrf_exempt(view: Callable[..., Any]) -> Callable[..., Any]:
    CSRF_EXEMPT.append(view)
    return view


from campaigns.web.public import letters, relays, subscriptions, surveys, tracking  # noqa: E402,F401  (routes)
