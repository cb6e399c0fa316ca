"""The import pass: read a job's file, check every row, stage and merge them in one transaction.

The same pass serves the check (a dry run, rolled back at the end: it counts exactly what the
import would add, change and reject) and the import (committed — or, in all-or-nothing mode
with a bad row, rolled back). Either way every change of the pass is one transaction, so a
crash, a `kill -9` or a cancel leaves the database as it was; the job's final status and its
row errors are written in that same transaction when it commits.

Rows are checked one by one as they are read and the good ones streamed into the stage of an
`upserts.Batch` (COPY on PostgreSQL, which works on the rows while this process reads on);
once the file is read, one set-based merge writes every contact (one item per contact: its
first good row carries its fields, each of its rows one contract), and the outcomes and the
merge's refusals are counted in SQL. Across the file, a compact record of each contact (its
line and a hash of its values) and each contract key catches a contact with conflicting
values and a contract that appears twice, without keeping the rows themselves.

A job may bring its contracts in a second file, read after the first: each row one contract
and the key of its contact. A row joins its contact's item from the first file, or else an
item of its own that the merge gives to the stored contact of that key (or refuses). Inside
the pass the second file's lines are numbered from SECOND on, so one number names a row of
either file; row errors store the file and its own line.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import update

from campaigns.audience import csvfiles, imports, upserts
from campaigns.audience.mappings import (
    CONTACT_ORDER,
    RowMapper,
    check_contracts_mapping,
    check_mapping,
)
from campaigns.audience.records import FieldError
from campaigns.db import Database, utcnow
from campaigns.errors import CampaignsError, ValidationError
from campaigns.models import ImportJob, ImportMode, ImportStatus

log = logging.getLogger(__name__)
CHUNK_ROWS = 4000  # rows between progress figures and looks for a cancel
PROGRESS_SECONDS = 0.5
_MASK = (1 << 64) - 1
SECOND = 1_000_000_000  # the second file's line n is SECOND + n in the pass (fits the stage's int)

OnProgress = Callable[[int, int], None]


class Cancelled(CampaignsError):
    """The user cancelled the import while it ran; its transaction was rolled back."""


@dataclass
class Tally:
    """What a pass found, contacts and contracts separately; rows rejected by line."""

    rows: int = 0
    rejected: int = 0
    contacts: dict[str, int] = field(default_factory=dict)
    contracts: dict[str, int] = field(default_factory=dict)

    def add(self, counts: dict[str, int], what: str) -> None:
        counts[what] = counts.get(what, 0) + 1

    @property
    def added(self) -> int:
        return self.contacts.get("created", 0)

    @property
    def changed(self) -> int:
        return self.contacts.get("updated", 0)

    def sentence(self, *, dry_run: bool) -> str:
        contacts = ", ".join(f"{n} {w}" for w, n in sorted(self.contacts.items())) or "none"
        contracts = ", ".join(f"{n} {w}" for w, n in sorted(self.contracts.items())) or "none"
        what = "A dry run: nothing was written. " if dry_run else ""
        return (f"{what}{self.rows} rows read, {self.rejected} rejected. Contacts: {contacts}. "
                f"Contracts: {contracts}.")  # fmt: skip


class _Spool:
    """Row errors gathered on disk as the pass goes (a file of bad rows costs no memory)."""

    def __init__(self, job: ImportJob) -> None:
        self.file: IO[str] = tempfile.TemporaryFile("w+", newline="", encoding="utf-8")
        self.out = csv.writer(self.file)
        self.names = (job.filename, job.contracts_filename) if job.contracts_filename else None

    def add(self, line: int, column: str, value: str, reason: str) -> None:
        self.out.writerow((line, column, value[:2000], reason))

    def at(self, line: int) -> str:
        """A line of the pass as a person finds it: "line 7", or "line 7 of contracts.csv"."""
        if self.names is None:
            return f"line {line}"
        second = line >= SECOND
        return f"line {line - SECOND if second else line} of {self.names[second]}"

    def rows(self) -> Iterator[dict[str, Any]]:
        self.file.seek(0)
        for line, column, value, reason in csv.reader(self.file):
            second = int(line) >= SECOND
            yield {"file": 2 if second else 1, "line": int(line) - SECOND * second,
                   "column": column, "value": value, "reason": reason}  # fmt: skip

    def close(self) -> None:
        self.file.close()


class _Figures:
    """Live progress: committed to the job row on its own connection where the database
    allows another writer (PostgreSQL), and kept in the job's progress file everywhere."""

    def __init__(self, db: Database, job: ImportJob, files: imports.JobFiles,
                 status: ImportStatus, on_progress: OnProgress | None) -> None:  # fmt: skip
        self.db, self.job_id, self.files, self.status = db, job.id, files, status
        self.on_progress = on_progress
        self.total = job.total_rows
        self.last = 0.0
        self.separate = db.engine.dialect.name != "sqlite"

    def update(self, processed: int, *, force: bool = False, phase: str = "reading") -> None:
        """Report rows read so far; `phase` "writing" once every row is read and the merge
        (about half of a large import's time) runs."""
        self.total = max(self.total, processed)
        if self.on_progress is not None:
            self.on_progress(processed, self.total)
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        self.files.write_progress(
            {"status": self.status, "processed": processed, "total": self.total, "phase": phase}
        )
        if self.separate:
            with self.db.engine.begin() as connection:
                connection.execute(
                    update(ImportJob).where(ImportJob.id == self.job_id)
                    .values(processed_rows=processed, total_rows=self.total)
                )  # fmt: skip


