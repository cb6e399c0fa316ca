"""Hits per second on the open pixel and tracked links through `campaigns web` (waitress).

`tracking_hits` runs on SQLite, `tracking_hits_postgresql` on a throwaway PostgreSQL. wrk
(Debian package `wrk`) sends pixel and click hits (half each) for 1,000 delivered letters
to the production web server, and the same load to an empty route of the same server
(`/healthz`) in the same run; the figure is hits/s against that route's requests/s. After
each round, every hit answered must be in the events table: no more, no fewer.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench import BenchError, Result
from bench.campaign_data import insert_contacts
from bench.campaign_send import _database
from bench.cpu import tree_seconds
from campaigns import schema
from campaigns.db import Database, utcnow
from campaigns.delivery.tokens import Tokens
from campaigns.embedded.services import free_port
from campaigns.letters.authoring import add_version, create_letter
from campaigns.models import Contact, Delivery, DeliveryState, Event, LetterCategory, LetterKind

# A hit may cost at most a third more than a request that does nothing: then the web
# server's own work (HTTP, Flask, the session check), not recording, is what limits hits.
GOAL = 0.7
LETTERS = 1000
SECONDS = 5  # tracked hits per round; then 1 s of favicons, so no hit is cut off
ROUNDS = 2  # reference and hits alternate; the best round of each counts
CONNECTIONS = 16
BOOT_SECONDS = 30.0
REPO = Path(__file__).resolve().parent.parent
BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")  # fmt: skip

# Requests cycle through the paths for SECONDS, then ask for the favicon only (the requests
# in flight when wrk stops are never hits). Each thread counts the hits (or, for the
# reference, the empty route's answers) answered.
SCRIPT = """
paths = {%(paths)s}
tracked_seconds = %(seconds)d
threads = {}
function setup(thread) table.insert(threads, thread) end
local function uptime()
  local f = io.open("/proc/uptime"); local t = f:read("*n"); f:close(); return t
end
function init(args)
  i = 0; hits = 0; bad = 0; deadline = uptime() + tracked_seconds; tracking = true
