"""RFC 9457 problem details: the product's error tree and HTTP errors, as the API answers them.

Only the API blueprint maps errors this way; the admin keeps its error pages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from campaigns.accounts.api_keys import ApiKeyRefused
from campaigns.audience.records import FieldError, RecordError
from campaigns.errors import (
    CampaignsError,
    Conflict,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationError,
)

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)

# status → (slug of the type, title); the slugs are anchors of the API's documentation page.
KINDS: dict[int, tuple[str, str]] = {
    400: ("malformed-request", "The request could not be read"),
    401: ("unauthorized", "A valid API key is needed"),
    403: ("forbidden", "This API key may not do that"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "The request is too large"),
    415: ("unsupported-media-type", "Send JSON"),
    422: ("invalid-fields", "Some fields were refused"),
    500: ("server-error", "Something went wrong on our side"),
}


class Problem(Exception):
    """An answer the API gives as a problem detail; `errors` names each refused field."""

    def __init__(
        self, status: int, detail: str, *, errors: Iterable[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})


def refused(errors: list[FieldError], *, detail: str | None = None) -> Problem:
    """The 422 problem for refused fields."""
    if detail is None:
        more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        detail = f"{errors[0].field} {errors[0].reason}{more}; see errors"
    return Problem(422, detail, errors=errors)


def respond(problem: Problem) -> Response:
    """The application/problem+json response for a problem."""
    slug, title = KINDS.get(problem.status, ("about:blank", "Error"))
    body: dict[str, Any] = {
        "type": f"/api/v1/docs#problem-{slug}" if slug != "about:blank" else slug,
        "title": title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.path,
    }
    if problem.errors:
        body["errors"] = [{"field": e.field, "value": e.value, "reason": e.reason}
                          for e in problem.errors]  # fmt: skip
    response = Response(json.dumps(body), status=problem.status, mimetype=MEDIA_TYPE)
    response.headers.update(problem.headers)
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="campaigns"'
    return response


def from_error(exc: Exception) -> Problem:
    """The problem for an error of the product's tree, an HTTP error, or anything else."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, RecordError):
        return refused(exc.errors)
    if isinstance(exc, ApiKeyRefused):
        return Problem(401, str(exc))
    if isinstance(exc, PermissionDenied):
        return Problem(403, str(exc))
    if isinstance(exc, NotFound):
        return Problem(404, str(exc))
    if isinstance(exc, InvalidTransition | Conflict):
        return Problem(409, str(exc))
    if isinstance(exc, ValidationError):
        errors = [FieldError(exc.field, "", str(exc))] if exc.field else []
        return Problem(422, str(exc), errors=errors)
    if isinstance(exc, CampaignsError):
        return Problem(400, str(exc))
    if isinstance(exc, HTTPException):
        allowed = getattr(exc, "valid_methods", None)
        headers = {"Allow": ", ".join(allowed)} if allowed else {}
        return Problem(exc.code or 500, exc.description or exc.name, headers=headers)
    log.exception("API request failed: %s %s", request.method, request.path)
    return Problem(500, "the request failed on our side; it was logged; try again later")


def install(bp: Blueprint) -> None:
    """Answer every error raised in the blueprint's views and hooks as a problem detail."""

    @bp.errorhandler(Exception)
    def any_error(exc: Exception) -> Response:
        return respond(from_error(exc))
