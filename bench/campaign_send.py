"""Letters per second for a whole campaign: real scheduler and Dramatiq workers to smtp-sink.

`campaign_send` runs on SQLite, `campaign_send_postgresql` on a throwaway PostgreSQL. Set
BENCH_CAMPAIGN_LETTERS (default 100000) for a smaller run and BENCH_CAMPAIGN_LAYOUT
(processes x threads, default 3x1) to try another worker layout.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench import BenchError, Result
from bench.campaign_data import insert_contacts, scheduled_campaign
from bench.campaign_run import CampaignRun, Layout, run_campaign
from bench.postfix import PostfixSink, require_tools, source_rate
from campaigns import schema
from campaigns.db import Database
from campaigns.embedded.services import PostgresServer, RedisServer
from campaigns.errors import CampaignsError

# A quarter of what Postfix's own client pushes into the same sink over 10 sessions: with
# smtp-source near 10,000 letters/s on a small machine, 100k letters in under a minute.
GOAL = 0.25
DEFAULT_LETTERS = 100_000
DEFAULT_LAYOUT = Layout(processes=3, threads=1)  # the best measured here (README)
REFERENCE_SESSIONS = 10
REFERENCE_SIZE = 10240


def measure() -> Result:
    """Send a campaign to N contacts from a SQLite database; compare with smtp-source."""
    return measure_backend("sqlite")


def measure_postgresql() -> Result:
    """Send a campaign to N contacts from a PostgreSQL database; compare with smtp-source."""
    return measure_backend("postgresql")


def measure_backend(backend: str) -> Result:
    """Run the reference, the product's campaign, and the reference again, in one sink."""
    require_tools()
    name = "campaign_send" if backend == "sqlite" else f"campaign_send_{backend}"
    letters = _env_int("BENCH_CAMPAIGN_LETTERS", DEFAULT_LETTERS)
    layout = Layout.parse(os.environ.get("BENCH_CAMPAIGN_LAYOUT", "")) or DEFAULT_LAYOUT
    directory = Path(tempfile.mkdtemp(prefix="bench-campaign-send-"))
    try:
        with ExitStack() as stack:
            sink = stack.enter_context(PostfixSink(directory))
            before = source_rate(sink, letters, sessions=REFERENCE_SESSIONS, size=REFERENCE_SIZE)
            database_url, database_pids = stack.enter_context(_database(backend, directory))
            redis = RedisServer(directory=directory / "redis").start()
            stack.callback(redis.stop)
            schema.upgrade(database_url)
            database = Database(database_url)
            stack.callback(database.dispose)
            insert_contacts(database, letters)
            campaign_id = scheduled_campaign(database)
            env = dict(
                os.environ, DATABASE_URL=database_url, REDIS_URL=redis.url, SMTP_URL=sink.url,
                SECRET_KEY=secrets.token_urlsafe(24), CAMPAIGNS_DATA_DIR=str(directory / "data"),
            )  # fmt: skip
            service_pids = [*database_pids, *([redis.process.pid] if redis.process else [])]
            run = run_campaign(database_url, campaign_id, letters, layout=layout, env=env,
                               directory=directory, services=service_pids)  # fmt: skip
            sink.expect(2 * letters)
            after = source_rate(sink, letters, sessions=REFERENCE_SESSIONS, size=REFERENCE_SIZE)
    except CampaignsError as exc:
        raise BenchError(f"a local service or the product's setup failed: {exc}") from exc
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    reference = (before + after) / 2
    _report(name, backend, run, before, after)
    _budget(name, run, GOAL * reference)
    return Result(name, run.rate, "letters/s", reference, GOAL)


def _report(name: str, backend: str, run: CampaignRun, before: float, after: float) -> None:
    print(
        f"{name}: {backend}, {run.letters} letters (~10 KB HTML + text), workers "
        f"{run.layout}, default BATCH_SIZE: launch to last sent {run.seconds:.1f} s; "
        f"smtp-source ({REFERENCE_SESSIONS} sessions, {REFERENCE_SIZE // 1024} KB) "
        f"{before:.0f} before, {after:.0f} after letters/s",
        file=sys.stderr,
    )
    print(
        f"{name}: workers {run.worker_cpu_ms_per_letter:.2f} CPU ms/letter, using "
        f"{run.worker_cores:.2f} cores of {os.cpu_count()} over the send; scheduler, Redis "
        f"and database server {run.service_cores:.2f} cores; whole machine {run.machine_cores:.2f}"
        f" cores busy; {run.reenqueued} row(s) re-enqueued by the reconciler",
        file=sys.stderr,
    )


@contextmanager
def _database(backend: str, directory: Path) -> Iterator[tuple[str, list[int]]]:
    """Yield a fresh database's URL and the pids of its server (none for SQLite)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'campaigns.db'}", []
        return
    if backend != "postgresql":
        raise BenchError(f"unknown database backend {backend!r}")
    server = PostgresServer()
    try:
        server.start()
        url = server.create_database("bench")
        pid_file = server.directory / "data" / "postmaster.pid"
        yield url, [int(pid_file.read_text().split()[0])]
    finally:
        server.stop()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise BenchError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


def _budget(name: str, run: CampaignRun, goal_rate: float) -> None:
    """Print the CPU a letter's worker may take at the goal's rate, against what it took.

    At the goal the machine's cores are shared by the workers and by what each letter costs
    elsewhere (the sink, the scheduler, Redis, the database server), as measured in this run.
    """
    cores = os.cpu_count() or 1
    elsewhere_ms = (run.machine_cores - run.worker_cores) * run.seconds * 1000 / run.letters
    budget_ms = cores * 1000 / goal_rate - elsewhere_ms
    print(
        f"{name}: at the goal ({goal_rate:.0f} letters/s on {cores} cores, {elsewhere_ms:.2f} CPU "
        f"ms a letter outside the workers) the workers may spend {budget_ms:.2f} CPU ms a letter; "
        f"they spent {run.worker_cpu_ms_per_letter:.2f}",
        file=sys.stderr,
    )
