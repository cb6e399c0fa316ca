"""Rows per second of `campaigns contacts import` into PostgreSQL against `COPY` of the same file.

The bench writes a CSV of CONTACT_IMPORT_ROWS rows (default 1,000,000: half as many contacts,
each with two contracts, contact columns repeated), then measures, on one fresh PostgreSQL:
the reference, `COPY ... FROM STDIN (FORMAT csv)` of the file into a plain table of text
columns; and the product, the `campaigns contacts import FILE --valid-rows` command in a
process of its own (reading, checking every field, grouping rows by contact, upserting in one
transaction). The child's peak resident memory is printed too (goal: under 500 MB).

It also prints a floor, `contact_import_floor`: the rows, already typed and with their contact
ids known, `COPY`ed straight into the product's `contacts` and `contracts` tables (their
indexes, unique keys and foreign key) in a fresh database of the same server. No import can
write the rows faster than that, whatever it does before, so its ratio bounds what the
product's can reach on this machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench import BenchError, Result
from campaigns import schema
from campaigns.embedded.services import PostgresServer

GOAL = 0.1
MEMORY_GOAL_MB = 500
ROOT = Path(__file__).resolve().parent.parent
HEADER = ("email,first_name,last_name,customer_id,tier,contract_id,product,plan,starts_on,"
          "ends_on,price,currency\n")  # fmt: skip
PRODUCTS = ("Premium Support", "Basic Support", "Extended Warranty", "On-site Service")
PLANS = ("gold", "silver", "bronze")


def write_csv(path: Path, rows: int) -> None:
    """Write `rows` rows: contact i holds contracts 2i and 2i+1."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        lines = []
        for n in range(rows):
            i = n // 2
            year = 2020 + i % 6
            lines.append(
                f"customer{i}@example.com,First{i},Last{i % 997},C-{i},{i % 5},K-{n},"
                f"{PRODUCTS[n % 4]},{PLANS[n % 3]},{year}-0{1 + n % 9}-1{n % 10},"
                f"{year + 1 + n % 3}-0{1 + n % 9}-1{n % 10},{100 + n % 900}.00,EUR\n"
            )
            if len(lines) == 10_000:
                out.writelines(lines)
                lines = []
        out.writelines(lines)


def copy_rows_per_second(url: str, path: Path, rows: int) -> float:
    """COPY the file into a plain table of text columns, as PostgreSQL reads CSV natively."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    columns = ", ".join(f"{name} text" for name in HEADER.strip().split(","))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE copy_reference ({columns})")
        started = time.perf_counter()
        with conn.cursor() as cursor, path.open("rb") as source:
            with cursor.copy("COPY copy_reference FROM STDIN WITH (FORMAT csv, HEADER true)") as c:
                for block in iter(lambda: source.read(1 << 20), b""):
                    c.write(block)
        seconds = time.perf_counter() - started
        copied = conn.execute("SELECT count(*) FROM copy_reference").fetchone()
        conn.execute("DROP TABLE copy_reference")
    if not copied or copied[0] != rows:
        raise BenchError(f"COPY loaded {copied} rows, not {rows}")
    return rows / seconds


def floor_rows_per_second(url: str, rows: int) -> float:
    """COPY the bench's rows, typed, into `contacts` then `contracts`; time only the two COPYs."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    stamp = "2026-01-01 00:00:00+00"
    contacts = [f"customer{i}@example.com\tC-{i}\tFirst{i}\tLast{i % 997}\ten\tUTC\tactive\t0\t"
                f'{{"tier": {i % 5}}}\t{stamp}\t{stamp}\n'
                for i in range((rows + 1) // 2)]  # fmt: skip
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cursor:
            started = time.perf_counter()
            with cursor.copy("COPY contacts (email, external_id, first_name, last_name, locale, "
                             "time_zone, status, lifetime_spend, attributes, created_at, "
                             "updated_at) FROM STDIN") as copy:  # fmt: skip
                copy.write("".join(contacts))
            seconds = time.perf_counter() - started
            del contacts
            ids = dict(cursor.execute("SELECT external_id, id FROM contacts").fetchall())
            contracts = []
            for n in range(rows):
                year = 2020 + n // 2 % 6
                contracts.append(
                    f"{ids[f'C-{n // 2}']}\tK-{n}\t{PRODUCTS[n % 4]}\t{PLANS[n % 3]}\t"
                    f"{year}-0{1 + n % 9}-1{n % 10}\t{year + 1 + n % 3}-0{1 + n % 9}-1{n % 10}\t"
                    f"active\t{100 + n % 900}.00\tEUR\t0\t{{}}\t1\t{stamp}\n"
                )
            started = time.perf_counter()
            with cursor.copy("COPY contracts (contact_id, external_id, product, plan, starts_on, "
                             "ends_on, status, price, currency, service_points, attributes, term, "
                             "created_at) FROM STDIN") as copy:  # fmt: skip
                copy.write("".join(contracts))
            seconds += time.perf_counter() - started
        counted = conn.execute("SELECT (SELECT count(*) FROM contacts) + "
                               "(SELECT count(*) FROM contracts)").fetchone()  # fmt: skip
    if not counted or counted[0] != rows + (rows + 1) // 2:
        raise BenchError(f"the floor's COPY wrote {counted} rows")
    return rows / seconds


def product_rows_per_second(url: str, path: Path, rows: int, data_dir: Path) -> tuple[float, float]:
    """Run the import command in a child process; return rows/s and its peak memory in MB."""
    env = dict(os.environ, DATABASE_URL=url, CAMPAIGNS_DATA_DIR=str(data_dir))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "campaigns.cli", "contacts", "import", str(path), "--valid-rows",
         "--match", "email"],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0 or f"{rows} rows read, 0 rejected" not in result.stdout:
        raise BenchError(f"the import failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:
        peak_kb = before  # an earlier child was bigger: the figure is an upper bound
    return rows / seconds, peak_kb / 1024


def measure() -> Result:
    rows = int(os.environ.get("CONTACT_IMPORT_ROWS", "1000000"))
    if rows < 2:
        raise BenchError("CONTACT_IMPORT_ROWS must be at least 2")
    with tempfile.TemporaryDirectory(prefix="contact-import-") as folder:
        directory = Path(folder)
        path = directory / "contacts.csv"
        write_csv(path, rows)
        server = PostgresServer()
        try:
            server.start()
            url = server.create_database("bench_import")
            schema.upgrade(url)
            reference = copy_rows_per_second(url, path, rows)
            value, peak_mb = product_rows_per_second(url, path, rows, directory / "var")
            floor_url = server.create_database("bench_import_floor")
            schema.upgrade(floor_url)
            floor = floor_rows_per_second(floor_url, rows)
        finally:
            server.stop()
    print(
        f"contact_import: {rows} rows ({rows // 2} contacts, {rows} contracts); "
        f"COPY {reference:.0f} rows/s; product {value:.0f} rows/s "
        f"({rows / value:.1f} s); peak memory {peak_mb:.0f} MB (goal < {MEMORY_GOAL_MB} MB)",
        file=sys.stderr,
    )
    print(f"contact_import_peak_memory {peak_mb:.0f} MB goal<{MEMORY_GOAL_MB}", file=sys.stderr)
    print(f"{Result('contact_import_floor', floor, 'rows/s', reference, GOAL).line()} (typed rows "
          "COPYed straight into contacts and contracts: no import can be faster here)",
          file=sys.stderr)  # fmt: skip
    return Result("contact_import", value, "rows/s", reference, GOAL)
