"""Bulk upserts of contacts and contracts: matching, renewals, refusals, consent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from campaigns.audience.records import contact_record, contract_record
from campaigns.audience.upserts import upsert
from campaigns.db import Database
from campaigns.models import Contact, ContactStatusChange, Contract, ContractTerm


def item(raw: dict[str, Any], *contracts: dict[str, Any]) -> dict[str, Any]:
    record, errors = contact_record(raw)
    assert errors == []
    checked = []
    for contract in contracts:
        c, errors = contract_record(contract)
        assert errors == []
        checked.append(c)
    return {**record, "contracts": checked}


BASIC = {"product": "Support", "plan": "basic", "starts_on": "2025-01-01", "ends_on": "2025-12-31",
         "price": "100", "currency": "EUR"}  # fmt: skip


def test_new_contacts_and_contracts_are_created_in_order(db: Database) -> None:
    with db.unit_of_work() as s:
        outcomes = upsert(s, [
            item({"email": "Ann@Example.com", "first_name": "Ann"}, BASIC),
            item({"email": "bob@example.com"}),
        ], source="api")  # fmt: skip
    assert [o.contact for o in outcomes] == ["created", "created"]
    assert outcomes[0].contracts[0][1] == "created"
    with db.unit_of_work() as s:
        ann = s.get(Contact, outcomes[0].contact_id)
        assert ann is not None and ann.email == "ann@example.com" and ann.first_name == "Ann"
        contract = s.get(Contract, outcomes[0].contracts[0][0])
        assert contract is not None and contract.contact_id == ann.id
        assert contract.ends_on == date(2025, 12, 31) and contract.price == Decimal("100.00")


def test_a_repeated_upsert_changes_nothing(db: Database) -> None:
    rows = [item({"email": "ann@example.com", "attributes": {"tier": "gold"}}, BASIC)]
    with db.unit_of_work() as s:
        upsert(s, rows, source="import")
    with db.unit_of_work() as s:
        again = upsert(s, rows, source="import")
        assert again[0].contact == "unchanged"
        assert again[0].contracts[0][1] == "unchanged"
        assert s.scalar(select(func.count(Contract.id))) == 1


def test_moving_the_end_date_forward_keeps_the_previous_term(db: Database) -> None:
    with db.unit_of_work() as s:
        first = upsert(s, [item({"email": "ann@example.com"}, BASIC)], source="import")
    renewal = {**BASIC, "starts_on": "2026-01-01", "ends_on": "2026-12-31", "price": "120"}
    with db.unit_of_work() as s:
        second = upsert(s, [item({"email": "ann@example.com"}, renewal)], source="api")
    assert second[0].contracts == [(first[0].contracts[0][0], "renewed")]
    assert second[0].contact == "unchanged"
    with db.unit_of_work() as s:
        contract = s.scalars(select(Contract)).one()
        assert (contract.term, contract.ends_on, contract.price) == (
            2, date(2026, 12, 31), Decimal("120.00"),
        )  # fmt: skip
        contact = s.scalars(select(Contact)).one()
        assert contact.updated_at > contact.created_at  # a CRM's "changed since" sees it
        term = s.scalars(select(ContractTerm)).one()
        assert (term.term, term.starts_on, term.ends_on, term.price, term.source) == (
            1, date(2025, 1, 1), date(2025, 12, 31), Decimal("100.00"), "api",
        )  # fmt: skip


def test_an_import_never_resubscribes_an_unsubscribed_contact(db: Database) -> None:
    with db.unit_of_work() as s:
        upsert(s, [item({"email": "ann@example.com", "status": "unsubscribed"})], source="api")
    with db.unit_of_work() as s:
        outcome = upsert(s, [item({"email": "ann@example.com", "status": "active"})], source="api")
        assert outcome[0].contact == "unchanged"
        assert s.scalars(select(Contact.status)).one() == "unsubscribed"


def test_a_status_change_is_recorded_with_its_source(db: Database) -> None:
    with db.unit_of_work() as s:
        upsert(s, [item({"email": "ann@example.com"})], source="import")
    with db.unit_of_work() as s:
        upsert(s, [item({"email": "ann@example.com", "status": "bounced"})], source="api")
        change = s.scalars(select(ContactStatusChange)).one()
        assert (change.status, change.source) == ("bounced", "api")


def test_a_bad_item_is_rejected_whole_and_the_others_are_written(db: Database) -> None:
    with db.unit_of_work() as s:
        ann = upsert(s, [item({"email": "ann@example.com", "external_id": "crm-1"})], source="api")
    with db.unit_of_work() as s:
        outcomes = upsert(s, [
            item({"email": "bob@example.com", "external_id": "crm-1"}, BASIC),  # taken id
            item({"email": "cat@example.com"}, {"product": "Support"}),  # no dates
            item({"email": "dan@example.com"}, BASIC, BASIC),  # same contract twice
            item({"email": "eve@example.com"}, BASIC),
        ], source="api")  # fmt: skip
    assert [o.contact for o in outcomes] == ["rejected", "rejected", "rejected", "created"]
    assert outcomes[0].errors[0].reason == f"already belongs to contact #{ann[0].contact_id}"
    assert {e.field for e in outcomes[1].errors} == {"contracts[0].starts_on",
                                                    "contracts[0].ends_on"}  # fmt: skip
    assert "twice" in outcomes[2].errors[0].reason
    with db.unit_of_work() as s:
        emails = set(s.scalars(select(Contact.email)))
        assert emails == {"ann@example.com", "eve@example.com"}
        assert s.scalar(select(func.count(Contract.id))) == 1


def test_matching_by_external_id_updates_the_address(db: Database) -> None:
    with db.unit_of_work() as s:
        upsert(s, [item({"email": "ann@example.com", "external_id": "crm-1"})], source="api")
    with db.unit_of_work() as s:
        outcome = upsert(
            s, [item({"email": "ann@new.example.com", "external_id": "crm-1"})],
            source="api", match="external_id",
        )  # fmt: skip
        assert outcome[0].contact == "updated"
        assert s.scalars(select(Contact.email)).one() == "ann@new.example.com"


def test_attributes_are_merged_and_null_removes_one(db: Database) -> None:
    with db.unit_of_work() as s:
        upsert(s, [item({"email": "a@example.com", "attributes": {"tier": "gold", "x": 1}})],
               source="api")  # fmt: skip
    with db.unit_of_work() as s:
        upsert(s, [item({"email": "a@example.com", "attributes": {"x": None, "y": True}})],
               source="api")  # fmt: skip
        assert s.scalars(select(Contact.attributes)).one() == {"tier": "gold", "y": True}


def test_records_name_every_refused_field() -> None:
    _, errors = contact_record({"email": "not-an-address", "locale": "xx-yy-zz", "nope": 1})
    assert {e.field for e in errors} == {"contact.email", "contact.locale", "contact.nope"}
    _, errors = contract_record({"product": "S", "starts_on": "2026-02-30", "ends_on": "2026-01-01",
                                 "currency": "EURO", "price": "1,5"})  # fmt: skip
    assert {e.field for e in errors} == {
        "contract.starts_on",
        "contract.currency",
        "contract.price",
    }
    _, errors = contract_record({"starts_on": "2026-02-01", "ends_on": "2026-01-01"})
    assert [e.reason for e in errors] == ["is before the start 2026-02-01"]


def test_addresses_fold_to_one_canonical_form() -> None:
    record, errors = contact_record({"email": "\u3000ＡＮＮ@Example.COM ", "locale": "pt-br"})
    assert errors == []
    assert record == {"email": "ann@example.com", "locale": "pt_BR"}
