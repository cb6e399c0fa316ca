"""The Outbox: letters the local SMTP catcher received (when no SMTP_URL is configured)."""

from __future__ import annotations

import re

from flask import Blueprint, Response, render_template

from campaigns.embedded import outbox
from campaigns.models import Role
from campaigns.web.admin.letters import PREVIEW_CSP
from campaigns.web.auth import requires
from campaigns.web.context import settings

bp = Blueprint("outbox", __name__)
# The letter's open pixel: the preview leaves it out, as its CSP would refuse to load it (and
# looking at a letter here is no open).
_PIXEL = re.compile(r'<img\b[^>]*\bsrc="[^"]*/o/[^"/]+\.gif"[^>]*>')


@bp.route("/outbox")
@requires(Role.VIEWER)
def outbox_list() -> str:
    letters = outbox.list_letters(settings().outbox_dir)
    return render_template("admin/outbox.html", letters=letters)


@bp.route("/outbox/<key>")
@requires(Role.VIEWER)
def outbox_letter(key: str) -> str:
    return render_template("admin/outbox_letter.html",
                           letter=outbox.get_letter(settings().outbox_dir, key))  # fmt: skip


@bp.route("/outbox/<key>/html")
@requires(Role.VIEWER)
def outbox_html(key: str) -> Response:
    letter = outbox.get_letter(settings().outbox_dir, key)
    return Response(_PIXEL.sub("", letter.html), mimetype="text/html",
                    headers={"Content-Security-Policy": PREVIEW_CSP})  # fmt: skip
