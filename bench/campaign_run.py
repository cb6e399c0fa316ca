"""Send one scheduled campaign with the product's own processes and watch the ledger."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select

from bench import BenchError
from bench.cpu import machine_busy_seconds, tree_seconds
from campaigns.models import OPEN_STATES, Campaign, CampaignStatus, Delivery, DeliveryState
from campaigns.models import WorkerHeartbeat as Heartbeat

REPO = Path(__file__).resolve().parent.parent
BOOT_SECONDS = 60.0  # for every worker process to beat once
STALL_SECONDS = 180.0  # no row settled for this long: something is stuck
POLL_SECONDS = 0.5
STOP_SECONDS = 20.0
_REENQUEUED = re.compile(r"re-enqueued (\d+) overdue row")


@dataclass(frozen=True)
class Layout:
    """How many Dramatiq worker processes, and threads in each."""

    processes: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> Layout | None:
        """Read `PxT` (e.g. `2x4`); None for an empty text."""
        if not text:
            return None
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text)
        layout = cls(int(match.group(1)), int(match.group(2))) if match else None
        if layout is None or min(layout.processes, layout.threads) < 1:
            raise BenchError(f"a worker layout is PROCESSESxTHREADS, e.g. 2x4, not {text!r}")
        return layout

    def __str__(self) -> str:
        return f"{self.processes}x{self.threads}"


@dataclass(frozen=True)
class CampaignRun:
    """What one campaign's send took: time, and CPU of the workers and of the rest."""

    letters: int
    layout: Layout
    seconds: float  # the campaign's started_at to the last ledger row's sent_at
    wall: float  # scheduler start to completion seen, the span of the CPU figures
    worker_cpu: float
    service_cpu: float
    machine_busy: float
    reenqueued: int

    @property
    def rate(self) -> float:
        return self.letters / self.seconds

    @property
    def worker_cpu_ms_per_letter(self) -> float:
        return 1000 * self.worker_cpu / self.letters

    @property
    def worker_cores(self) -> float:
        return self.worker_cpu / self.wall

    @property
    def service_cores(self) -> float:
        return self.service_cpu / self.wall

    @property
    def machine_cores(self) -> float:
        return self.machine_busy / self.wall


def run_campaign(
    database_url: str,
    campaign_id: int,
    letters: int,
    *,
    layout: Layout,
    env: dict[str, str],
    directory: Path,
    services: list[int],
) -> CampaignRun:
    """Start the workers, then the scheduler, and wait until the campaign has finished.

    CPU is counted from the launch seen in the database to the campaign's end, for the
    workers' process tree and for the scheduler with the `services` (database, Redis) pids.
    """
    engine = create_engine(database_url)  # not make_engine: its BEGIN IMMEDIATE would lock
    started: list[subprocess.Popen[bytes]] = []
    try:
        command = ["dramatiq", "workers.actors", "--processes", str(layout.processes),
                   "--threads", str(layout.threads)]  # fmt: skip
        workers = _start(command, env, directory / "workers.log")
        started.append(workers)
        _wait_for_boot(engine, layout.processes, workers, directory)
        started.append(_start(["campaigns.cli", "scheduler"], env, directory / "scheduler.log"))
        _wait(engine, campaign_id, started, directory, timeout=BOOT_SECONDS,
              until=lambda status: status != CampaignStatus.SCHEDULED)  # fmt: skip
        # From the launch on: the scheduler's own start-up is not part of the send.
        roots = [process.pid for process in started]
        worker_start, service_start = tree_seconds(roots[:1]), tree_seconds(roots[1:] + services)
        busy_start, wall_start = machine_busy_seconds(), time.monotonic()
        counts = _wait(engine, campaign_id, started, directory, timeout=600 + letters / 10,
                       until=lambda status: status not in (CampaignStatus.SCHEDULED,
                                                           CampaignStatus.RUNNING))  # fmt: skip
        wall = time.monotonic() - wall_start
        worker_cpu = tree_seconds(roots[:1]) - worker_start
        service_cpu = tree_seconds(roots[1:] + services) - service_start
        machine_busy = machine_busy_seconds() - busy_start
        _check(engine, campaign_id, counts, letters)
        seconds = _launch_to_last_sent(engine, campaign_id)
    finally:
        for process in reversed(started):
            _stop(process)
        engine.dispose()
    reenqueued = sum(map(int, _REENQUEUED.findall(_read(directory / "scheduler.log"))))
    return CampaignRun(letters, layout, seconds, wall, worker_cpu, service_cpu, machine_busy,
                       reenqueued)  # fmt: skip


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # A process group of its own: Dramatiq forks worker processes, and all go at the end.
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process group: politely, then for sure."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # forked children outliving their parent
    except ProcessLookupError:
        pass
    process.wait()


