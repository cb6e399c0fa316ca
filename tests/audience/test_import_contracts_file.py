"""Contracts in a second file: each row finds its contact in the first file or among those
stored; every bad row is named by its file and line."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.audience import contacts, imports, mappings
from campaigns.db import Database
from campaigns.errors import ValidationError
from campaigns.models import Contact, Contract, ImportStatus
from tests.audience.importfiles import new_job, run, write

CUSTOMERS = (
    "Email,First name,Customer since\n"
    "ann@example.com,Ann,2019-04-01\n"  # 2
    "ben@example.com,Ben,2020-01-01\n"  # 3
    "cat@example.com,Cat,2021-13-01\n"  # 4 bad date: Cat is not imported
)
# Latin-1 and semicolons, as another export of the same CRM might be.
CONTRACTS = (
    "Customer email;Contract no;Product;Plan;Start;End;Price\n"
    "ann@example.com;K-1;Premium Support;gold;2026-01-01;2027-01-01;480.00\n"  # 2
    "ann@example.com;K-2;Extended Warranty;;2026-01-01;2028-01-01;99\n"  # 3
    "old@example.com;K-3;Basic Support;;2026-02-01;2027-02-01;100\n"  # 4 a stored contact
    "nobody@example.com;K-4;Basic Support;;2026-02-01;2027-02-01;100\n"  # 5 no such contact
    "ben@example.com;K-1;Basic Support;;2026-02-01;2027-02-01;100\n"  # 6 K-1 again
    "ben@example.com;K-5;Basic Support;;2026-03-01;2026-01-01;100\n"  # 7 end before start
    "cat@example.com;K-6;Basic Support;;2026-02-01;2027-02-01;100\n"  # 8 Cat has an error
    ";K-7;Basic Support;;2026-02-01;2027-02-01;100\n"  # 9 no key
    "nobody@example.com;K-8;Café Support;;2026-02-01;2027-02-01;1\n"  # 10 no such contact
)


def _job(db: Database, tmp_path: Path, **configure: object) -> int:
    customers = write(tmp_path / "customers.csv", CUSTOMERS, "utf-8")
    second = write(tmp_path / "contracts.csv", CONTRACTS)
    with db.unit_of_work() as s:
        contacts.create_contact(s, "old@example.com", first_name="Olga")
    return new_job(db, tmp_path / "var", customers, contracts=second, **configure)


def _errors(db: Database, job_id: int) -> dict[tuple[int, int], tuple[str, str, str]]:
    with db.unit_of_work() as s:
        return {(e.file, e.line): (e.column, e.value, e.reason)
                for e in imports.row_errors(s, job_id)}  # fmt: skip


def _contracts(db: Database) -> dict[str, tuple[str, str]]:
    with db.unit_of_work() as s:
        rows = s.execute(select(Contract.external_id, Contact.email, Contract.product)
                         .join(Contact, Contact.id == Contract.contact_id))  # fmt: skip
        return {ext: (email, product) for ext, email, product in rows}


def test_the_check_names_each_bad_row_by_its_file_and_line(db: Database, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path)
    job = run(db, job_id)
    assert job.status == ImportStatus.CHECKED
    assert (job.total_rows, job.added, job.rejected) == (12, 2, 7)
    errors = _errors(db, job_id)
    assert errors == {
        (1, 4): ("Customer since", "2021-13-01", errors[(1, 4)][2]),
        (2, 5): ("Customer email", "nobody@example.com",
                 "matches no contact, neither in the contacts file nor stored"),
        (2, 6): ("Contract no", "K-1", "duplicate in file: the same contract as line 2 of "
                                       "contracts.csv"),
        (2, 7): ("End", "2026-01-01", "is before the start 2026-03-01"),
        (2, 8): ("Customer email", "cat@example.com",
                 "not imported: its contact has an error on line 4 of customers.csv"),
        (2, 9): ("Customer email", "", "is empty; every row needs one to find its contact"),
        (2, 10): ("", "", "not imported: its contact has an error on line 5 of contracts.csv"),
    }  # fmt: skip
    assert "date" in errors[(1, 4)][2]
    assert _contracts(db) == {}  # a check writes nothing


def test_the_valid_rows_put_each_contract_with_its_contact(db: Database, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path)
    run(db, job_id)
    with db.unit_of_work() as s:
        imports.choose(s, job_id, "valid_rows")
    job = run(db, job_id)
    assert job.status == ImportStatus.DONE, job.message
    assert "Contracts: 3 created" in job.message
    assert _contracts(db) == {
        "K-1": ("ann@example.com", "Premium Support"),
        "K-2": ("ann@example.com", "Extended Warranty"),
        "K-3": ("old@example.com", "Basic Support"),
    }
    with db.unit_of_work() as s:
        people = {e: n for e, n in s.execute(select(Contact.email, Contact.first_name))}
    assert people == {"old@example.com": "Olga", "ann@example.com": "Ann", "ben@example.com": "Ben"}
    assert not imports.JobFiles(job.source_path).contracts.exists()  # both files removed


def test_all_or_nothing_with_a_bad_row_in_the_second_file_imports_nothing(
    db: Database, tmp_path: Path
) -> None:
    job = run(db, _job(db, tmp_path, dry_run=False))
    assert job.status == ImportStatus.FAILED
    assert _contracts(db) == {}
    with db.unit_of_work() as s:
        assert set(s.scalars(select(Contact.email))) == {"old@example.com"}


def test_the_error_report_names_the_file_of_each_row(db: Database, tmp_path: Path) -> None:
    job_id = _job(db, tmp_path)
    run(db, job_id)
    with db.unit_of_work() as s:
        rows = list(csv.reader(io.StringIO("".join(imports.errors_csv(s, job_id)))))
    assert rows[0] == ["file", "line", "column", "value", "reason"]
    assert [row[:2] for row in rows[1:]] == [
        ["customers.csv", "4"],
        *(["contracts.csv", str(n)] for n in range(5, 11)),
    ]


def test_a_contracts_file_fills_contract_fields_and_the_contacts_key_only() -> None:
    header = ("Email", "First name", "Product", "End")
    with pytest.raises(ValidationError, match="'First name' fills contact.first_name"):
        mappings.check_contracts_mapping(header, mappings.suggest(header), "email")
    with pytest.raises(ValidationError, match="no column is mapped to contact.external_id"):
        mappings.check_contracts_mapping(header, {"Product": "contract.product"}, "external_id")
    with pytest.raises(ValidationError, match="no column is mapped to a contract field"):
        mappings.check_contracts_mapping(header, {"Email": "contact.email"}, "email")
    suggested = mappings.suggest(header, contracts_file=True)
    assert suggested["First name"] == "contract.attributes.first_name:text"
    assert mappings.check_contracts_mapping(header, {**suggested, "First name": ""}, "email") == {
        "Email": "contact.email",
        "Product": "contract.product",
        "End": "contract.ends_on",
    }


def test_an_unreadable_contracts_file_is_refused_with_its_name(
    db: Database, tmp_path: Path
) -> None:
    customers = write(tmp_path / "customers.csv", CUSTOMERS, "utf-8")
    empty = write(tmp_path / "contracts.csv", "")
    with pytest.raises(ValidationError, match="the contracts file contracts.csv"):
        new_job(db, tmp_path / "var", customers, contracts=empty)
    assert list((tmp_path / "var" / "imports").iterdir()) == []