def run(db: Database, job_id: int, *, on_progress: OnProgress | None = None) -> ImportJob | None:
    """Do the job's pending work (its check, or its import); safe to call again at any time.

    Returns the job as the pass left it, or None when there was nothing to do: the job is
    finished, awaits the user's choice, or another process is working on it right now.
    """
    with db.unit_of_work() as session:
        files = imports.JobFiles(imports.get_job(session, job_id).source_path)
    with files.hold() as mine:
        if not mine:
            log.info("import %d: another process is working on it", job_id)
            return None
        job = _claim(db, job_id, files)
        if job is None:
            return None
        try:
            _pass(db, job, files, on_progress)
        except Cancelled:
            _finish(db, job_id, ImportStatus.CANCELLED, "Cancelled; nothing was imported.")
            files.remove(upload=True)
        except ValidationError as exc:  # the file itself cannot be read on
            _finish(db, job_id, ImportStatus.FAILED, f"{exc} Nothing was imported.")
            files.remove(upload=True)
        with db.unit_of_work() as session:
            job = imports.get_job(session, job_id)
        if job.status in imports.FINAL:
            files.remove(upload=True)
        return job


def _claim(db: Database, job_id: int, files: imports.JobFiles) -> ImportJob | None:
    """Move the job into the state of the work it needs (committed before the pass starts)."""
    with db.unit_of_work() as session:
        job = imports.get_job(session, job_id)
        if not imports.awaits_worker(job):
            return None
        if files.cancel_requested():
            imports.move(job, ImportStatus.CANCELLED)
            job.message = "Cancelled; nothing was imported."
            job.finished_at = utcnow()
            return None
        status = ImportStatus.CHECKING if job.dry_run else ImportStatus.IMPORTING
        imports.move(job, status)
        job.started_at = utcnow()
        job.finished_at = None
        job.processed_rows = 0
        files.write_progress({"status": status, "processed": 0, "total": job.total_rows})
        return job


def _finish(db: Database, job_id: int, status: ImportStatus, message: str) -> None:
    with db.unit_of_work() as session:
        job = imports.get_job(session, job_id)
        imports.move(job, status)
        job.message = message
        job.finished_at = utcnow()