end
function request()
  if tracking and uptime() >= deadline then tracking = false end
  if tracking then
    i = i + 1
    return wrk.format("GET", paths[(i %% #paths) + 1], {["User-Agent"] = "%(agent)s"})
  end
  return wrk.format("GET", "/favicon.ico")
end
function response(status, headers, body)
  local kind = headers["Content-Type"] or ""
  if status == 302 or (status == 200 and (kind == "image/gif" or kind == "text/plain")) then
    hits = hits + 1
  elseif status ~= 200 then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local total_hits, total_bad = 0, 0
  for _, t in ipairs(threads) do
    total_hits = total_hits + t:get("hits"); total_bad = total_bad + t:get("bad")
  end
  io.write(string.format("HITS %%d BAD %%d P50 %%.1f P99 %%.1f ERRORS %%d\\n",
    total_hits, total_bad, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class Round:
    hits: int
    rate: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float  # per request


def measure() -> Result:
    """Pixel and click hits on a SQLite database, against the server's empty route."""
    return measure_backend("sqlite")


def measure_postgresql() -> Result:
    """Pixel and click hits on a PostgreSQL database, against the server's empty route."""
    return measure_backend("postgresql")


def measure_backend(backend: str) -> Result:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: apt-get install -y wrk")
    name = "tracking_hits" if backend == "sqlite" else f"tracking_hits_{backend}"
    directory = Path(tempfile.mkdtemp(prefix="bench-tracking-hits-"))
    try:
        with _database(backend, directory) as (database_url, _pids):
            schema.upgrade(database_url)
            secret = "bench-" + os.urandom(16).hex()
            paths = _letters(database_url, Tokens(secret))
            env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY=secret,
                       CAMPAIGNS_DATA_DIR=str(directory / "data"))  # fmt: skip
            references, products = [], []
            with _server(env, directory) as (url, pid):
                database = Database(database_url)
                try:
                    recorded = 0
                    for _ in range(ROUNDS):
                        references.append(_round(url, pid, ["/healthz"], directory))
                        product = _round(url, pid, paths, directory)
                        products.append(product)
                        recorded = _check(database, recorded, product.hits)
                finally:
                    database.dispose()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    reference = max(references, key=lambda r: r.rate)
    product = max(products, key=lambda r: r.rate)
    print(
        f"{name}: {backend}, {LETTERS} letters, pixel and click hits alternating, wrk "
        f"{CONNECTIONS} connections, waitress 8 threads; empty route {reference.rate:.0f} "
        f"requests/s (p50 {reference.p50_ms:.1f} ms, p99 {reference.p99_ms:.1f} ms, server "
        f"{reference.server_cpu_ms:.2f} CPU ms each); hits p50 {product.p50_ms:.1f} ms, p99 "
        f"{product.p99_ms:.1f} ms, server {product.server_cpu_ms:.2f} CPU ms each; every round's "
        f"hits answered = events recorded ({', '.join(str(p.hits) for p in products)})",
        file=sys.stderr,
    )
    return Result(name, product.rate, "hits/s", reference.rate, GOAL)


def _letters(database_url: str, tokens: Tokens) -> list[str]:
    """Deliver a letter with three links to LETTERS contacts; return a pixel and a click
    path for each (the click on one of its links, so no letter has all links clicked)."""
    database = Database(database_url)
    try:
        insert_contacts(database, LETTERS)
        with database.unit_of_work() as session:
            letter = create_letter(session, "Tracking (bench)", kind=LetterKind.OTHER,
                                   category=LetterCategory.SERVICE)  # fmt: skip
            links = "".join(f'<p><a href="https://example.com/page/{n}">Page {n}</a></p>'
                            for n in range(3))  # fmt: skip
            html = f"<p>Dear {{{{ contact.first_name }}}}</p>{links}"
            version = add_version(session, letter.id, subject="Hello", html=html)
            link_ids = [link.id for link in version.links]
            sent_at = utcnow() - timedelta(hours=1)
            contacts = session.execute(select(Contact.id, Contact.email).order_by(Contact.id))
            deliveries = [
                Delivery(contact_id=contact_id, email=email, letter_version_id=version.id,
                         state=DeliveryState.SENT, sent_at=sent_at,
                         message_id=f"<bench-{contact_id}@example.com>")
                for contact_id, email in contacts
            ]  # fmt: skip
            session.add_all(deliveries)
            session.flush()
            paths = []
            for n, delivery in enumerate(deliveries):
                paths.append(f"/o/{tokens.sign('open', delivery.id)}.gif")
                paths.append(f"/c/{tokens.sign('click', delivery.id, link_ids[n % 3])}")
            return paths
    finally:
        database.dispose()


@contextmanager
def _server(env: dict[str, str], directory: Path) -> Iterator[tuple[str, int]]:
    """Run `campaigns web` on a free port; yield its URL and pid."""
    port = free_port()
    env = dict(env, WEB_HOST="127.0.0.1", WEB_PORT=str(port))
    log = directory / "web.log"
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "campaigns.cli", "web"], env=env,
                                   cwd=REPO, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + BOOT_SECONDS
        while True:
            if process.poll() is not None:
                raise BenchError(f"campaigns web exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("campaigns web did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(10)


def _round(url: str, pid: int, paths: list[str], directory: Path) -> Round:
    script = directory / "hits.lua"
    script.write_text(SCRIPT % {"paths": ", ".join(f'"{p}"' for p in paths),
                                "seconds": SECONDS, "agent": BROWSER})  # fmt: skip
    cpu = tree_seconds([pid])
    result = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS + 1}s", "-s", str(script), url],
        capture_output=True, text=True, timeout=SECONDS + 60,
    )  # fmt: skip
    cpu = tree_seconds([pid]) - cpu
    found = re.search(r"HITS (\d+) BAD (\d+) P50 ([\d.]+) P99 ([\d.]+) ERRORS (\d+)", result.stdout)
    if result.returncode != 0 or found is None:
        raise BenchError(f"wrk failed: {result.stdout}{result.stderr}")
    hits, bad, p50, p99, errors = found.groups()
    if int(bad) or int(errors):
        raise BenchError(f"{bad} answers were errors and {errors} requests failed: {result.stdout}")
    total = re.search(r"(\d+) requests in", result.stdout)
    requests = int(total.group(1)) if total else int(hits)
    return Round(int(hits), int(hits) / SECONDS, float(p50), float(p99),
                 cpu * 1000 / max(requests, 1))  # fmt: skip


def _check(database: Database, before: int, answered: int) -> int:
    """Return the events now recorded; refuse a round whose hits were not all recorded.

    The server writes hits a few milliseconds after answering them: give it a moment."""
    deadline = time.monotonic() + 5
    while True:
        with database.reading() as session:
            recorded = session.scalar(select(func.count()).select_from(Event)) or 0
        if recorded - before >= answered or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if recorded - before != answered:
        raise BenchError(f"{answered} hits were answered but {recorded - before} recorded")
    return recorded
