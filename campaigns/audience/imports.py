"""CSV import jobs: upload, mapping, the user's choice, cancel and retry, progress, row errors.

A job goes `pending → checking → checked → importing → done | failed | cancelled`. The
reading and writing itself is `importer.run`, called by a worker (or the CLI) with the job id.

Besides its database row a job has files next to its upload in the data directory, which the
web and the workers share (the worker reads the upload from there):
`<upload>.lock` is locked (flock) by the process working on the job, so the lock is free the
moment that process dies — a job in `checking`/`importing` whose lock is free was abandoned
and can be retried; `<upload>.progress` holds the live figures (SQLite has one writer, and the
import's transaction is it, so figures cannot be committed to the database while it runs);
`<upload>.cancel` asks the running import to stop and roll back; `<upload>.contracts.csv` is
the job's second file, when its contracts come in a file of their own.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, func, insert, select, tuple_
from sqlalchemy.orm import Session

from campaigns.audience import csvfiles, mappings
from campaigns.db import require, utcnow
from campaigns.errors import InvalidTransition, ValidationError
from campaigns.models import ImportJob, ImportMode, ImportRowError, ImportStatus

S = ImportStatus
TRANSITIONS: dict[ImportStatus, set[ImportStatus]] = {
    S.PENDING: {S.CHECKING, S.IMPORTING, S.CANCELLED, S.FAILED},
    S.CHECKING: {S.CHECKING, S.CHECKED, S.FAILED, S.CANCELLED},  # CHECKING again: a retry
    S.CHECKED: {S.PENDING, S.CHECKING, S.IMPORTING, S.CANCELLED},
    S.IMPORTING: {S.IMPORTING, S.DONE, S.FAILED, S.CANCELLED},
    S.DONE: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
}
FINAL = {S.DONE, S.FAILED, S.CANCELLED}
WORKING = {S.CHECKING, S.IMPORTING}
CHOICES = ("nothing", "valid_rows", "all")
SAMPLE_ROWS = 5


def move(job: ImportJob, status: ImportStatus) -> None:
    """Change a job's status, or raise InvalidTransition."""
    if status not in TRANSITIONS[ImportStatus(job.status)]:
        raise InvalidTransition(f"an import that is {job.status} cannot become {status}")
    job.status = status


class JobFiles:
    """The files of one job in the data directory: the upload and its lock, figures, cancel."""

    def __init__(self, source: Path | str) -> None:
        self.source = Path(source)
        self.lock = self.source.with_name(self.source.name + ".lock")
        self.progress = self.source.with_name(self.source.name + ".progress")
        self.cancel = self.source.with_name(self.source.name + ".cancel")
        self.contracts = self.source.with_name(self.source.stem + ".contracts.csv")

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """Lock the job for this process; yield False if another process holds it."""
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        with self.lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def running(self) -> bool:
        """Whether a live process works on the job right now."""
        with self.hold() as free:
            return not free

    def write_progress(self, figures: dict[str, Any]) -> None:
        partial = self.progress.with_name(self.progress.name + ".tmp")
        partial.write_text(json.dumps(figures))
        os.replace(partial, self.progress)  # readers never see half a file

    def read_progress(self) -> dict[str, Any]:
        try:
            found: dict[str, Any] = json.loads(self.progress.read_text())
        except (OSError, ValueError):
            return {}
        return found

    def request_cancel(self) -> None:
        self.cancel.touch()

    def cancel_requested(self) -> bool:
        return self.cancel.exists()

    def remove(self, *, upload: bool) -> None:
        """Remove the side files, and the upload itself once the job has ended."""
        # The lock file goes too once the job has ended: whoever still opens it finds the
        # job final and does nothing.
        uploads = [self.source, self.contracts, self.lock] if upload else []
        for path in (self.progress, self.cancel, *uploads):
            path.unlink(missing_ok=True)


def imports_dir(data_dir: Path) -> Path:
    return data_dir / "imports"


def store_upload(data_dir: Path, stream: IO[bytes], *, contracts_of: Path | None = None) -> Path:
    """Copy an uploaded file into the data directory under a name of our own making (a second
    file of contracts beside the upload `contracts_of`)."""
    folder = imports_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.csv"
    if contracts_of is not None:
        path = JobFiles(contracts_of).contracts
    with path.open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return path