def _pass(db: Database, job: ImportJob, files: imports.JobFiles,
          on_progress: OnProgress | None) -> None:  # fmt: skip
    path, fmt = imports.file_format(job)
    # A saved mapping may name a column this file lacks: refused before any row is read.
    match = job.mapping["match"]
    mapper = RowMapper(fmt.header, check_mapping(fmt.header, job.mapping["columns"], match))
    second: tuple[Path, csvfiles.CsvFormat, RowMapper] | None = None
    if job.contracts_filename:
        path_2, fmt_2 = imports.file_format(job, contracts=True)
        columns = check_contracts_mapping(fmt_2.header, job.mapping.get("contracts_columns", {}),
                                          match, filename=job.contracts_filename)  # fmt: skip
        second = path_2, fmt_2, RowMapper(fmt_2.header, {"columns": columns, "match": match})
    status = ImportStatus(job.status)
    figures = _Figures(db, job, files, status, on_progress)
    spool = _Spool(job)
    tally = Tally()
    session = db.sessions()

    def read(rows: Iterator[tuple[int, list[str]]], add: Callable[[int, list[str]], None],
             offset: int = 0) -> None:  # fmt: skip
        for line, row in rows:
            tally.rows += 1
            add(offset + line, row)
            if tally.rows % CHUNK_ROWS == 0:
                figures.update(tally.rows)
                if files.cancel_requested():
                    raise Cancelled("cancelled by the user")

    try:
        batch = upserts.Batch(session, match=mapper.match, place="line", unique=True)
        reader = _Reader(mapper, spool, second[2] if second else None)
        with batch.writer() as stage:
            read(csvfiles.rows(path, fmt), lambda line, row: reader.add(line, row, stage, tally))
            if second is not None:
                read(csvfiles.rows(second[0], second[1]),
                     lambda line, row: reader.add_contract(line, row, stage, tally),
                     offset=SECOND)  # fmt: skip
        batch.orphans = bool(reader.orphans)
        figures.update(tally.rows, force=True, phase="writing")
        batch.merge(source="import", user_id=job.user_id)
        if files.cancel_requested():
            raise Cancelled("cancelled by the user")
        tally.contacts, tally.contracts = batch.counts()
        _refused(batch, reader, spool, tally)
        keep = status == ImportStatus.IMPORTING and (
            job.mode == ImportMode.VALID_ROWS or tally.rejected == 0
        )
        if not keep:
            session.rollback()
        if status == ImportStatus.CHECKING:
            outcome, message = ImportStatus.CHECKED, tally.sentence(dry_run=True)
        elif keep:
            outcome, message = ImportStatus.DONE, tally.sentence(dry_run=False)
        else:
            outcome = ImportStatus.FAILED
            message = (f"{tally.rejected} of {tally.rows} rows have errors, and you chose to "
                       "import nothing if any row is bad: nothing was imported.")  # fmt: skip
        # Kept: the job's end is written in the import's own transaction, so a crash cannot
        # leave the contacts in and the job "importing"; otherwise in a fresh one.
        target = session if keep else db.sessions()
        try:
            imports.replace_row_errors(target, job.id, spool.rows())
            ended = imports.get_job(target, job.id)
            imports.move(ended, outcome)
            ended.message = message
            ended.total_rows = ended.processed_rows = tally.rows
            ended.added, ended.changed = tally.added, tally.changed
            ended.rejected = tally.rejected
            ended.finished_at = utcnow()
            target.commit()
        finally:
            if target is not session:
                target.close()
        log.info("import %d: %s %s", job.id, outcome, message)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        spool.close()


