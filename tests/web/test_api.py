"""REST API v1: keys, upserts one by one and in bulk, reads, cursor pages, erasure, problems."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaigns.accounts import api_keys
from campaigns.db import Database, utcnow
from campaigns.models import (
    ApiKey,
    ApiScope,
    Contact,
    ContactStatus,
    Contract,
    ContractTerm,
    Delivery,
    DeliveryState,
    Role,
    User,
)
from tests.factories import launch_now, schedule_campaign
from tests.web.conftest import csrf_token, login

PROBLEM = "application/problem+json"


def make_key(db: Database, scope: ApiScope = ApiScope.WRITE, name: str = "CRM") -> str:
    with db.unit_of_work() as s:
        admin = s.scalar(select(User).where(User.email == "admin@example.com"))
        assert admin is not None
        _, secret = api_keys.create_key(s, name, scope=scope, user_id=admin.id)
    return secret


class Api:
    """A test client that sends one API key with every request."""

    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, body: Any, *, headers: dict[str, str] | None = None,
             **kwargs: Any) -> Any:  # fmt: skip
        return self.client.post(path, json=body, headers={**self.headers, **(headers or {})},
                                **kwargs)  # fmt: skip

    def delete(self, path: str) -> Any:
        return self.client.delete(path, headers=self.headers)


@pytest.fixture
def api(app: Flask, db: Database) -> Api:
    return Api(app.test_client(), make_key(db))


def contact(n: int, **fields: Any) -> dict[str, Any]:
    return {"email": f"customer{n}@example.com", "first_name": f"Customer {n}", **fields}


def contract(**fields: Any) -> dict[str, Any]:
    return {"product": "Premium Support", "starts_on": "2026-01-01", "ends_on": "2026-12-31",
            "price": "1200.00", "currency": "EUR", **fields}  # fmt: skip


def count(db: Database, model: Any) -> int:
    with db.unit_of_work() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# Keys ---------------------------------------------------------------------------------


def test_a_write_key_upserts_a_contact_with_its_contracts_and_reads_it_back(api: Api) -> None:
    answer = api.post("/api/v1/contacts", contact(1, contracts=[contract(external_id="C-1")]))
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["outcome"] == "created"
    assert [c["outcome"] for c in body["contracts"]] == ["created"]
    contact_id = body["contact"]["id"]

    read = api.get(f"/api/v1/contacts/{contact_id}").get_json()
    assert read["email"] == "customer1@example.com"
    (held,) = read["contracts"]
    assert (held["external_id"], held["ends_on"], held["price"], held["term"]) == (
        "C-1", "2026-12-31", "1200.00", 1,
    )  # fmt: skip
    assert held["terms"] == []


def test_the_key_is_stored_hashed_and_shown_only_at_creation(db: Database, app: Flask) -> None:
    secret = make_key(db)
    assert re.fullmatch(r"cmpk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", secret)
    with db.unit_of_work() as s:
        (key,) = s.scalars(select(ApiKey))
        assert key.prefix == secret[5:17]
        assert secret not in key.key_hash and key.key_hash.startswith("sha256$")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer nonsense",
     "Bearer cmpk_000000000000_" + "x" * 43],
)  # fmt: skip
def test_a_missing_or_bad_key_is_refused_with_a_problem_detail(
    app: Flask, db: Database, header: str | None
) -> None:
    make_key(db)
    headers = {"Authorization": header} if header else {}
    answer = app.test_client().get("/api/v1/contacts", headers=headers)
    assert answer.status_code == 401
    assert answer.mimetype == PROBLEM
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    problem = answer.get_json()
    assert problem["status"] == 401 and problem["title"] and problem["detail"]


def test_a_right_prefix_with_a_wrong_secret_is_refused(app: Flask, db: Database) -> None:
    secret = make_key(db)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    assert Api(app.test_client(), forged).get("/api/v1/contacts").status_code == 401


def test_a_revoked_key_is_refused(app: Flask, db: Database) -> None:
    api = Api(app.test_client(), make_key(db))
    assert api.get("/api/v1/contacts").status_code == 200
    with db.unit_of_work() as s:
        (key,) = s.scalars(select(ApiKey))
        api_keys.revoke_key(s, key.id)
    answer = api.get("/api/v1/contacts")
    assert answer.status_code == 401
    assert "revoked" in answer.get_json()["detail"]


def test_a_read_key_reads_but_may_not_write(app: Flask, db: Database) -> None:
    api = Api(app.test_client(), make_key(db, ApiScope.READ))
    assert api.get("/api/v1/contacts").status_code == 200
    answer = api.post("/api/v1/contacts", contact(1))
    assert answer.status_code == 403 and answer.mimetype == PROBLEM
    assert api.delete("/api/v1/contacts/1").status_code == 403
    assert count(db, Contact) == 0


def test_every_key_is_checked_by_a_constant_time_comparison(
    db: Database, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = make_key(db)
    compared: list[bytes] = []
    real = api_keys.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(api_keys.hmac, "compare_digest", spy)
    with db.unit_of_work() as s:
        api_keys.authenticate(s, secret)
        for wrong in ("cmpk_ffffffffffff_" + "y" * 43, secret[:-1] + "!"):
            with pytest.raises(api_keys.ApiKeyRefused):
                api_keys.authenticate(s, wrong)
    assert len(compared) == 3  # the right key, an unknown prefix (a dummy hash), a wrong secret
    assert compared[1] == api_keys._DUMMY_HASH.encode()


def test_last_use_is_written_at_most_once_a_minute(db: Database, app: Flask) -> None:
    secret = make_key(db)
    start = utcnow()
    for seconds in (0, 30, 59):
        with db.unit_of_work() as s:
            api_keys.authenticate(s, secret, now=start + timedelta(seconds=seconds))
    with db.unit_of_work() as s:
        assert s.scalar(select(ApiKey.last_used_at)) == start
    with db.unit_of_work() as s:
        api_keys.authenticate(s, secret, now=start + timedelta(seconds=61))
    with db.unit_of_work() as s:
        assert s.scalar(select(ApiKey.last_used_at)) == start + timedelta(seconds=61)


def test_a_disabled_admins_keys_stop_working(app: Flask, db: Database) -> None:
    api = Api(app.test_client(), make_key(db))
    with db.unit_of_work() as s:
        admin = s.scalar(select(User).where(User.email == "admin@example.com"))
        assert admin is not None
        admin.active = False
    assert api.get("/api/v1/contacts").status_code == 401


def test_an_admin_creates_sees_and_revokes_keys_in_the_admin(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, Role.ADMIN)
    token = csrf_token(client, "/api-keys")
    page = client.post("/api-keys", data={"name": "CRM sync", "scope": "write",
                                          "csrf_token": token})  # fmt: skip
    assert page.status_code == 200
    shown = re.search(r'id="new-key">(cmpk_[^<]+)<', page.get_data(as_text=True))
    assert shown, "the new key is shown once"
    assert shown.group(1) not in (page.headers.get("Set-Cookie") or "")
    assert Api(app.test_client(), shown.group(1)).get("/api/v1/contacts").status_code == 200

    listing = client.get("/api-keys").get_data(as_text=True)
    assert "CRM sync" in listing and shown.group(1) not in listing
    with db.unit_of_work() as s:
        key_id = s.scalar(select(ApiKey.id))
    client.post(f"/api-keys/{key_id}/revoke", data={"csrf_token": token})
    assert "revoked" in client.get("/api-keys").get_data(as_text=True)
    assert Api(app.test_client(), shown.group(1)).get("/api/v1/contacts").status_code == 401


def test_only_admins_manage_keys(app: Flask) -> None:
    client = app.test_client()
    login(client, Role.EDITOR)
    assert client.get("/api-keys").status_code == 403


def test_api_answers_set_no_cookie(api: Api) -> None:
    answer = api.get("/api/v1/contacts")
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer.headers


# Writes ---------------------------------------------------------------------------------


def test_bulk_upsert_answers_per_item_and_names_each_refused_field(api: Api, db: Database) -> None:
    items = [
        contact(0, contracts=[contract()]),
        contact(1, contracts=[contract(ends_on="2025-01-01"), contract(product="Other",
                                                                      currency="XXQ")]),
        {"email": "not an address", "customer_since": "31/12/2020"},
        contact(3),
    ]  # fmt: skip
    answer = api.post("/api/v1/contacts/bulk", {"contacts": items})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 2}
    outcomes = [r["outcome"] for r in body["results"]]
    assert outcomes == ["created", "rejected", "rejected", "created"]
    fields = {e["field"] for r in body["results"] for e in r["errors"]}
    assert fields == {
        "contacts[1].contracts[0].ends_on",
        "contacts[1].contracts[1].currency",
        "contacts[2].email",
        "contacts[2].customer_since",
    }
    bad_end = next(e for e in body["results"][1]["errors"] if e["field"].endswith("ends_on"))
    assert bad_end["value"] == "2025-01-01" and "before" in bad_end["reason"]
    assert count(db, Contact) == 2 and count(db, Contract) == 1


def test_a_refused_single_upsert_is_a_422_problem_and_writes_nothing(
    api: Api, db: Database
) -> None:
    answer = api.post("/api/v1/contacts", contact(1, locale="!!", contracts=[contract(
        starts_on="2026-02-30")]))  # fmt: skip
    assert answer.status_code == 422
    assert answer.mimetype == PROBLEM
    problem = answer.get_json()
    assert problem["type"].endswith("#problem-invalid-fields")
    assert {e["field"] for e in problem["errors"]} == {"locale", "contracts[0].starts_on"}
    assert count(db, Contact) == 0


def test_shape_errors_and_unreadable_bodies_are_problems(api: Api) -> None:
    answer = api.post("/api/v1/contacts/bulk", {"contacts": [{"email": "a@example.com",
                                                              "shoe_size": 44}]})  # fmt: skip
    assert answer.status_code == 422
    assert [e["field"] for e in answer.get_json()["errors"]] == ["contacts[0].shoe_size"]
    assert api.post("/api/v1/contacts/bulk", {"contacts": []}).status_code == 422
    broken = api.client.post("/api/v1/contacts", data="{nope", headers={
        **api.headers, "Content-Type": "application/json"})  # fmt: skip
    assert broken.status_code == 400 and broken.mimetype == PROBLEM
    text = api.client.post("/api/v1/contacts", data="email=a@example.com", headers={
        **api.headers, "Content-Type": "text/plain"})  # fmt: skip
    assert text.status_code == 415 and text.mimetype == PROBLEM


def test_more_than_ten_thousand_items_are_refused_whole(api: Api, db: Database) -> None:
    items = [{"email": f"c{n}@example.com"} for n in range(10_001)]
    answer = api.post("/api/v1/contacts/bulk", {"contacts": items})
    assert answer.status_code == 422
    assert answer.get_json()["errors"][0]["field"] == "contacts"
    assert count(db, Contact) == 0


def test_repeating_an_upsert_changes_nothing(api: Api, db: Database) -> None:
    items = [contact(n, external_id=f"X{n}", contracts=[contract(external_id=f"K{n}")])
             for n in range(20)]  # fmt: skip
    first = api.post("/api/v1/contacts/bulk", {"contacts": items}).get_json()
    assert first["counts"]["created"] == 20
    again = api.post("/api/v1/contacts/bulk", {"contacts": items}).get_json()
    assert again["counts"] == {"created": 0, "updated": 0, "unchanged": 20, "rejected": 0}
    assert {c["outcome"] for r in again["results"] for c in r["contracts"]} == {"unchanged"}
    assert [r["contact_id"] for r in again["results"]] == [
        r["contact_id"] for r in first["results"]
    ]
    one = api.post("/api/v1/contacts?match=external_id", {"external_id": "X3"})
    assert one.status_code == 200 and one.get_json()["outcome"] == "unchanged"
    assert count(db, Contact) == 20 and count(db, Contract) == 20


def test_moving_a_contracts_end_forward_renews_it_and_keeps_the_past_term(
    api: Api, db: Database
) -> None:
    created = api.post("/api/v1/contacts", contact(1, contracts=[contract(external_id="K1")]))
    contact_id = created.get_json()["contact"]["id"]
    renewed = api.post(
        f"/api/v1/contacts/{contact_id}/contracts",
        {"external_id": "K1", "ends_on": "2027-12-31", "price": "1300"},
    )
    assert renewed.status_code == 200, renewed.get_json()
    body = renewed.get_json()
    assert body["outcome"] == "renewed"
    assert body["contract"]["term"] == 2 and body["contract"]["ends_on"] == "2027-12-31"
    assert [(t["term"], t["ends_on"], t["price"]) for t in body["contract"]["terms"]] == [
        (1, "2026-12-31", "1200.00")
    ]
    added = api.post(f"/api/v1/contacts/{contact_id}/contracts", contract(product="Warranty"))
    assert added.status_code == 201
    listed = api.get(f"/api/v1/contacts/{contact_id}/contracts").get_json()["data"]
    assert [c["product"] for c in listed] == ["Premium Support", "Warranty"]
    refused = api.post(f"/api/v1/contacts/{contact_id}/contracts", {"product": "X"})
    assert refused.status_code == 422
    assert {e["field"] for e in refused.get_json()["errors"]} == {"starts_on", "ends_on"}
    assert count(db, ContractTerm) == 1


# Reads ----------------------------------------------------------------------------------


def test_cursor_pages_show_every_contact_once_while_rows_are_inserted(api: Api) -> None:
    api.post("/api/v1/contacts/bulk", {"contacts": [contact(n) for n in range(25)]})
    seen: list[int] = []
    cursor = None
    added = 25
    while True:
        query = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/contacts", query_string=query).get_json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Someone else inserts between two pages: the new rows come later, never twice.
        api.post("/api/v1/contacts/bulk", {"contacts": [contact(added), contact(added + 1)]})
        added += 2
    assert len(seen) == len(set(seen)) == added
    assert seen == sorted(seen)


def test_lists_filter_by_status_address_update_time_and_external_id(api: Api, db: Database) -> None:
    api.post("/api/v1/contacts/bulk", {"contacts": [
        contact(1, external_id="A"), contact(2, status="unsubscribed"),
        {"email": "someone@elsewhere.org"},
    ]})  # fmt: skip

    def emails(**query: Any) -> list[str]:
        answer = api.get("/api/v1/contacts", query_string=query)
        assert answer.status_code == 200, answer.get_json()
        return [c["email"] for c in answer.get_json()["data"]]

    assert emails(status="unsubscribed") == ["customer2@example.com"]
    assert emails(email_contains="ELSEWHERE") == ["someone@elsewhere.org"]
    assert emails(email_contains="%") == []
    assert emails(external_id="A") == ["customer1@example.com"]
    later = (utcnow() + timedelta(hours=1)).isoformat()
    assert emails(updated_since=later) == []
    assert len(emails(updated_since="2000-01-01T00:00:00")) == 3


def test_a_cursor_not_made_by_the_api_is_a_problem(api: Api) -> None:
    answer = api.get("/api/v1/contacts", query_string={"cursor": "bm9wZQ"})
    assert answer.status_code == 400 and answer.mimetype == PROBLEM
    assert answer.get_json()["errors"][0]["field"] == "cursor"


def test_unknown_contacts_and_paths_are_problems(api: Api) -> None:
    for path in ("/api/v1/contacts/999", "/api/v1/contacts/-1", "/api/v1/nothing",
                 "/api/v1/contacts/99999999999999"):  # fmt: skip
        answer = api.get(path)
        assert answer.status_code == 404 and answer.mimetype == PROBLEM, path
    wrong = api.client.patch("/api/v1/contacts", headers=api.headers)
    assert wrong.status_code == 405 and wrong.mimetype == PROBLEM
    assert "GET" in wrong.headers["Allow"]


# Erasure --------------------------------------------------------------------------------


def test_erasure_removes_personal_data_keeps_the_ledger_and_hides_the_contact(
    api: Api, db: Database
) -> None:
    answer = api.post("/api/v1/contacts", {
        "email": "gone@example.com", "first_name": "Ada", "last_name": "Lovelace",
        "external_id": "CRM-7", "attributes": {"phone": "+44 20 7946 0000"},
        "contracts": [contract(external_id="K7", attributes={"serial": "SN-1"},
                               renewal_url="https://shop.example.com/renew/ada")],
    })  # fmt: skip
    contact_id = answer.get_json()["contact"]["id"]
    campaign_id = schedule_campaign(db, "Offer", ["gone@example.com", "stays@example.com"])
    launch_now(db)
    rows_before = count(db, Delivery)
    assert rows_before == 2

    assert api.delete(f"/api/v1/contacts/{contact_id}").status_code == 204
    assert api.delete(f"/api/v1/contacts/{contact_id}").status_code == 204  # idempotent

    with db.unit_of_work() as s:
        erased = s.get(Contact, contact_id)
        assert erased is not None and erased.erased_at is not None
        assert erased.email == f"erased-{contact_id}@erased.invalid"
        assert (erased.first_name, erased.last_name, erased.external_id, erased.attributes) == (
            "", "", None, {},
        )  # fmt: skip
        (held,) = s.scalars(select(Contract).where(Contract.contact_id == contact_id))
        assert (held.external_id, held.attributes, held.renewal_url) == (None, {}, None)
        rows = list(s.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)))
        assert len(rows) == rows_before
        mine = next(r for r in rows if r.contact_id == contact_id)
        assert mine.email == erased.email
        assert mine.state == DeliveryState.SUPPRESSED and mine.reason == "contact erased"
        everywhere = " ".join(str(v) for r in rows for v in vars(r).values())
        assert "gone@example.com" not in everywhere

    assert api.get(f"/api/v1/contacts/{contact_id}").status_code == 404
    listed = api.get("/api/v1/contacts").get_json()["data"]
    assert [c["email"] for c in listed] == ["stays@example.com"]
    assert (
        api.get("/api/v1/contacts", query_string={"email_contains": "erased"}).get_json()["data"]
        == []
    )
    # The person may come back later: that is a new contact, not the erased one.
    back = api.post("/api/v1/contacts", {"email": "gone@example.com"})
    assert back.status_code == 201 and back.get_json()["contact"]["id"] != contact_id
    taken = api.post("/api/v1/contacts", {"email": f"erased-{contact_id}@erased.invalid"})
    assert taken.status_code == 422


def test_erasing_an_unknown_contact_is_a_404_problem(api: Api) -> None:
    answer = api.delete("/api/v1/contacts/4242")
    assert answer.status_code == 404 and answer.mimetype == PROBLEM


def test_an_erased_contact_status_is_kept_for_the_counts(api: Api, db: Database) -> None:
    answer = api.post("/api/v1/contacts", contact(1, status="bounced"))
    contact_id = answer.get_json()["contact"]["id"]
    api.delete(f"/api/v1/contacts/{contact_id}")
    with db.unit_of_work() as s:
        assert s.scalar(select(Contact.status)) == ContactStatus.BOUNCED


# The document ---------------------------------------------------------------------------


def test_the_openapi_document_and_its_page_are_served_without_a_key(app: Flask) -> None:
    client = app.test_client()
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/contacts", "/api/v1/contacts/bulk", "/api/v1/contacts/{contact_id}"} <= set(
        document["paths"]
    )
    refused = document["paths"]["/api/v1/contacts"]["post"]["responses"]["422"]["content"]
    assert list(refused) == [PROBLEM]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/api/v1/contacts/bulk" in page and 'id="problem-invalid-fields"' in page
    assert "<script" not in page and "cdn" not in page.lower()
