"""Contacts in the admin's hands: edits that name bad fields, status with history, search."""

from __future__ import annotations

from datetime import date

import pytest

from campaigns.audience import contacts, suppressions
from campaigns.audience.records import RecordError
from campaigns.db import Database
from campaigns.errors import ValidationError
from campaigns.models import ContactStatus, ContractStatus
from tests.factories import make_contact


def test_an_edit_names_every_bad_field_and_changes_nothing(db: Database) -> None:
    with db.unit_of_work() as s:
        ann = make_contact(s, "ann@example.com", first_name="Ann")
        make_contact(s, "bob@example.com")
    with db.unit_of_work() as s, pytest.raises(RecordError) as caught:
        contacts.update_contact(s, ann.id, {
            "email": "bob@example.com", "time_zone": "Mars/Olympus", "first_name": "Annie",
            "customer_since": "31.12.2020",
        }, user_id=None)  # fmt: skip
    assert {e.field for e in caught.value.errors} == {
        "contact.email", "contact.time_zone", "contact.customer_since"}  # fmt: skip
    with db.unit_of_work() as s:
        assert contacts.get_contact(s, ann.id).first_name == "Ann"


def test_an_edit_changes_the_fields_given(db: Database) -> None:
    with db.unit_of_work() as s:
        ann = make_contact(s, "ann@example.com")
    with db.unit_of_work() as s:
        fields = {"first_name": " Annie ", "locale": "de-ch", "customer_since": "2019-05-01"}
        contacts.update_contact(s, ann.id, fields, user_id=None)
    with db.unit_of_work() as s:
        contact = contacts.get_contact(s, ann.id)
        assert (contact.first_name, contact.locale, contact.customer_since) == (
            "Annie", "de_CH", date(2019, 5, 1))  # fmt: skip


def test_unsubscribe_and_resubscribe_are_kept_with_who_and_why(db: Database) -> None:
    with db.unit_of_work() as s:
        ann = make_contact(s, "ann@example.com")
    with db.unit_of_work() as s:
        assert contacts.set_status(s, ann.id, ContactStatus.UNSUBSCRIBED, reason="asked by phone",
                                   source="admin")  # fmt: skip
        assert not contacts.set_status(s, ann.id, ContactStatus.UNSUBSCRIBED, reason="again",
                                       source="admin")  # fmt: skip
    with db.unit_of_work() as s:
        contacts.set_status(s, ann.id, ContactStatus.ACTIVE, reason="asked back", source="admin")
    with db.unit_of_work() as s:
        history = contacts.status_history(s, ann.id)
        assert [(c.status, c.reason) for c in history] == [
            (ContactStatus.ACTIVE, "asked back"),
            (ContactStatus.UNSUBSCRIBED, "asked by phone"),
        ]


def test_ending_a_contract_cancels_it_no_later_than_its_end(db: Database) -> None:
    with db.unit_of_work() as s:
        contract = make_contact(s, "ann@example.com").contracts[0]
    with db.unit_of_work() as s:
        ended = contacts.end_contract(s, contract.id, on=date(2026, 6, 30), user_id=None)
        assert (ended.ends_on, ended.status) == (date(2026, 6, 30), ContractStatus.CANCELLED)
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="before it starts"):
        contacts.end_contract(s, contract.id, on=date(2025, 1, 1), user_id=None)


def test_search_pages_by_cursor_and_finds_by_address_name_or_external_id(db: Database) -> None:
    with db.unit_of_work() as s:
        for n in range(7):
            make_contact(s, f"user{n}@example.com", first_name=f"Name{n}", external_id=f"crm-{n}")
        make_contact(s, "zed@other.example", last_name="Zed%")
    with db.unit_of_work() as s:
        first = contacts.search_contacts(s, query="user", limit=4)
        second = contacts.search_contacts(s, query="user", limit=4, before_id=first.next_cursor)
        assert [c.email for c in first.contacts + second.contacts] == [
            f"user{n}@example.com" for n in range(6, -1, -1)]  # fmt: skip
        assert second.next_cursor is None
        assert [c.email for c in contacts.search_contacts(s, query="crm-3").contacts] == [
            "user3@example.com"]  # fmt: skip
        assert [c.email for c in contacts.search_contacts(s, query="zed%").contacts] == [
            "zed@other.example"]  # fmt: skip
        assert contacts.search_contacts(s, query="%").contacts == []


def test_the_suppression_list_holds_addresses_of_no_contact(db: Database) -> None:
    with db.unit_of_work() as s:
        suppressions.suppress(s, " Nobody@Example.com", reason="legal request", source="admin")
        suppressions.suppress(s, "nobody@example.com", reason="twice", source="admin")
    with db.unit_of_work() as s:
        rows, total = suppressions.list_suppressions(s)
        assert total == 1 and rows[0].reason == "legal request"
        suppressions.unsuppress(s, "nobody@example.com", user_id=None)
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="not on the suppression"):
        suppressions.unsuppress(s, "nobody@example.com", user_id=None)
