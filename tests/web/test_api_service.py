"""The help desk's API: points and incidents, once per Idempotency-Key, never overdrawn."""

from __future__ import annotations

from datetime import date

from campaigns.audience import contacts
from campaigns.db import Database
from tests.web.test_api import PROBLEM, Api, api

__all__ = ["api"]  # the API client fixture, shared with test_api


def _ada(db: Database) -> tuple[int, int]:
    with db.unit_of_work() as s:
        ada = contacts.create_contact(s, "ada@example.com", first_name="Ada")
        start, end = date(2026, 1, 1), date(2027, 1, 1)
        contract = contacts.add_contract(s, ada.id, product="Gold Support", starts_on=start,
                                         ends_on=end)  # fmt: skip
        return ada.id, contract.id


def test_points_are_bought_used_by_incidents_and_never_overdrawn(api: Api, db: Database) -> None:
    ada, contract = _ada(db)
    bought = api.post("/api/v1/points", {"contact_id": ada, "kind": "purchase", "amount": 3,
                                         "reason": "package: buy 2, get 3"},
                      headers={"Idempotency-Key": "order-1"})  # fmt: skip
    assert bought.status_code == 201 and bought.get_json()["balance"] == 3
    again = api.post("/api/v1/points", {"contact_id": ada, "kind": "purchase", "amount": 3,
                                        "reason": "package: buy 2, get 3"},
                     headers={"Idempotency-Key": "order-1"})  # fmt: skip
    assert again.status_code == 200 and again.get_json()["balance"] == 3

    def incident(key: str, used: int) -> object:
        return api.post("/api/v1/incidents", {
            "contact_id": ada, "contract_id": contract, "channel": "phone", "chargeable": True,
            "points_used": used, "summary": "printer offline"},
            headers={"Idempotency-Key": key})  # fmt: skip

    first = incident("T-1", 2)
    assert first.status_code == 201, first.get_json()  # type: ignore[attr-defined]
    assert incident("T-1", 2).status_code == 200  # type: ignore[attr-defined]
    refused = incident("T-2", 2)  # one point left
    assert refused.status_code == 409 and refused.content_type == PROBLEM  # type: ignore[attr-defined]
    assert "not enough points" in refused.get_json()["detail"]  # type: ignore[attr-defined]
    history = api.get(f"/api/v1/contacts/{ada}/points").get_json()
    assert history["balance"] == 1
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in history["entries"]] == [
        ("use", -2, 1), ("purchase", 3, 3)]  # fmt: skip
    listed = api.get(f"/api/v1/contacts/{ada}/incidents").get_json()["data"]
    assert [i["summary"] for i in listed] == ["printer offline"]  # T-2 was not written
    closed = api.post(f"/api/v1/incidents/{listed[0]['id']}/close", {})
    assert closed.status_code == 200 and closed.get_json()["closed_at"] is not None


def test_service_problems_name_the_field(api: Api, db: Database) -> None:
    ada, _ = _ada(db)
    refund = api.post("/api/v1/points", {"contact_id": ada, "kind": "refund", "amount": 1},
                      headers={"Idempotency-Key": "r"})  # fmt: skip
    assert refund.status_code == 422 and refund.get_json()["errors"][0]["field"] == "reason"
    nobody = api.post("/api/v1/points", {"contact_id": ada + 9, "kind": "grant", "amount": 1},
                      headers={"Idempotency-Key": "g"})  # fmt: skip
    assert nobody.status_code == 404
    no_key = api.post("/api/v1/incidents", {"contact_id": ada, "channel": "email"})
    assert no_key.status_code == 422 and "Idempotency-Key" in str(no_key.get_json())
    body = {"contact_id": ada, "channel": "email", "contract_id": 999}
    other = api.post("/api/v1/incidents", body, headers={"Idempotency-Key": "x"})
    assert other.status_code == 422 and other.get_json()["errors"][0]["field"] == "contract_id"