def create_job(session: Session, path: Path, *, filename: str, user_id: int | None,
               contracts_filename: str = "") -> ImportJob:  # fmt: skip
    """Register a stored upload as a job; an unreadable file is refused (and removed).

    `contracts_filename` names a second file of contracts, stored with `store_upload(...,
    contracts_of=path)`.
    """
    files = JobFiles(path)
    second: csvfiles.CsvFormat | None = None
    try:
        fmt = csvfiles.inspect(path)
        if contracts_filename:
            try:
                second = csvfiles.inspect(files.contracts)
            except ValidationError as exc:
                raise ValidationError(f"the contracts file {contracts_filename}: {exc}",
                                      field="contracts_file") from None  # fmt: skip
    except ValidationError:
        files.remove(upload=True)
        raise
    job = ImportJob(
        user_id=user_id, filename=Path(filename or "contacts.csv").name[:255],
        source_path=str(path), status=ImportStatus.PENDING, mode=ImportMode.ALL_OR_NOTHING,
        dry_run=True, encoding=fmt.encoding, delimiter=fmt.delimiter, mapping={},
        total_rows=fmt.approx_rows + (second.approx_rows if second else 0),
    )  # fmt: skip
    if second is not None:
        job.contracts_filename = Path(contracts_filename).name[:255]
        job.contracts_encoding, job.contracts_delimiter = second.encoding, second.delimiter
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> ImportJob:
    return require(session, ImportJob, job_id, what="import")


def recent_jobs(session: Session, *, limit: int = 10) -> list[ImportJob]:
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


@dataclass(frozen=True, slots=True)
class Preview:
    """What the mapping step shows: the header, the first rows, the detected format."""

    header: tuple[str, ...]
    sample: list[list[str]]
    encoding: str
    delimiter: str


def preview(job: ImportJob, *, contracts: bool = False) -> Preview:
    """Read the header and the first rows of a job's file (or of its contracts file)."""
    path, fmt = file_format(job, contracts=contracts)
    sample = []
    for _line, row in csvfiles.rows(path, fmt):
        sample.append(row)
        if len(sample) == SAMPLE_ROWS:
            break
    return Preview(fmt.header, sample, fmt.encoding, fmt.delimiter)


def file_format(job: ImportJob, *, contracts: bool = False) -> tuple[Path, csvfiles.CsvFormat]:
    """The job's file (or its contracts file) and its format as detected at upload (the header
    read again: it is one line)."""
    path = Path(job.source_path)
    encoding, delimiter = job.encoding, job.delimiter
    if contracts:
        path = JobFiles(path).contracts
        encoding, delimiter = job.contracts_encoding, job.contracts_delimiter
    if not path.exists():
        raise ValidationError("the uploaded file is no longer there; upload it again", field="file")
    header = csvfiles.header(path, encoding, delimiter)
    return path, csvfiles.CsvFormat(encoding, delimiter, header, job.total_rows)


def configure(
    session: Session,
    job_id: int,
    columns: dict[str, str],
    *,
    match: str,
    save_as: str = "",
    dry_run: bool = True,
    mode: ImportMode = ImportMode.ALL_OR_NOTHING,
    contracts_columns: dict[str, str] | None = None,
) -> ImportJob:
    """Set the job's mapping (optionally saved under a name); the job then awaits a worker.

    `contracts_columns` maps the contracts file's columns, when the job has one. The admin
    always checks first (`dry_run`) and lets the user choose the mode after the report; the
    CLI may import at once in the mode given on its command line.
    """
    job = get_job(session, job_id)
    mapping = mappings.check_mapping(file_format(job)[1].header, columns, match)
    if job.contracts_filename:
        header = file_format(job, contracts=True)[1].header
        mapping["contracts_columns"] = mappings.check_contracts_mapping(
            header, contracts_columns or {}, match, filename=job.contracts_filename
        )
    if job.status != ImportStatus.PENDING:
        move(job, ImportStatus.PENDING)
    job.mapping = mapping
    job.dry_run = dry_run
    job.mode = mode
    job.added = job.changed = job.rejected = job.processed_rows = 0
    job.message = ""
    if save_as.strip():
        mappings.save_mapping(session, save_as, mapping)
    return job


def choose(session: Session, job_id: int, choice: str) -> ImportJob:
    """Act on the user's choice after the check: import nothing, the valid rows, or all."""
    job = get_job(session, job_id)
    if choice not in CHOICES:
        raise ValidationError(f"choose one of: {', '.join(CHOICES)}", field="choice")
    if job.status != ImportStatus.CHECKED:
        raise InvalidTransition(f"an import that is {job.status} awaits no choice")
    if choice == "nothing":
        move(job, ImportStatus.CANCELLED)
        job.message = "Nothing was imported, as you chose."
        job.finished_at = utcnow()
        JobFiles(job.source_path).remove(upload=True)
        return job
    if choice == "all" and job.rejected:
        raise ValidationError(
            f"{job.rejected} rows have errors: import the valid rows, or fix the file and "
            "upload it again",
            field="choice",
        )
    job.mode = ImportMode.VALID_ROWS if choice == "valid_rows" else ImportMode.ALL_OR_NOTHING
    job.dry_run = False
    return job


def cancel(session: Session, job_id: int) -> ImportJob:
    """Stop a job: at once if no process works on it, else at its next chunk (rolled back)."""
    job = get_job(session, job_id)
    if job.status in FINAL:
        raise InvalidTransition(f"an import that is {job.status} cannot be cancelled")
    files = JobFiles(job.source_path)
    if files.running():
        files.request_cancel()
        return job
    move(job, ImportStatus.CANCELLED)
    job.message = "Cancelled; nothing was imported."
    job.finished_at = utcnow()
    files.remove(upload=True)
    return job


