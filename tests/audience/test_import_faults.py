"""A real import worker SIGKILLed mid-file: nothing of the import is written; a retry imports
the file once (RELIABILITY.md, the import's "never a half-written import")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis
from sqlalchemy import func, select

from campaigns.audience import imports
from campaigns.db import Database
from campaigns.embedded.services import RedisServer
from campaigns.models import Contact, Contract, ImportStatus
from tests.audience.importfiles import new_job, write
from tests.conftest import ROOT, kill, start_worker, stop, wait_until

ROWS = 60_000


def _enqueue(env: dict[str, str], job_id: int) -> None:
    """Send the work order as the web would, from a process of its own."""
    code = f"from workers.actors import run_import; run_import.send({job_id})"
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)


def _counts(db: Database) -> tuple[int, int]:
    with db.unit_of_work() as s:
        return (s.scalar(select(func.count(Contact.id))) or 0,
                s.scalar(select(func.count(Contract.id))) or 0)  # fmt: skip


def test_a_worker_killed_mid_import_leaves_nothing_and_a_retry_imports_once(
    db: Database, env: dict[str, str], redis_server: RedisServer, tmp_path: Path
) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    rows = "".join(f"c{i}@example.com,C{i},Support,2026-01-01,2027-01-01\n" for i in range(ROWS))
    source = write(tmp_path / "big.csv", "Email,First name,Product,Start,End\n" + rows, "utf-8")
    data_dir = Path(env["CAMPAIGNS_DATA_DIR"])
    job_id = new_job(db, data_dir, source, dry_run=False)
    with db.unit_of_work() as s:
        files = imports.JobFiles(imports.get_job(s, job_id).source_path)

    first = start_worker(env, tmp_path / "worker-1.log", threads=1)
    try:
        _enqueue(env, job_id)
        wait_until(lambda: files.read_progress().get("processed", 0) >= 8000,
                   timeout=60, what="the import under way")  # fmt: skip
    finally:
        kill(first)
    assert _counts(db) == (0, 0)  # the transaction died with the worker

    def abandoned() -> bool:  # the forked child lets go of the job's lock as it dies
        with db.unit_of_work() as s:
            return imports.abandoned(imports.get_job(s, job_id))

    wait_until(abandoned, timeout=15, what="the killed worker's lock to be released")
    with db.unit_of_work() as s:
        assert imports.get_job(s, job_id).status == ImportStatus.IMPORTING
        imports.retry(s, job_id)

    second = start_worker(env, tmp_path / "worker-2.log", threads=2)
    try:
        _enqueue(env, job_id)
        _enqueue(env, job_id)  # twice: the second finds it held, or done

        def done() -> bool:
            with db.unit_of_work() as s:
                return imports.get_job(s, job_id).status == ImportStatus.DONE

        wait_until(done, timeout=180, what="the retried import to finish; log:\n"
                   + (tmp_path / "worker-2.log").read_text()[-3000:])  # fmt: skip
    finally:
        stop(second)
    assert _counts(db) == (ROWS, ROWS)
    with db.unit_of_work() as s:
        job = imports.get_job(s, job_id)
        assert (job.added, job.rejected, job.total_rows) == (ROWS, 0, ROWS)
