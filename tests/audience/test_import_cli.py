"""`campaigns contacts import FILE`: in-process, with a progress bar and the report's summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from campaigns.audience import mappings
from campaigns.cli import main
from campaigns.db import Database
from campaigns.models import Contact
from tests.audience.importfiles import BAD_LINES, MALFORMED, VALID_EMAILS, write


def _emails(db: Database) -> set[str]:
    with db.unit_of_work() as s:
        return set(s.scalars(select(Contact.email)))


@pytest.fixture
def cli(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("CAMPAIGNS_DATA_DIR", str(tmp_path / "var"))
    return CliRunner()


def test_the_cli_imports_nothing_from_a_bad_file_and_says_where_the_errors_are(
    cli: CliRunner, db: Database, tmp_path: Path
) -> None:
    source = write(tmp_path / "contacts.csv", MALFORMED)
    result = cli.invoke(main, ["contacts", "import", str(source)])
    assert result.exit_code == 1, result.output
    assert "failed: 7 of 10 rows have errors" in result.output
    assert "line 4, E-mail: 'bob@example' is not a valid e-mail address" in result.output
    report = Path(result.output.split("row errors: ")[1].strip())
    lines = report.read_text().splitlines()
    assert lines[0] == "line,column,value,reason"
    assert {int(line.split(",")[0]) for line in lines[1:]} == BAD_LINES
    assert _emails(db) == set()


def test_the_cli_dry_run_counts_and_valid_rows_imports(
    cli: CliRunner, db: Database, tmp_path: Path
) -> None:
    source = write(tmp_path / "contacts.csv", MALFORMED)
    dry = cli.invoke(main, ["contacts", "import", str(source), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "checked: A dry run: nothing was written. 10 rows read, 7 rejected" in dry.output
    assert _emails(db) == set()
    done = cli.invoke(main, ["contacts", "import", str(source), "--valid-rows"])
    assert done.exit_code == 0, done.output
    assert "done: 10 rows read, 7 rejected" in done.output
    assert _emails(db) == VALID_EMAILS


def test_the_cli_uses_a_saved_mapping_by_name(cli: CliRunner, db: Database, tmp_path: Path) -> None:
    with db.unit_of_work() as s:
        mappings.save_mapping(s, "CRM", {"columns": {"Mail": "contact.email",
                                                     "Kunde": "contact.external_id"},
                                         "match": "external_id"})  # fmt: skip
    source = write(tmp_path / "crm.csv", "Kunde\tMail\nK-7\tkay@example.com\n", "utf-8")
    result = cli.invoke(main, ["contacts", "import", str(source), "--mapping", "CRM"])
    assert result.exit_code == 0, result.output
    assert "tab-separated" in result.output and "Kunde → contact.external_id" in result.output
    with db.unit_of_work() as s:
        assert s.scalars(select(Contact.external_id)).one() == "K-7"


def test_the_cli_takes_the_contracts_from_a_second_file(
    cli: CliRunner, db: Database, tmp_path: Path
) -> None:
    people = write(tmp_path / "people.csv", "email,first_name\nann@example.com,Ann\n", "utf-8")
    deals = write(tmp_path / "deals.csv", (
        "customer_email,contract_id,product,ends_on,starts_on\n"
        "ann@example.com,K-1,Premium Support,2027-01-01,2026-01-01\n"
        "zed@example.com,K-2,Premium Support,2027-01-01,2026-01-01\n"
    ), "utf-8")  # fmt: skip
    args = ["contacts", "import", str(people), "--contracts", str(deals)]
    failed = cli.invoke(main, args)
    assert failed.exit_code == 1, failed.output
    assert "deals.csv: utf-8, comma-separated\n  customer_email → contact.email" in failed.output
    assert ("deals.csv line 3, customer_email: 'zed@example.com' matches no contact, neither in "
            "the contacts file nor stored") in failed.output  # fmt: skip
    done = cli.invoke(main, [*args, "--valid-rows"])
    assert done.exit_code == 0, done.output
    assert "Contacts: 1 created. Contracts: 1 created." in done.output
    assert _emails(db) == {"ann@example.com"}
