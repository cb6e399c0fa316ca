"""A row checked the fast way (`RowMapper.typed`) gives what records.py gives for it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.audience.mappings import CONTACT_ORDER, CONTRACT_ORDER, RowMapper, check_mapping
from campaigns.audience.records import FieldError, contact_record, contract_record

HEADER = ("Email", "Customer", "First", "Locale", "Zone", "Status", "Since", "Spend", "Tier",
          "Contract", "Product", "Plan", "Start", "End", "State", "Price", "Currency", "Renewal",
          "Points", "Vip", "Seats", "Joined")  # fmt: skip
MAPPING = {
    "Email": "contact.email", "Customer": "contact.external_id", "First": "contact.first_name",
    "Locale": "contact.locale", "Zone": "contact.time_zone", "Status": "contact.status",
    "Since": "contact.customer_since", "Spend": "contact.lifetime_spend",
    "Tier": "contact.attributes.tier:number", "Contract": "contract.external_id",
    "Product": "contract.product", "Plan": "contract.plan", "Start": "contract.starts_on",
    "End": "contract.ends_on", "State": "contract.status", "Price": "contract.price",
    "Currency": "contract.currency", "Renewal": "contract.renewal_url",
    "Points": "contract.service_points", "Vip": "contract.attributes.vip:bool",
    "Seats": "contract.attributes.seats:number", "Joined": "contact.attributes.joined:date",
}  # fmt: skip
SAMPLES = {
    "Email": ["ann@example.com", " ANN@Example.COM ", "ａｎｎ@example.com", "bob@example", "@x.y",
              "a b@example.com", "zoë@exämple.de"],
    "Customer": ["C-1", " c-2 ", "x" * 101],
    "First": ["Ann", " Zoë ", "x" * 101],
    "Locale": ["en", "pt-br", "zh_hant_tw", "english", "EN"],
    "Zone": ["Europe/Berlin", "UTC", "Mars/Base"],
    "Status": ["active", "Bounced", "gone"],
    "Since": ["2024-01-31", "2024-02-30", "31.01.2024", " 2024-01-31 "],
    "Spend": ["0", "1250.00", "1,5", "-1", "1e3", "99999999999"],
    "Tier": ["3", "2.5", "many", "1e20"],
    "Contract": ["K-1", " K-2 "],
    "Product": ["Support", " Warranty "],
    "Plan": ["gold", ""],
    "Start": ["2026-01-01", "2026-02-30", "2027-06-01"],
    "End": ["2027-01-01", "2025-12-31", "soon"],
    "State": ["active", "EXPIRED", "paused"],
    "Price": ["480.00", "99", "abc", "NaN"],
    "Currency": ["EUR", "usd", "ZZZ", "EURO"],
    "Renewal": ["https://example.com/r", "ftp://x", "example.com"],
    "Points": ["0", "12", "-3", "1.5", "2000000"],
    "Vip": ["yes", "no", "maybe"],
    "Seats": ["10", "ten"],
    "Joined": ["2020-05-01", "May 2020"],
}  # fmt: skip
MAPPER = RowMapper(HEADER, check_mapping(HEADER, MAPPING, "email"))


def _cell(column: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), st.just("  "), st.sampled_from(SAMPLES[column]),
                     st.text(max_size=12))  # fmt: skip


ROWS = st.tuples(*(_cell(column) for column in HEADER)).map(list)


def _slow(row: list[str]) -> tuple[list[Any], list[Any] | None, list[FieldError]]:
    raw_contact, raw_contract, errors = MAPPER.raw(row)
    contact, contact_errors = contact_record(raw_contact)
    errors += contact_errors
    contract = None
    if raw_contract:
        record, contract_errors = contract_record(raw_contract)
        errors += contract_errors
        contract = [record.get(name) for name in CONTRACT_ORDER]
    return [contact.get(name) for name in CONTACT_ORDER], contract, errors


@settings(max_examples=400, deadline=None)
@given(ROWS, ROWS)
def test_the_fast_row_check_gives_the_records_values_and_errors(
    row: list[str], other: list[str]
) -> None:
    assert MAPPER.typed(row) == _slow(row)
    # The next row of the same contact (its contact cells repeated) reuses the contact's check.
    contact_columns = {index for _, index, *_ in MAPPER.contact_cells}
    same_contact = [row[i] if i in contact_columns else other[i] for i in range(len(row))]
    assert MAPPER.typed(same_contact) == _slow(same_contact)


def test_a_clean_row_is_typed_field_by_field() -> None:
    row = [SAMPLES[column][0] for column in HEADER]
    contact, contract, errors = MAPPER.typed(row)
    assert errors == []
    assert contact[0] == "ann@example.com" and contact[-1] == {"tier": 3, "joined": "2020-05-01"}
    assert contract is not None and contract[-1] == {"vip": True, "seats": 10}