class _Reader:
    """Checks rows one by one and stages the good ones: a contact's first good row is the
    head of its item (the item is that line), and every row stages its contract under its
    own line. A contracts file's row joins its contact's item, or else an orphan item (its
    first line there) for a contact that is not in the first file."""

    def __init__(self, mapper: RowMapper, spool: _Spool, second: RowMapper | None = None) -> None:
        self.mapper, self.spool, self.second = mapper, spool, second
        self.contacts: dict[int, int] = {}  # hash(key) → line << 64 | hash(values)
        self.contracts: dict[int, int] = {}  # hash(contract key) → line
        self.recent: dict[str, list[Any]] = {}  # the last rows' contacts, to name changes
        self.older: dict[str, list[Any]] = {}
        self.key = CONTACT_ORDER.index(mapper.match)
        self.bare: dict[int, list[int]] = {}  # item → its later lines that stage nothing
        self.refused: dict[int, int] = {}  # hash(key) → first line of a contact never accepted
        self.orphans: dict[int, int] = {}  # hash(key) → item of a contact only the 2nd file has

    def column_of(self, line: int, field: str) -> str:
        """The column of the line's file that fills a field."""
        mapper = self.second if line >= SECOND and self.second is not None else self.mapper
        return mapper.column_of(field)

    def reject(self, line: int, errors: list[FieldError], tally: Tally) -> None:
        for error in errors:
            column = self.column_of(line, error.field)
            self.spool.add(line, column, error.value, _reason(error, column))
        tally.rejected += 1

    def typed(self, mapper: RowMapper, line: int, row: list[str], tally: Tally
              ) -> tuple[str, list[Any], list[Any] | None] | None:  # fmt: skip
        """The row's contact key, contact values and contract values; None when refused."""
        if len(row) != mapper.width:
            values = f"{len(row)} value{'s' * (len(row) != 1)}"
            self.spool.add(line, "", "", f"has {values} where the header has {mapper.width} "
                                         f"columns{csvfiles.unclosed_quote_hint(row)}")  # fmt: skip
            tally.rejected += 1
            return None
        contact, contract, errors = mapper.typed(row)
        key: str = contact[self.key] or ""
        if not key and mapper is self.second:
            # A contracts file fills only the key: the contact rules' "required (or an
            # external_id)" would mislead there; the message below says what is missing.
            errors = [e for e in errors if not e.field.startswith("contact.")]
        if not key and not any(e.field == f"contact.{mapper.match}" for e in errors):
            errors.append(FieldError(f"contact.{mapper.match}", "", "is empty; every row needs "
                                     "one to find its contact"))  # fmt: skip
        if errors:
            if key and mapper is self.mapper and hash(key) not in self.contacts:
                self.refused.setdefault(hash(key), line)
            self.reject(line, errors, tally)
            return None
        return key, contact, contract

    def add(self, line: int, row: list[str], stage: Callable[[tuple[Any, ...]], None],
            tally: Tally) -> None:  # fmt: skip
        checked = self.typed(self.mapper, line, row, tally)
        if checked is None:
            return
        key, contact, contract = checked
        mapper = self.mapper
        attributes = contact[-1]
        values = hash((*contact[:-1], attributes and tuple(attributes.items()))) & _MASK
        seen = self.contacts.get(hash(key))
        if seen is None:
            self.contacts[hash(key)] = line << 64 | values
        elif seen & _MASK != values:
            earlier = self.recent.get(key) or self.older.get(key)
            differ = _differences(earlier, contact) if earlier else ""
            self.reject(line, [FieldError(f"contact.{mapper.match}", key,
                        f"the same contact has other values on line {seen >> 64}{differ}")],
                        tally)  # fmt: skip
            return
        if contract is not None and not self.new_contract(line, key, contract, tally):
            return
        if seen is None:
            self.recent[key] = contact
            if len(self.recent) >= CHUNK_ROWS:
                self.older, self.recent = self.recent, {}
            stage(upserts.stage_values(line, line, None if contract is None else line, key,
                                       contact, contract))  # fmt: skip
        elif contract is not None:
            stage(upserts.stage_values(seen >> 64, line, line, key, None, contract))
        else:
            self.bare.setdefault(seen >> 64, []).append(line)

    def new_contract(self, line: int, key: str, contract: list[Any], tally: Tally) -> bool:
        """Refuse a contract the files held before; else remember it and say it is new."""
        external_id, product, plan = contract[0], contract[1] or "", contract[2] or ""
        if external_id:
            contract_key = hash(("id", external_id))
            field_name, shown = "contract.external_id", external_id
        else:
            contract_key = hash((key, product, plan))
            field_name, shown = "contract.product", product
        earlier_line = self.contracts.get(contract_key)
        if earlier_line is not None:
            self.reject(line, [FieldError(field_name, shown, "duplicate in file: the same "
                        f"contract as {self.spool.at(earlier_line)}")], tally)  # fmt: skip
            return False
        self.contracts[contract_key] = line
        return True

    def add_contract(self, line: int, row: list[str], stage: Callable[[tuple[Any, ...]], None],
                     tally: Tally) -> None:  # fmt: skip
        """Check a contracts file's row and stage its contract under its contact's item."""
        assert self.second is not None
        mapper = self.second
        checked = self.typed(mapper, line, row, tally)
        if checked is None:
            return
        key, _contact, contract = checked
        if contract is None:
            self.reject(line, [FieldError("", "", "holds no contract: every row of a contracts "
                                                  "file is one contract")], tally)  # fmt: skip
            return
        seen = self.contacts.get(hash(key))
        if seen is None and hash(key) in self.refused:
            self.reject(line, [FieldError(f"contact.{mapper.match}", key, "not imported: its "
                        f"contact has an error on {self.spool.at(self.refused[hash(key)])}")],
                        tally)  # fmt: skip
            return
        if not self.new_contract(line, key, contract, tally):
            return
        item = self.orphans.setdefault(hash(key), line) if seen is None else seen >> 64
        stage(upserts.stage_values(item, line, line, key, None, contract))


def _differences(first: list[Any], other: list[Any]) -> str:
    names = sorted(n for n, a, b in zip(CONTACT_ORDER, first, other, strict=True) if a != b)
    return f" ({', '.join(names)})" if names else ""


def _reason(error: FieldError, column: str) -> str:
    if column or not error.field:
        return error.reason
    return f"{error.field} {error.reason} (no column of the file fills it)"


def _refused(batch: upserts.Batch, reader: _Reader, spool: _Spool, tally: Tally) -> None:
    """Report the items the merge refused, each error on its line and column, and the other
    lines of those contacts as not imported."""
    refusals = batch.refusals()
    if not refusals:
        return
    items = {r.item for r in refusals}
    lines: dict[int, set[int]] = {item: set(reader.bare.get(item, ())) for item in items}
    for item, line, _n in batch.rows_of(items):
        lines[item].add(line)
    named: dict[int, set[int]] = {}
    for refusal in refusals:
        entity = "contact" if refusal.n is None else "contract"
        line = refusal.item if refusal.n is None else refusal.n
        name = f"{entity}.{refusal.field}"
        column = reader.column_of(line, name)
        error = FieldError(name, refusal.value or "", refusal.reason)
        spool.add(line, column, error.value, _reason(error, column))
        named.setdefault(refusal.item, set()).add(line)
    for item, all_lines in lines.items():
        first = min(named[item])
        for line in sorted(all_lines - named[item]):
            spool.add(line, "", "", f"not imported: its contact has an error on {spool.at(first)}")
        tally.rejected += len(all_lines | named[item])
