"""Hosted relays' notifications of bounces and complaints: Amazon SES through SNS."""

from __future__ import annotations

from flask import Response, current_app, request

from campaigns.delivery.tokens import Tokens
from campaigns.errors import NotFound
from campaigns.tracking import bounces, relays
from campaigns.web.context import settings, unit_of_work
from campaigns.web.public import bp, csrf_exempt


def _verifier() -> relays.SnsVerifier:
    # One per app, so Amazon's certificates are fetched once; tests give their own fetch.
    fetch = current_app.config.get("SNS_FETCH", relays.fetch)
    verifier: relays.SnsVerifier = current_app.extensions.setdefault(
        "sns_verifier", relays.SnsVerifier(settings().bounces.ses_topics, fetch=fetch)
    )
    return verifier


@bp.route("/hooks/ses", methods=["POST"])
@csrf_exempt
def ses_notification() -> Response:
    """An SNS message about SES mail: a subscription to confirm, a bounce, a complaint."""
    if not settings().bounces.ses_topics:
        raise NotFound("SES notifications are off: set SES_SNS_TOPICS to the topics' ARNs")
    report = relays.receive(request.get_data(), verifier=_verifier())
    if report is not None:
        with unit_of_work() as s:
            bounces.record(s, report, tokens=Tokens.from_settings(settings()),
                           rules=settings().bounces)  # fmt: skip
    return Response(status=204)
