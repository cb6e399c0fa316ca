"""Customer-facing endpoints: open pixel, tracked clicks and renewal links (no login, fast)."""

from __future__ import annotations

import base64

from flask import Response, g, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from campaigns.delivery.tokens import Tokens

# Loaded with the app so the admin's previews know every merge field (context._extend_authoring).
from campaigns.tracking import events, renewals
from campaigns.web.context import settings, unit_of_work
from campaigns.web.public import bp

PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


def _tokens() -> Tokens:
    return Tokens.from_settings(settings())


def _from_admin() -> bool:
    # Staff looking at a letter in the admin (the Outbox) are not the customer.
    return g.get("user") is not None


@bp.route("/o/<token>.gif")
def open_pixel(token: str) -> Response:
    (delivery_id,) = _tokens().verify("open", token)
    if not _from_admin():
        with unit_of_work() as s:
            events.record_open(s, delivery_id, user_agent=request.headers.get("User-Agent", ""))
    return Response(PIXEL_GIF, mimetype="image/gif", headers=NO_STORE)


@bp.route("/c/<token>")
def click(token: str) -> WerkzeugResponse:
    delivery_id, link_id = _tokens().verify("click", token, arity=2)
    with unit_of_work() as s:
        if _from_admin():
            url = events.click_target(s, delivery_id, link_id)[1].url
        else:
            url = events.record_click(
                s, delivery_id, link_id, user_agent=request.headers.get("User-Agent", "")
            )
    response = redirect(url, code=302)
    response.headers.update(NO_STORE)
    return response


@bp.route("/r/<token>")
def renewal(token: str) -> WerkzeugResponse:
    """A letter's renewal link: record the click, send the customer to the contract's shop."""
    delivery_id, contract_id, percent = _tokens().verify("renewal", token, arity=3)
    code = settings().company.discount_code if percent > 0 else ""
    with unit_of_work() as s:
        if _from_admin():
            url = renewals.with_discount(renewals.renewal_target(s, delivery_id, contract_id)[1],
                                         code)  # fmt: skip
        else:
            url = renewals.record_renewal_click(
                s, delivery_id, contract_id, discount_percent=percent, discount_code=code,
                user_agent=request.headers.get("User-Agent", ""),
            )  # fmt: skip
    response = redirect(url, code=302)
    response.headers.update(NO_STORE)
    return response
