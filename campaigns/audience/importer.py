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
from campaigns.audience.mappings import CONTACT_ORDER, RowMapper, check_mapping
from campaigns.audience.records import FieldError
from campaigns.db import Database, utcnow
from campaigns.errors import CampaignsError, ValidationError
from campaigns.models import ImportJob, ImportMode, ImportStatus

log = logging.getLogger(__name__)
CHUNK_ROWS = 4000  # rows between progress figures and looks for a cancel
PROGRESS_SECONDS = 0.5
_MASK = (1 << 64) - 1

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

    def __init__(self) -> None:
        self.file: IO[str] = tempfile.TemporaryFile("w+", newline="", encoding="utf-8")
        self.out = csv.writer(self.file)

    def add(self, line: int, column: str, value: str, reason: str) -> None:
        self.out.writerow((line, column, value[:2000], reason))

    def rows(self) -> Iterator[dict[str, Any]]:
        self.file.seek(0)
        for line, column, value, reason in csv.reader(self.file):
            yield {"line": int(line), "column": column, "value": value, "reason": reason}

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
    fmt = imports.file_format(job)
    # A saved mapping may name a column this file lacks: refused before any row is read.
    mapping = check_mapping(fmt.header, job.mapping["columns"], job.mapping["match"])
    mapper = RowMapper(fmt.header, mapping)
    status = ImportStatus(job.status)
    figures = _Figures(db, job, files, status, on_progress)
    spool = _Spool()
    tally = Tally()
    session = db.sessions()
    try:
        batch = upserts.Batch(session, match=mapper.match, place="line", unique=True)
        reader = _Reader(mapper, spool)
        with batch.writer() as stage:
            for line, row in csvfiles.rows(Path(job.source_path), fmt):
                tally.rows += 1
                reader.add(line, row, stage, tally)
                if tally.rows % CHUNK_ROWS == 0:
                    figures.update(tally.rows)
                    if files.cancel_requested():
                        raise Cancelled("cancelled by the user")
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
    own line."""

    def __init__(self, mapper: RowMapper, spool: _Spool) -> None:
        self.mapper, self.spool = mapper, spool
        self.contacts: dict[int, int] = {}  # hash(key) → line << 64 | hash(values)
        self.contracts: dict[int, int] = {}  # hash(contract key) → line
        self.recent: dict[str, list[Any]] = {}  # the last rows' contacts, to name changes
        self.older: dict[str, list[Any]] = {}
        self.key = CONTACT_ORDER.index(mapper.match)
        self.bare: dict[int, list[int]] = {}  # item → its later lines that stage nothing

    def reject(self, line: int, errors: list[FieldError], tally: Tally) -> None:
        for error in errors:
            column = self.mapper.column_of(error.field)
            self.spool.add(line, column, error.value, _reason(error, column))
        tally.rejected += 1

    def add(self, line: int, row: list[str], stage: Callable[[tuple[Any, ...]], None],
            tally: Tally) -> None:  # fmt: skip
        mapper = self.mapper
        if len(row) != mapper.width:
            self.spool.add(line, "", "", f"has {len(row)} values where the header has "
                                         f"{mapper.width} columns")  # fmt: skip
            tally.rejected += 1
            return
        contact, contract, errors = mapper.typed(row)
        key: str = contact[self.key] or ""
        if not key and not any(e.field == f"contact.{mapper.match}" for e in errors):
            errors.append(FieldError(f"contact.{mapper.match}", "", "is empty; every row needs "
                                     "one to find its contact"))  # fmt: skip
        if errors:
            self.reject(line, errors, tally)
            return
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
        if contract is not None:
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
                            f"contract as line {earlier_line}")], tally)  # fmt: skip
                return
            self.contracts[contract_key] = line
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
        column = reader.mapper.column_of(name)
        error = FieldError(name, refusal.value or "", refusal.reason)
        spool.add(line, column, error.value, _reason(error, column))
        named.setdefault(refusal.item, set()).add(line)
    for item, all_lines in lines.items():
        first = min(named[item])
        for line in sorted(all_lines - named[item]):
            spool.add(line, "", "", f"not imported: its contact has an error on line {first}")
        tally.rejected += len(all_lines | named[item])
