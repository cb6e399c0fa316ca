"""schemathesis against the real API v1 (the WSGI app on the test database, a real key).

Every operation of the OpenAPI document gets a bounded number of generated requests; no
answer may be a 5xx, have a status, content type, header or body the document does not
allow.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from campaigns.db import Database
from campaigns.models import ApiScope
from tests.web.test_api import make_key

EXAMPLES = 20
CHECKS: list[Any] = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture
def write_key(db: Database, app: Flask) -> str:
    key = make_key(db, ApiScope.WRITE, name="schemathesis")
    # A few real rows, so reads of contacts 1–3 and their contracts find something.
    client = app.test_client()
    for n in range(3):
        client.post("/api/v1/contacts", headers={"Authorization": f"Bearer {key}"}, json={
            "email": f"seed{n}@example.com", "external_id": f"S{n}",
            "contracts": [{"product": "Support", "starts_on": "2026-01-01",
                           "ends_on": "2026-12-31"}],
        })  # fmt: skip
    return key


# Driven through `as_strategy` in a plain test rather than `schema.parametrize()`, whose lazy
# loading of a fixture's schema does not run on pytest 9.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_answers_as_its_document_says(
    app: Flask, write_key: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {write_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def answers(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        answers()
