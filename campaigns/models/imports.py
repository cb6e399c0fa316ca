"""CSV imports of contacts and contracts: the job, its row errors, saved column mappings."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaigns.db import Base, created_at, intpk, json_dict


class ImportStatus(StrEnum):
    PENDING = "pending"  # uploaded, waiting for a worker
    CHECKING = "checking"  # a worker is reading and validating the file
    CHECKED = "checked"  # dry run finished: counts and errors are known
    IMPORTING = "importing"  # writing, in one transaction
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImportMode(StrEnum):
    ALL_OR_NOTHING = "all_or_nothing"  # any bad row → nothing is imported
    VALID_ROWS = "valid_rows"  # bad rows are reported and skipped


class ImportJob(Base):
    __tablename__ = "import_jobs"

    id: Mapped[intpk]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    # Where the uploaded file is kept until the job ends (under the data directory).
    source_path: Mapped[str] = mapped_column(Text)
    status: Mapped[ImportStatus] = mapped_column(String(20), default=ImportStatus.PENDING)
    mode: Mapped[ImportMode] = mapped_column(String(20), default=ImportMode.ALL_OR_NOTHING)
    dry_run: Mapped[bool] = mapped_column(default=True)
    encoding: Mapped[str] = mapped_column(String(20), default="")
    delimiter: Mapped[str] = mapped_column(String(1), default="")
    # A second file of contracts, one per row, each naming its contact by the match key ("" when
    # the contracts, if any, are in the first file). It is kept beside the first file.
    contracts_filename: Mapped[str] = mapped_column(String(255), default="", server_default="")
    contracts_encoding: Mapped[str] = mapped_column(String(20), default="", server_default="")
    contracts_delimiter: Mapped[str] = mapped_column(String(1), default="", server_default="")
    # CSV column → product field (contact.email, contract.ends_on, attribute:tier:int …), and
    # the second file's under "contracts_columns"
    mapping: Mapped[json_dict]
    total_rows: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    added: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[created_at]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ImportRowError(Base):
    """One refused value of an import: which line, which column, what it held, and why."""

    __tablename__ = "import_row_errors"
    # The report reads a job's errors a page at a time in file and line order.
    __table_args__ = (Index("ix_import_row_errors_job_line", "job_id", "file", "line", "id"),)

    id: Mapped[intpk]
    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"))
    file: Mapped[int] = mapped_column(default=1, server_default="1")  # 1 or 2 (the contracts)
    line: Mapped[int]
    column: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text)


class ImportMapping(Base):
    """A column mapping saved under a name, to reuse for the next export of the same CRM."""

    __tablename__ = "import_mappings"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200), unique=True)
    mapping: Mapped[json_dict]
    created_at: Mapped[created_at]
