"""Map the domain's error tree to HTTP answers; users see what went wrong and what to do."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from campaigns.errors import (
    InvalidTransition,
    NotFound,
    PermissionDenied,
    TokenInvalid,
    ValidationError,
)

STATUS = {NotFound: 404, ValidationError: 400, InvalidTransition: 409, PermissionDenied: 403,
          TokenInvalid: 404}  # fmt: skip


def install(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        return _page(400, "This form has expired or did not come from this site. "
                          "Go back, reload the page and submit it again.")  # fmt: skip

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return _page(exc.code or 500, exc.description or exc.name)

    for error, status in STATUS.items():
        app.register_error_handler(error, lambda exc, status=status: _page(status, str(exc)))


def _page(status: int, message: str) -> Any:
    if request.blueprint == "public" or request.path.startswith("/api/") or _wants_json():
        return {"error": message}, status
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return render_template("admin/error.html", status=status, title=titles.get(status, "Error"),
                           message=message), status  # fmt: skip


def _wants_json() -> bool:
    """Whether the client asked for JSON over HTML (a page's script fetching figures)."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"
