"""Unsubscribe (a page, and RFC 8058 one-click) and the preference centre.

GETs only show: link scanners fetch every URL of a letter. The one-click POST that mail
providers send (body `List-Unsubscribe=One-Click`, no cookie, no CSRF token) unsubscribes
at once; the page's own buttons are checked for CSRF like every form.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms.validators import ValidationError as CSRFInvalid

from campaigns.delivery.tokens import Tokens
from campaigns.tracking import subscriptions
from campaigns.web.context import settings, unit_of_work
from campaigns.web.public import bp, csrf_exempt
from campaigns.web.public.texts import Texts

ONE_CLICK = "One-Click"
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


def _delivery(purpose: str, token: str) -> int:
    (delivery_id,) = Tokens.from_settings(settings()).verify(purpose, token)
    return delivery_id


def page(template: str, recipient: subscriptions.Recipient, **values: Any) -> Any:
    """A customer-facing page in the recipient's language, with the company's brand."""
    texts = Texts(recipient.locale, recipient.time_zone)
    html = render_template(
        f"public/{template}", t=texts, company=settings().company, recipient=recipient,
        kind_label=texts(f"kind.{recipient.kind.value}"), **values,
    )  # fmt: skip
    return html, 200, NO_STORE


def preferences_url(delivery_id: int) -> str:
    return f"/p/{Tokens.from_settings(settings()).sign('preferences', delivery_id)}"


@bp.route("/u/<token>", methods=["GET", "HEAD"])
def unsubscribe_page(token: str) -> Any:
    """Ask; change nothing (a scanner's GET must unsubscribe nobody)."""
    delivery_id = _delivery("unsubscribe", token)
    with unit_of_work() as s:
        recipient = subscriptions.recipient(s, delivery_id)
    return page("unsubscribe.html", recipient, done=None,
                preferences=preferences_url(delivery_id))  # fmt: skip


@bp.route("/u/<token>", methods=["POST"])
@csrf_exempt
def unsubscribe(token: str) -> Any:
    """RFC 8058 one-click (no cookie, no CSRF token: answered at once), or the page's button."""
    delivery_id = _delivery("unsubscribe", token)
    one_click = request.form.get("List-Unsubscribe") == ONE_CLICK
    if not one_click:
        _check_csrf()
    agent = request.headers.get("User-Agent", "")
    with unit_of_work() as s:
        change = subscriptions.unsubscribe(s, delivery_id, one_click=one_click, user_agent=agent)
    if one_click:
        return {"unsubscribed": change.scope}, 200, NO_STORE
    return page("unsubscribe.html", change.recipient, done="unsubscribed",
                preferences=preferences_url(delivery_id))  # fmt: skip


@bp.route("/u/<token>/again", methods=["POST"])
def resubscribe(token: str) -> Any:
    delivery_id = _delivery("unsubscribe", token)
    with unit_of_work() as s:
        change = subscriptions.resubscribe(s, delivery_id)
    return page("unsubscribe.html", change.recipient, done="resubscribed",
                preferences=preferences_url(delivery_id))  # fmt: skip


@bp.route("/p/<token>", methods=["GET", "HEAD", "POST"])
def preferences(token: str) -> Any:
    delivery_id = _delivery("preferences", token)
    agent = request.headers.get("User-Agent", "")
    with unit_of_work() as s:
        if request.method == "POST":
            chosen = subscriptions.save_preferences(
                s, delivery_id, marketing=request.form.get("marketing") == "on",
                kinds_on=request.form.getlist("kind"), user_agent=agent,
            )  # fmt: skip
        else:
            chosen = subscriptions.preferences(s, delivery_id)
    return page("preferences.html", chosen.recipient, chosen=chosen,
                saved=request.method == "POST")  # fmt: skip


def _check_csrf() -> None:
    """The check CSRFProtect makes of every other form (this view is exempt for one-click)."""
    try:
        validate_csrf(request.form.get("csrf_token"))
    except CSRFInvalid as exc:
        raise CSRFError(str(exc)) from None
