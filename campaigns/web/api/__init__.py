"""REST API v1: `Authorization: Bearer <key>`, JSON in and out, problem details on errors.

No session cookie and no CSRF token: a request is authenticated by its API key alone, so a
browser's admin session can never act through the API.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, request
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

from campaigns.accounts import api_keys
from campaigns.audience.records import FieldError
from campaigns.models import ApiScope
from campaigns.web.api import problems, schemas
from campaigns.web.context import unit_of_work

bp = Blueprint("api", __name__, url_prefix="/api/v1")
OPEN_ENDPOINTS = {"api.openapi", "api.docs", "api.unknown"}
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_ID = 2**31 - 1


def _shape_refused(
    req: Any, resp: Any, error: Exception | None, instance: Any, adapter: Any
) -> None:
    """Turn the library's answer to a badly shaped request into a problem detail."""
    if req.method not in READ_METHODS and request.content_length and not request.is_json:
        raise problems.Problem(415, "send the body as JSON (Content-Type: application/json)")
    if req.method not in READ_METHODS and request.is_json:
        if request.get_json(silent=True) is None and request.get_data():
            raise problems.Problem(400, "the body is not valid JSON")
    if error is None:
        return
    errors = [
        FieldError(_dotted(e["loc"]), problems_value(e.get("input")), e["msg"])
        for e in error.errors()  # type: ignore[attr-defined]
    ]
    raise problems.refused(errors)


def _dotted(loc: tuple[Any, ...]) -> str:
    """`("contacts", 3, "contracts", 0, "ends_on")` → `contacts[3].contracts[0].ends_on`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def problems_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "…"


spec = SpecTree(
    "flask",
    mode="strict",
    title="Campaigns API",
    version="v1",
    description=(
        "Contacts and their contracts for CRM sync. Authenticate with "
        "`Authorization: Bearer <key>` (keys are made by admins under API keys). "
        "Errors are RFC 9457 problem details (`application/problem+json`) whose `errors` "
        "name each refused field. Lists are paged with an opaque `cursor`."
    ),
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    validation_error_status=422,
    validation_error_model=schemas.Problem,
    before=_shape_refused,
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        )
    ],
    security={"bearer": []},
    page_templates={},  # the browsable page is ours (docs.py): no assets from a CDN
)


@bp.before_request
def authenticate() -> None:
    if request.endpoint in OPEN_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise problems.Problem(401, "send an API key as `Authorization: Bearer <key>`")
    with unit_of_work() as s:
        caller = api_keys.authenticate(s, presented.strip())
    if request.method not in READ_METHODS:
        caller.require(ApiScope.WRITE)
    g.api_caller = caller


@bp.url_value_preprocessor
def ids_in_range(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Ids are 32-bit integers (what the document says); a larger one names nothing, and
    # PostgreSQL would refuse to compare it with an integer column.
    for name, value in (values or {}).items():
        if name.endswith("_id") and isinstance(value, int) and value > MAX_ID:
            raise problems.Problem(404, f"no {name.removesuffix('_id')} #{value}")


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(rest: str) -> Response:
    """Answer paths and methods the API does not have as problem details too."""
    adapter = current_app.url_map.bind("api.invalid")
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            endpoint, _ = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint != "api.unknown":
            allowed.append(method)
    if allowed:
        raise MethodNotAllowed(valid_methods=allowed)
    raise problems.Problem(404, f"the API has no {request.path}; see /api/v1/docs")


problems.install(bp)

from campaigns.web.api import contacts, docs, results, service  # noqa: E402,F401  (routes register on bp)
