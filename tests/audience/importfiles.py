"""CSV files for the import tests, and a helper that runs one through the domain."""

from __future__ import annotations

from pathlib import Path

from campaigns.audience import importer, imports, mappings
from campaigns.db import Database
from campaigns.models import ImportJob

HEADER = "E-mail;First name;Last name;Product;Plan;Start;End;Price;Currency;Tier\n"
# Latin-1, semicolons, one row per contract; line numbers as a text editor shows them.
MALFORMED = HEADER + (
    "ada@example.com;Ada;Lovelace;Premium Support;gold;2026-01-01;2027-01-01;480.00;EUR;3\n"  # 2
    "ada@example.com;Ada;Lovelace;Warranty;;2026-01-01;2028-01-01;99;EUR;3\n"  # 3
    "bob@example;Bob;Byte;Premium Support;;2026-01-01;2027-01-01;480;EUR;1\n"  # 4 bad email
    "célia@example.com;Célia;Dupré;Premium Support;;2026-02-30;2027-01-01;480;EUR;2\n"  # 5 date
    "dan@example.com;Dan;Dunn;Premium Support;gold;2026-06-01;2026-01-01;480;EUR;2\n"  # 6 end<start
    "eve@example.com;Eve;Evans;Premium Support;gold;2026-01-01;2027-01-01;480;ZZZ;2\n"  # 7 currency
    "fay@example.com;Fay;Fox;Basic;;2026-01-01;2027-01-01;100;EUR;1\n"  # 8
    "fay@example.com;Fay;Fox;Basic;;2026-01-01;2027-01-01;100;EUR;1\n"  # 9 duplicate
    "ada@example.com;Adele;Lovelace;Other;;2026-01-01;2027-01-01;1;EUR;3\n"  # 10 conflict
    "gus@example.com;Gus;Gray;Basic;;2026-01-01;2027-01-01;100;EUR;many\n"  # 11 bad number
)
VALID_EMAILS = {"ada@example.com", "fay@example.com"}
BAD_LINES = {4, 5, 6, 7, 9, 10, 11}


def write(path: Path, text: str, encoding: str = "latin-1") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def new_job(
    db: Database, data_dir: Path, source: Path, *, match: str = "email",
    contracts: Path | None = None, **configure: object,
) -> int:  # fmt: skip
    """Store the file (and a contracts file) as an upload would and set the suggested mapping
    (tier as a number)."""
    with source.open("rb") as stream:
        stored = imports.store_upload(data_dir, stream)
    if contracts is not None:
        with contracts.open("rb") as stream:
            imports.store_upload(data_dir, stream, contracts_of=stored)
    with db.unit_of_work() as s:
        second_name = contracts.name if contracts else ""
        job = imports.create_job(s, stored, filename=source.name, user_id=None,
                                 contracts_filename=second_name)  # fmt: skip
        preview = imports.preview(job)
        columns = mappings.suggest(preview.header, preview.sample)
        if "Tier" in columns:
            columns["Tier"] = "contact.attributes.tier:number"
        if contracts is not None:
            second = imports.preview(job, contracts=True)
            configure.setdefault("contracts_columns", mappings.suggest(
                second.header, second.sample, contracts_file=True))  # fmt: skip
        imports.configure(s, job.id, columns, match=match, **configure)  # type: ignore[arg-type]
        return job.id


def run(db: Database, job_id: int) -> ImportJob:
    job = importer.run(db, job_id)
    assert job is not None
    return job
