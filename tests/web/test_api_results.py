"""API v1: conversions in (scenario 17 over HTTP), reports, holdout and retention out."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from campaigns.db import Database, utcnow
from campaigns.models import ApiScope, Conversion, LetterKind
from campaigns.tracking import results
from tests.tracking.ledger_rows import customer, letter, version
from tests.web.test_api import PROBLEM, Api, api, make_key

__all__ = ["api"]  # the API client fixture, shared with test_api


def _contract_with_a_letter(db: Database) -> tuple[int, int]:
    with db.unit_of_work() as s:
        contact, contract = customer(s, "ada@example.com")
        sent = letter(s, contact, contract, version(s, LetterKind.EXPIRY),
                      utcnow() - timedelta(days=2))  # fmt: skip
    return contract, sent


def test_a_conversion_is_recorded_once_per_key_and_credited(api: Api, db: Database) -> None:
    contract, sent = _contract_with_a_letter(db)
    body = {"contract_id": contract, "amount": "129.90", "currency": "EUR",
            "detail": {"order": "SO-1"}}  # fmt: skip
    first = api.post("/api/v1/conversions", body, headers={"Idempotency-Key": "o1"})
    assert first.status_code == 201, first.get_json()
    made = first.get_json()
    assert made["credited_to"]["delivery_id"] == sent and made["touches"] == [sent]
    assert (made["amount"], made["organic"], made["detail"]) == ("129.90", False, {"order": "SO-1"})
    replay = api.post("/api/v1/conversions", body, headers={"Idempotency-Key": "o1"})
    assert replay.status_code == 200 and replay.get_json()["id"] == made["id"]
    other = api.post("/api/v1/conversions", {**body, "amount": "5.00"},
                     headers={"Idempotency-Key": "o1"})  # fmt: skip
    assert other.status_code == 409 and other.content_type == PROBLEM
    assert "already used" in other.get_json()["detail"]
    with db.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Conversion)) == 1
    read = api.get(f"/api/v1/conversions/{made['id']}")
    assert read.status_code == 200 and read.get_json()["idempotency_key"] == "o1"


def test_conversion_problems_name_the_field(api: Api, db: Database) -> None:
    contract, _ = _contract_with_a_letter(db)
    body = {"contract_id": contract, "amount": "10", "currency": "EUR"}
    missing = api.post("/api/v1/conversions", body)
    assert missing.status_code == 422 and missing.content_type == PROBLEM
    assert "Idempotency-Key" in str(missing.get_json())
    bad = api.post("/api/v1/conversions", {**body, "currency": "XXQ"},
                   headers={"Idempotency-Key": "k"})  # fmt: skip
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["field"] == "currency"
    unknown = api.post("/api/v1/conversions", {**body, "contract_id": contract + 50},
                       headers={"Idempotency-Key": "k2"})  # fmt: skip
    assert unknown.status_code == 404


def test_a_read_key_cannot_record_conversions(app: Flask, db: Database) -> None:
    contract, _ = _contract_with_a_letter(db)
    reader = Api(app.test_client(), make_key(db, ApiScope.READ, name="BI"))
    answer = reader.post("/api/v1/conversions", {"contract_id": contract, "amount": "1",
                                                 "currency": "EUR"},
                         headers={"Idempotency-Key": "x"})  # fmt: skip
    assert answer.status_code == 403
    assert reader.get("/api/v1/reports/segment").status_code == 200


def test_an_end_date_moved_through_the_api_is_a_renewal_at_once(api: Api, db: Database) -> None:
    contract, sent = _contract_with_a_letter(db)
    moved = api.post(
        "/api/v1/contacts",
        {
            "email": "ada@example.com",
            "contracts": [
                {"external_id": "K-ada@example.com", "ends_on": "2027-12-01", "price": "140"}
            ],
        },
    )
    assert moved.status_code == 200
    assert moved.get_json()["contracts"] == [{"id": contract, "outcome": "renewed"}]
    with db.unit_of_work() as s:
        (made,) = s.scalars(select(Conversion))
        assert (made.source, made.amount, made.delivery_id) == ("api", 140, sent)


def test_reports_holdout_and_retention_over_http(api: Api, db: Database) -> None:
    contract, sent = _contract_with_a_letter(db)
    api.post("/api/v1/conversions", {"contract_id": contract, "amount": "99", "currency": "EUR"},
             headers={"Idempotency-Key": "r"})  # fmt: skip
    with db.unit_of_work() as s:
        results.refresh(s, window=timedelta(days=30))
    report = api.get("/api/v1/reports/version").get_json()
    (line,) = report["lines"]
    assert line["figures"]["sent"] == 1 and line["figures"]["renewed"] == 1
    assert line["figures"]["revenue"] == {"EUR": "99.00"}
    assert line["figures"]["revenue_total"] == "99.00" and line["figures"]["rates"]["renewed"] == 1
    assert report["refreshed_at"] is not None and report["organic"]["renewed"] == 0
    compared = api.get("/api/v1/reports/holdout").get_json()
    assert compared["treated"] == 1 and compared["held_out"] == 0
    assert compared["sentence"].startswith("No recipients were held out")
    assert api.get("/api/v1/reports/segment?since=2030-01-01&until=2029-01-01").status_code == 422
    refused = api.get("/api/v1/reports/retention")
    assert refused.status_code == 422 and refused.content_type == PROBLEM
    assert api.get("/api/v1/reports/nothing").status_code == 404
