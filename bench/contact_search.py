"""Milliseconds to search the contacts list at a million contacts on PostgreSQL, against
the list's unsearched first page in the same run.

The bench builds 1,000,000 contacts with set-based SQL (generate_series): varied first and
last names, addresses and external ids. It then times `contacts.search_contacts` (what the
admin's Contacts page and the API's search call) for the start of an address, of a first
and of a last name, an external id, and a search that finds nobody — the slowest kind
without an index, since every contact must be ruled out — each the best of a few rounds,
and reports the slowest of them against the first page with no search. Searching should
cost about what browsing does.
"""

from __future__ import annotations

import os
import sys
import time

from sqlalchemy import text

from bench import Result
from campaigns import schema
from campaigns.audience import contacts
from campaigns.db import Database
from campaigns.embedded.services import PostgresServer

GOAL = 5.0  # a search may take at most five times the list's first page
ROUNDS = 5
CONTACTS = int(os.environ.get("BENCH_SEARCH_CONTACTS", "1000000"))
DATA = """
INSERT INTO contacts (email, first_name, last_name, locale, time_zone, status, attributes,
    lifetime_spend, external_id, created_at, updated_at)
SELECT 'user' || ((g::bigint * 7919) % :contacts) || '@example.com',
    (ARRAY['Anna', 'Ben', 'Carla', 'David', 'Eva', 'Frank', 'Greta', 'Hans'])[1 + g % 8]
        || (g % 1000),
    'Family' || ((g::bigint * 104729) % :contacts), 'en', 'UTC', 'active', '{}', 0,
    'CRM-' || g, now(), now()
FROM generate_series(1, :contacts) AS g"""
SEARCHES = ("user123456@", "greta42", "family98765", "CRM-777777", "nobody-at-all")


def measure() -> Result:
    server = PostgresServer().start()
    try:
        url = server.create_database("search_bench")
        schema.upgrade(url)
        database = Database(url)
        try:
            with database.engine.begin() as connection:
                connection.execute(text(DATA), {"contacts": CONTACTS})
                connection.execute(text("ANALYZE contacts"))
            browse = _best(database, "")
            times = {query: _best(database, query) for query in SEARCHES}
        finally:
            database.dispose()
    finally:
        server.stop()
    for query, ms in times.items():
        print(f"contact_search: {query!r} {ms:.2f} ms", file=sys.stderr)
    print(f"contact_search: first page, no search {browse:.2f} ms", file=sys.stderr)
    return Result("contact_search", max(times.values()), "ms", browse, GOAL)


def _best(database: Database, query: str) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        with database.unit_of_work() as session:
            started = time.perf_counter()
            contacts.search_contacts(session, query=query)
            best = min(best, time.perf_counter() - started)
    return best * 1000