def _wait_for_boot(
    engine: Engine, processes: int, workers: subprocess.Popen[bytes], directory: Path
) -> None:
    deadline = time.monotonic() + BOOT_SECONDS
    while time.monotonic() < deadline:
        if workers.poll() is not None:
            raise BenchError(f"the workers exited: {_tail(directory / 'workers.log')}")
        with engine.connect() as conn:
            if (conn.scalar(select(func.count()).select_from(Heartbeat)) or 0) >= processes:
                return
        time.sleep(POLL_SECONDS)
    raise BenchError(f"the workers did not start in {BOOT_SECONDS:.0f} s: "
                     f"{_tail(directory / 'workers.log')}")  # fmt: skip


def _wait(
    engine: Engine,
    campaign_id: int,
    started: list[subprocess.Popen[bytes]],
    directory: Path,
    *,
    until: Callable[[str | None], bool],
    timeout: float,
) -> dict[str, int]:
    """Poll the campaign and its ledger until `until(status)`; return the ledger's counts."""
    deadline = time.monotonic() + timeout
    last_change, seen = time.monotonic(), ("", -1)
    while True:
        with engine.connect() as conn:
            status = conn.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
            rows = conn.execute(select(Delivery.state, func.count())
                                .where(Delivery.campaign_id == campaign_id)
                                .group_by(Delivery.state))  # fmt: skip
            counts = {str(state): int(n) for state, n in rows}
        if until(status):
            return counts
        now = time.monotonic()
        settled = sum(n for state, n in counts.items() if state not in OPEN_STATES)
        if (str(status), settled) != seen:
            last_change, seen = now, (str(status), settled)
        for process, log in zip(started, ("workers.log", "scheduler.log"), strict=False):
            if process.poll() is not None:
                raise BenchError(f"{log[:-4]} exited: {_tail(directory / log)}")
        if now - last_change > STALL_SECONDS or now > deadline:
            raise BenchError(f"the campaign is stuck ({status}, {counts}): "
                             f"{_tail(directory / 'workers.log')}")  # fmt: skip
        time.sleep(POLL_SECONDS)


def _check(engine: Engine, campaign_id: int, counts: dict[str, int], letters: int) -> None:
    if counts.get(DeliveryState.SENT, 0) == letters == sum(counts.values()):
        return
    with engine.connect() as conn:
        reason = conn.scalar(
            select(Delivery.reason)
            .where(Delivery.campaign_id == campaign_id, Delivery.state != DeliveryState.SENT)
            .limit(1)
        )
    raise BenchError(f"expected {letters} letters sent, the ledger says {counts}; "
                     f"for example: {reason!r}")  # fmt: skip


def _launch_to_last_sent(engine: Engine, campaign_id: int) -> float:
    with engine.connect() as conn:
        started = conn.scalar(select(Campaign.started_at).where(Campaign.id == campaign_id))
        last = conn.scalar(
            select(func.max(Delivery.sent_at)).where(Delivery.campaign_id == campaign_id)
        )
    if started is None or last is None:
        raise BenchError("the campaign has no start or no letter was sent")
    return max((last - started).total_seconds(), 1e-3)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(_read(path).splitlines()[-lines:]) or "(no output)"
