"""A survey letter's rating links: the thank-you page, its comment box and its other scores.

A GET is a click in the letter: recorded when the machine-traffic rules take it for a
person's (campaigns.tracking.machines.judge_click), else the page asks to confirm. The page's
buttons POST (CSRF-checked like every public form): a person pressed them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import request

from campaigns.errors import ValidationError
from campaigns.service import surveys
from campaigns.tracking import machines, subscriptions
from campaigns.web.context import unit_of_work
from campaigns.web.public import bp
from campaigns.web.public.subscriptions import page
from campaigns.web.public.tracking import _from_admin, _hit, _tokens


@bp.route("/s/<token>", methods=["GET", "HEAD", "POST"])
def rating(token: str) -> Any:
    """Record (or ask to confirm) the rating a link or a button names; show where it stands."""
    delivery_id, score = _tokens().verify("rating", token, arity=2)
    hit = _hit()
    client = surveys.Client(hit.remote_addr, hit.user_agent)
    error = ""
    with unit_of_work() as s:
        recipient = subscriptions.recipient(s, delivery_id)
        if _from_admin():
            answer = surveys.look(s, delivery_id, score)  # staff trying the letter's links
        elif request.method == "POST":  # CSRFProtect checked its token
            comment = request.form.get("comment")
            try:
                answer = surveys.answer(s, delivery_id, score, comment=comment, client=client)
            except ValidationError as exc:
                error, answer = str(exc), surveys.look(s, delivery_id, score)
        else:
            answer = surveys.click(s, delivery_id, score, client=client,
                                   judge=partial(machines.judge_click, hit))  # fmt: skip
    tokens = _tokens()
    links = {n: f"/s/{tokens.sign('rating', delivery_id, n)}" for n in answer.scores}
    return page("survey.html", recipient, answer=answer, links=links, error=error,
                commented=request.method == "POST" and "comment" in request.form,
                preview=_from_admin())  # fmt: skip
