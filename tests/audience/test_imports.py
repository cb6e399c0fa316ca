"""CSV import: a malformed file's report names each bad row; the database changes only as chosen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from campaigns.audience import csvfiles, importer, imports, mappings, upserts
from campaigns.db import Database, utcnow
from campaigns.errors import ValidationError
from campaigns.models import Contact, Contract, ImportStatus
from tests.audience.importfiles import BAD_LINES, MALFORMED, VALID_EMAILS, new_job, run, write


def _emails(db: Database) -> set[str]:
    with db.unit_of_work() as s:
        return set(s.scalars(select(Contact.email)))


def _contracts(db: Database) -> int:
    with db.unit_of_work() as s:
        return s.scalar(select(func.count(Contract.id))) or 0


def _errors(db: Database, job_id: int) -> dict[int, list[tuple[str, str, str]]]:
    found: dict[int, list[tuple[str, str, str]]] = {}
    with db.unit_of_work() as s:
        for e in imports.row_errors(s, job_id):
            found.setdefault(e.line, []).append((e.column, e.value, e.reason))
    return found


def test_a_latin1_semicolon_file_is_read_with_its_encoding_delimiter_and_lines(
    tmp_path: Path,
) -> None:
    fmt = csvfiles.inspect(write(tmp_path / "in.csv", MALFORMED))
    assert (fmt.encoding, fmt.delimiter) == ("cp1252", ";")
    rows = dict(csvfiles.rows(tmp_path / "in.csv", fmt))
    assert rows[5][0] == "célia@example.com"
    assert len(rows) == 10


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_utf8_with_a_bom_and_each_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    text = f'email{delimiter}name\nzoë@example.com{delimiter}Zoë, "Z"\n'.replace(", ", ",")
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    fmt = csvfiles.inspect(path)
    assert (fmt.encoding, fmt.delimiter, fmt.header) == ("utf-8-sig", delimiter, ("email", "name"))


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_excels_unicode_text_utf16_with_tabs_is_read(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "unicode.txt"
    bom = "\ufeff".encode(codec)
    path.write_bytes(bom + "email\tfirst_name\nzoë@example.com\tZoë\nmax@example.com\tMäx\n"
                     .encode(codec))  # fmt: skip
    fmt = csvfiles.inspect(path)
    assert (fmt.encoding, fmt.delimiter, fmt.header) == ("utf-16", "\t", ("email", "first_name"))
    assert fmt.approx_rows == 2
    path.write_bytes(path.read_bytes().removesuffix("\n".encode(codec)))  # no last line break
    assert csvfiles.inspect(path).approx_rows == 2
    assert list(csvfiles.rows(path, fmt)) == [(2, ["zoë@example.com", "Zoë"]),
                                              (3, ["max@example.com", "Mäx"])]  # fmt: skip


def test_a_binary_file_is_refused_as_not_text_naming_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ValidationError, match=r"^the file is not text \(byte 9 is a NUL byte\)"):
        csvfiles.inspect(path)


def test_a_value_past_the_field_limit_names_its_line_and_the_likely_cause(
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.csv"
    path.write_text("email,first_name\nann@example.com,Ann\nbob@example.com," + "x" * 200_000)
    fmt = csvfiles.inspect(path)
    with pytest.raises(ValidationError, match=r"^line 3: .* runs past 131,072 characters; .*quote"):
        list(csvfiles.rows(path, fmt))


def test_a_quote_never_closed_is_named_on_the_row_it_swallows_the_rest_into(
    db: Database, tmp_path: Path
) -> None:
    path = write(tmp_path / "in.csv", 'email,first_name\nann@example.com,Ann\n'
                 '"bob@example.com,Bob\ncy@example.com,Cy\ndee@example.com,Dee\n')  # fmt: skip
    job = run(db, new_job(db, tmp_path / "var", path))
    assert (job.total_rows, job.added, job.rejected) == (2, 1, 1)
    ((_column, _value, reason),) = _errors(db, job.id)[3]
    assert reason == (
        'has 1 value where the header has 2 columns; a quote (") opens a value '
        "that runs over the next 3 lines: look for a quote that is never closed"
    )


def test_the_check_reports_every_bad_row_and_writes_nothing(db: Database, tmp_path: Path) -> None:
    job_id = new_job(db, tmp_path / "var", write(tmp_path / "in.csv", MALFORMED))
    job = run(db, job_id)
    assert job.status == ImportStatus.CHECKED
    assert (job.total_rows, job.added, job.rejected) == (10, 2, len(BAD_LINES))
    errors = _errors(db, job_id)
    assert set(errors) == BAD_LINES
    assert errors[4] == [("E-mail", "bob@example", "is not a valid e-mail address")]
    assert errors[5][0][:2] == ("Start", "2026-02-30")
    assert errors[6] == [("End", "2026-01-01", "is before the start 2026-06-01")]
    assert errors[7][0][:2] == ("Currency", "ZZZ") and "currency" in errors[7][0][2]
    assert "duplicate in file" in errors[9][0][2] and "line 8" in errors[9][0][2]
    assert "line 2" in errors[10][0][2] and "first_name" in errors[10][0][2]
    assert errors[11][0][:2] == ("Tier", "many")
    assert _emails(db) == set()


def test_all_or_nothing_with_a_bad_row_imports_nothing(db: Database, tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", MALFORMED)
    job_id = new_job(db, tmp_path / "var", source, dry_run=False)
    job = run(db, job_id)
    assert job.status == ImportStatus.FAILED
    assert "nothing was imported" in job.message
    assert set(_errors(db, job_id)) == BAD_LINES
    assert _emails(db) == set() and _contracts(db) == 0
    assert not Path(job.source_path).exists()  # the upload is removed once the job has ended


def test_choosing_the_valid_rows_imports_exactly_them(db: Database, tmp_path: Path) -> None:
    job_id = new_job(db, tmp_path / "var", write(tmp_path / "in.csv", MALFORMED))
    run(db, job_id)
    with db.unit_of_work() as s:
        imports.choose(s, job_id, "valid_rows")
    job = run(db, job_id)
    assert job.status == ImportStatus.DONE
    assert _emails(db) == VALID_EMAILS
    assert _contracts(db) == 3  # Ada's two, Fay's one
    with db.unit_of_work() as s:
        ada = s.scalars(select(Contact).where(Contact.email == "ada@example.com")).one()
        assert (ada.first_name, ada.attributes) == ("Ada", {"tier": 3})
    assert set(_errors(db, job_id)) == BAD_LINES
    # Run again (a redelivered message): nothing changes, nothing is doubled.
    assert importer.run(db, job_id) is None
    assert _contracts(db) == 3


def test_choosing_nothing_cancels_and_writes_nothing(db: Database, tmp_path: Path) -> None:
    job_id = new_job(db, tmp_path / "var", write(tmp_path / "in.csv", MALFORMED))
    run(db, job_id)
    with db.unit_of_work() as s:
        assert imports.choose(s, job_id, "nothing").status == ImportStatus.CANCELLED
    assert importer.run(db, job_id) is None
    assert _emails(db) == set()


def test_a_missing_match_column_is_refused_before_any_row_is_read(tmp_path: Path) -> None:
    header = ("Name", "Product")
    with pytest.raises(ValidationError, match="no column is mapped to contact.email"):
        mappings.check_mapping(header, mappings.suggest(header), "email")
    with pytest.raises(ValidationError, match="contact.external_id"):
        mappings.check_mapping(("E-mail",), {"E-mail": "contact.email"}, "external_id")


def test_matching_by_external_id_updates_the_contact_it_names(db: Database, tmp_path: Path) -> None:
    first = "Customer ID,Email,First name\nC-1,old@example.com,Ann\n"
    run(db, new_job(db, tmp_path / "var", write(tmp_path / "a.csv", first), dry_run=False))
    second = "Customer ID,Email,First name\nC-1,new@example.com,Anna\n"
    job = run(db, new_job(db, tmp_path / "var", write(tmp_path / "b.csv", second),
                          match="external_id", dry_run=False))  # fmt: skip
    assert (job.status, job.added, job.changed) == (ImportStatus.DONE, 0, 1)
    assert _emails(db) == {"new@example.com"}


def test_the_error_report_neutralises_formulas(db: Database, tmp_path: Path) -> None:
    text = 'Email,First name\n=HYPERLINK("x"),Eve\n'
    job_id = new_job(db, tmp_path / "var", write(tmp_path / "f.csv", text))
    run(db, job_id)
    with db.unit_of_work() as s:
        report = "".join(imports.errors_csv(s, job_id))
    assert report.splitlines()[1].startswith("2,Email,\"'=HYPERLINK")


def test_a_cancel_during_the_import_rolls_everything_back(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = "".join(f"p{i}@example.com,P{i}\n" for i in range(30))
    job_id = new_job(db, tmp_path / "var", write(tmp_path / "c.csv", "Email,First name\n" + rows),
                     dry_run=False)  # fmt: skip
    monkeypatch.setattr(importer, "CHUNK_ROWS", 10)
    with db.unit_of_work() as s:
        files = imports.JobFiles(imports.get_job(s, job_id).source_path)
    files.request_cancel()  # seen at the first chunk boundary, after 10 rows were written
    files.cancel.unlink()
    seen: list[int] = []

    def cancel_after_first_chunk(processed: int, _total: int) -> None:
        seen.append(processed)
        if processed >= 10:
            files.request_cancel()

    job = importer.run(db, job_id, on_progress=cancel_after_first_chunk)
    assert job is not None and job.status == ImportStatus.CANCELLED
    assert seen and _emails(db) == set()


def test_the_progress_says_every_row_is_read_while_the_merge_writes_them(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = "".join(f"w{i}@example.com,W{i}\n" for i in range(30))
    job_id = new_job(db, tmp_path / "var", write(tmp_path / "w.csv", "Email,First name\n" + rows),
                     dry_run=False)  # fmt: skip
    seen: list[tuple[str, int, int]] = []
    merge = upserts.Batch.merge

    def watched_merge(batch: upserts.Batch, **kwargs: Any) -> None:
        with db.reading() as s:  # what the admin's progress poll reads at this moment
            figures = imports.progress(s, job_id, now=utcnow())
        seen.append((figures.phase, figures.processed, figures.total))
        merge(batch, **kwargs)

    monkeypatch.setattr(upserts.Batch, "merge", watched_merge)
    job = importer.run(db, job_id)
    assert job is not None and job.status == ImportStatus.DONE
    assert seen == [("writing", 30, 30)]
    with db.reading() as s:
        assert imports.progress(s, job_id, now=utcnow()).phase == ""  # done: no phase
