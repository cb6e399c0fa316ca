"""Customer-facing endpoints: open pixel, tracked clicks and renewal links (no login, fast).

Each hit verifies its token, makes at most one look-up (the URL a link leads to) and is
written by the process's hit writer with the others of its moment (campaigns.tracking.hits).
"""

from __future__ import annotations

import base64

from flask import Response, current_app, g, request

from campaigns.delivery.tokens import Tokens

# Loaded with the app so the admin's previews know every merge field (context._extend_authoring).
from campaigns.tracking import events, renewals
from campaigns.tracking.machines import Hit
from campaigns.web.context import database, settings
from campaigns.web.public import bp

PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


def _tokens() -> Tokens:
    # One per app, not one per hit: making one derives its keys.
    extension = current_app.extensions["campaigns"]
    found: Tokens | None = extension.get("tracking_tokens")
    if found is None:
        found = extension["tracking_tokens"] = Tokens.from_settings(settings())
    return found


def _from_admin() -> bool:
    # Staff looking at a letter in the admin (the Outbox) are not the customer.
    return g.get("user") is not None


def _hit() -> Hit:
    """The request as machine-traffic rules see it (campaigns.tracking.machines)."""
    address = request.remote_addr or ""
    header = settings().trusted_proxy_header
    if header and (forwarded := request.headers.get(header, "")):
        # The proxy appends the address it saw: the last one is the only one it vouches for.
        address = forwarded.rsplit(",", 1)[-1].strip()
    return Hit(request.method, address, request.headers.get("User-Agent", ""))


@bp.route("/o/<token>.gif")
def open_pixel(token: str) -> Response:
    (delivery_id,) = _tokens().verify("open", token)
    if not _from_admin():
        events.record_open(database(), delivery_id, hit=_hit())
    return Response(PIXEL_GIF, mimetype="image/gif", headers=NO_STORE)


@bp.route("/c/<token>")
def click(token: str) -> Response:
    delivery_id, link_id = _tokens().verify("click", token, arity=2)
    if _from_admin():
        url = events.click_url(database(), delivery_id, link_id)
    else:
        url = events.record_click(database(), delivery_id, link_id, hit=_hit())
    return _redirect(url)


@bp.route("/r/<token>")
def renewal(token: str) -> Response:
    """A letter's renewal link: record the click, send the customer to the contract's shop."""
    delivery_id, contract_id, percent = _tokens().verify("renewal", token, arity=3)
    code = settings().company.discount_code if percent > 0 else ""
    if _from_admin():
        url = renewals.with_discount(renewals.renewal_url(database(), delivery_id, contract_id),
                                     code)  # fmt: skip
    else:
        url = renewals.record_renewal_click(
            database(), delivery_id, contract_id, hit=_hit(), discount_percent=percent,
            discount_code=code,
        )  # fmt: skip
    return _redirect(url)


def _redirect(url: str) -> Response:
    # No HTML body: werkzeug's `redirect` escapes the URL into one, for no reader.
    return Response(status=302, headers={"Location": url, **NO_STORE})
