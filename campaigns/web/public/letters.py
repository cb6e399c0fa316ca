"""A sent letter seen again: view online, and the acknowledgment of a policy letter."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from campaigns.delivery import copies
from campaigns.delivery.tokens import Tokens
from campaigns.models import Acknowledgment
from campaigns.tracking import acknowledgments, subscriptions
from campaigns.web.context import settings, unit_of_work
from campaigns.web.public import bp
from campaigns.web.public.subscriptions import NO_STORE, page

# The letter is shown as the mail client would: no script runs, forms go nowhere, links
# open at the top (they are the letter's own tracked links).
LETTER_POLICY = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
                 "font-src https: data:; form-action 'none'; frame-ancestors 'self'; "
                 "base-uri 'none'")  # fmt: skip


def _copy(purpose: str, token: str) -> copies.Copy:
    """The letter a token names, rendered again exactly as sent."""
    tokens = Tokens.from_settings(settings())
    (delivery_id,) = tokens.verify(purpose, token)
    with unit_of_work() as s:
        sent = copies.read(s, delivery_id)
    return copies.render(sent, settings=settings(), tokens=tokens)


@bp.route("/v/<token>", methods=["GET", "HEAD"])
def view_online(token: str) -> Response:
    """The letter exactly as sent, on its own page."""
    copy = _copy("view", token)
    return Response(copy.html, mimetype="text/html",
                    headers={**NO_STORE, "Content-Security-Policy": LETTER_POLICY})  # fmt: skip


@bp.route("/a/<token>", methods=["GET", "HEAD", "POST"])
def acknowledge(token: str) -> Any:
    """Show the exact version the customer received; a POST records their acceptance."""
    copy = _copy("acknowledge", token)
    delivery_id = copy.sent.draft.delivery_id
    acknowledgment: Acknowledgment | None
    with unit_of_work() as s:
        if request.method == "POST":  # CSRFProtect checked its token
            acknowledgment, _new = acknowledgments.acknowledge(
                s, copy, remote_addr=request.remote_addr or "",
                user_agent=request.headers.get("User-Agent", ""),
            )  # fmt: skip
        else:
            acknowledgment = acknowledgments.of_delivery(s, delivery_id)
        recipient = subscriptions.recipient(s, delivery_id)
    view_url = f"/v/{Tokens.from_settings(settings()).sign('view', delivery_id)}"
    return page("acknowledge.html", recipient, copy=copy, acknowledgment=acknowledgment,
                view_url=view_url)  # fmt: skip