def awaits_worker(job: ImportJob) -> bool:
    """Whether the job has work for a worker (it may or may not be running right now)."""
    if not job.mapping or job.status in FINAL:
        return False
    if job.status == ImportStatus.CHECKED:
        return not job.dry_run
    return True


def abandoned(job: ImportJob) -> bool:
    """A job with work to do that no live process holds (its worker died, or lost the order)."""
    return awaits_worker(job) and not JobFiles(job.source_path).running()


def retry(session: Session, job_id: int) -> ImportJob:
    """Allow a job whose worker died to be handed to a worker again (the caller enqueues it)."""
    job = get_job(session, job_id)
    if not awaits_worker(job):
        raise InvalidTransition(f"an import that is {job.status} has nothing to retry")
    if JobFiles(job.source_path).running():
        raise ValidationError("the import is still running; wait for it or cancel it")
    return job


@dataclass(frozen=True, slots=True)
class Progress:
    """A job's live figures, as the admin's progress script reads them."""

    status: str
    dry_run: bool
    processed: int
    total: int
    rate_per_second: float
    eta_seconds: float | None
    added: int
    changed: int
    rejected: int
    message: str
    running: bool
    abandoned: bool
    phase: str = ""  # while working: "reading" the file, or "writing" what was read

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def progress(session: Session, job_id: int, *, now: datetime) -> Progress:
    """The job's figures: from its row, or from its progress file while a process works on it."""
    job = get_job(session, job_id)
    processed, total = job.processed_rows, job.total_rows
    running = False
    rate = 0.0
    phase = ""
    if job.status in WORKING:
        files = JobFiles(job.source_path)
        running = files.running()
        live = files.read_progress()
        if live.get("status") == job.status:
            processed = max(processed, int(live.get("processed", 0)))
            total = max(total, int(live.get("total", 0)))
            phase = str(live.get("phase", ""))
        if job.started_at is not None and processed:
            rate = processed / max((now - job.started_at).total_seconds(), 0.001)
    remaining = max(total - processed, 0)
    return Progress(
        status=job.status, dry_run=job.dry_run, processed=processed, total=total,
        rate_per_second=round(rate, 1),
        eta_seconds=round(remaining / rate, 1) if rate and job.status in WORKING else None,
        added=job.added, changed=job.changed, rejected=job.rejected, message=job.message,
        running=running, abandoned=job.status in WORKING and not running, phase=phase,
    )  # fmt: skip


def row_errors(session: Session, job_id: int, *, limit: int | None = None) -> list[ImportRowError]:
    """The job's row errors in file order (the first file's, then the contracts file's)."""
    e = ImportRowError
    query = select(e).where(e.job_id == job_id).order_by(e.file, e.line, e.id).limit(limit)
    return list(session.scalars(query))


def replace_row_errors(session: Session, job_id: int, rows: Iterator[dict[str, Any]]) -> None:
    """Store a pass's row errors in place of the previous pass's, in bulk."""
    session.execute(delete(ImportRowError).where(ImportRowError.job_id == job_id))
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append({"job_id": job_id, **row})
        if len(batch) == 5000:
            session.execute(insert(ImportRowError), batch)
            batch = []
    if batch:
        session.execute(insert(ImportRowError), batch)


ERROR_HEADER = ("line", "column", "value", "reason")


def file_name(job: ImportJob, error: ImportRowError) -> str:
    """The name of the file a row error is in."""
    return job.contracts_filename if error.file == 2 else job.filename


def errors_csv(session: Session, job_id: int) -> Iterator[str]:
    """The full row-error report as CSV text, a few hundred rows at a time; a job with a
    contracts file has a first column naming each row's file.

    Cells that a spreadsheet would run as a formula are neutralised (RELIABILITY.md 29).
    """
    job = get_job(session, job_id)
    two = bool(job.contracts_filename)
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(("file", *ERROR_HEADER) if two else ERROR_HEADER)
    e = ImportRowError
    after = (0, 0, 0)
    while True:
        query = (select(e).where(e.job_id == job_id, tuple_(e.file, e.line, e.id) > after)
                 .order_by(e.file, e.line, e.id).limit(500))  # fmt: skip
        batch = list(session.scalars(query))
        for error in batch:
            cells = [csvfiles.neutral(v) for v in (error.column, error.value, error.reason)]
            name = [csvfiles.neutral(file_name(job, error))] if two else []
            out.writerow([*name, error.line, *cells])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(batch) < 500:
            return
        after = (batch[-1].file, batch[-1].line, batch[-1].id)


def write_errors_file(session: Session, job_id: int, path: Path) -> int:
    """Write the row-error report to a file; return how many errors it holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        for text in errors_csv(session, job_id):
            out.write(text)
    count = session.scalar(
        select(func.count()).select_from(ImportRowError).where(ImportRowError.job_id == job_id)
    )
    return count or 0
