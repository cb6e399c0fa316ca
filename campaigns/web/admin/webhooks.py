"""Webhooks out (admins only): subscribe a URL, disable, enable, delete, test; the log."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from campaigns.accounts import audit
from campaigns.db import require, utcnow
from campaigns.errors import InvalidTransition, ValidationError
from campaigns.models import SUBSCRIBABLE, Role, WebhookState, WebhookSubscription
from campaigns.tracking import webhooks
from campaigns.web.auth import requires
from campaigns.web.context import settings, unit_of_work

bp = Blueprint("webhooks", __name__)


@bp.route("/webhooks")
@requires(Role.ADMIN)
def webhook_list() -> str:
    return _list_page()


@bp.route("/webhooks", methods=["POST"])
@requires(Role.ADMIN)
def webhook_create() -> str | tuple[str, int]:
    form = request.form
    try:
        with unit_of_work() as s:
            sub, made = webhooks.create_subscription(
                s, form.get("url", ""), secret=form.get("secret", ""),
                kinds=form.getlist("kinds"), user_id=g.user["id"], now=utcnow(),
                allow=settings().webhooks.allow_networks,
            )  # fmt: skip
            audit.record(s, "webhook.create", user_id=g.user["id"], target_type="webhook",
                         target_id=sub.id, url=sub.url, kinds=",".join(sub.kinds))  # fmt: skip
            url = sub.url
    except webhooks.SubscriptionRefused as exc:
        return _list_page(errors=exc.errors, form=form), 400
    # Rendered in this answer, never flashed: a flash message travels in the session cookie.
    return _list_page(created=url, secret=made)


@bp.route("/webhooks/<int:sub_id>")
@requires(Role.ADMIN)
def webhook_detail(sub_id: int) -> str:
    state = request.args.get("state", "")
    if state and state not in {s.value for s in WebhookState}:
        abort(400)
    before = request.args.get("before", type=int)
    with unit_of_work() as s:
        sub = require(s, WebhookSubscription, sub_id, what="webhook")
        rows = webhooks.log(s, sub_id, state=WebhookState(state) if state else None,
                            before=before)  # fmt: skip
        return render_template(
            "admin/webhook.html", sub=sub, secret=webhooks.masked(sub.secret), rows=rows,
            state=state, states=list(WebhookState), page=webhooks.LOG_PAGE,
            every=settings().webhooks.seconds,
        )  # fmt: skip


@bp.route("/webhooks/<int:sub_id>/<any(disable, enable, delete, test):action>", methods=["POST"])
@requires(Role.ADMIN)
def webhook_action(sub_id: int, action: str) -> Response:
    try:
        with unit_of_work() as s:
            if action == "disable":
                url = webhooks.disable(s, sub_id).url
            elif action == "enable":
                url = webhooks.enable(s, sub_id, now=utcnow()).url
            elif action == "delete":
                url = webhooks.delete(s, sub_id).url
            else:
                url = require(s, WebhookSubscription, sub_id, what="webhook").url
                webhooks.send_test(s, sub_id, now=utcnow())
            audit.record(s, f"webhook.{action}", user_id=g.user["id"], target_type="webhook",
                         target_id=sub_id, url=url)  # fmt: skip
    except ValidationError as exc:
        flash(f"Not done: {exc}", "error")
        return redirect(url_for("webhooks.webhook_detail", sub_id=sub_id))
    done = {"disable": f"Disabled {url}: nothing is collected or sent for it until enabled.",
            "enable": f"Enabled {url}: what happens from now on is sent to it.",
            "delete": f"Deleted {url} and its log.",
            "test": f"A test (ping) to {url} is queued; it goes out within "
                    f"{settings().webhooks.seconds:g} s."}  # fmt: skip
    flash(done[action], "success")
    if action == "delete":
        return redirect(url_for("webhooks.webhook_list"))
    return redirect(url_for("webhooks.webhook_detail", sub_id=sub_id))


@bp.route("/webhooks/deliveries/<int:delivery_id>/retry", methods=["POST"])
@requires(Role.ADMIN)
def delivery_retry(delivery_id: int) -> Response:
    try:
        with unit_of_work() as s:
            row = webhooks.retry(s, delivery_id, now=utcnow())
            audit.record(s, "webhook.retry", user_id=g.user["id"],
                         target_type="webhook_delivery", target_id=row.id,
                         event=row.event_key)  # fmt: skip
            sub_id, key = row.subscription_id, row.event_key
    except InvalidTransition as exc:
        flash(f"Not sent again: {exc}", "error")
        return redirect(url_for("webhooks.webhook_list"))
    flash(f"{key} will be sent again within {settings().webhooks.seconds:g} s.", "success")
    return redirect(url_for("webhooks.webhook_detail", sub_id=sub_id))


def _list_page(**extra: object) -> str:
    with unit_of_work() as s:
        return render_template(
            "admin/webhooks.html", listed=webhooks.subscriptions(s), types=SUBSCRIBABLE,
            errors=extra.pop("errors", {}), form=extra.pop("form", {}),
            allowed=settings().webhooks.allow_networks, **extra,
        )  # fmt: skip
