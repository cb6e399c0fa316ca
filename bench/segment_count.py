"""Milliseconds to count three realistic segments on PostgreSQL, against hand-written SQL.

The bench builds its own data with set-based SQL (generate_series): 1,000,000 contacts,
2,000,000 contracts, 300,000 letters sent, their opens, and 50,000 renewals. Then it counts
one per-contract segment, one aggregate segment and one engagement segment through the
product (`segments.count_members`: validate, compile, run) and the same questions written by
hand, alternating the two, best of a few rounds each.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench import BenchError, Result
from campaigns import schema
from campaigns.audience import segments
from campaigns.db import Database
from campaigns.embedded.services import PostgresServer
from campaigns.models import Segment, SegmentTarget

GOAL = 1.2  # the product may take at most 20% longer than the hand-written SQL
ROUNDS = 5
CONTACTS = int(os.environ.get("BENCH_SEGMENT_CONTACTS", "1000000"))

DATA = [
    # Customers since up to ~14 years; spend up to 20,000; one in 500 erased; the time zones
    # given, in turn.
    """INSERT INTO contacts (email, first_name, last_name, locale, time_zone, status,
        attributes, customer_since, lifetime_spend, created_at, updated_at, erased_at)
    SELECT 'c' || g || '@example.com', 'Customer', 'No. ' || g, 'en',
        (CAST(:zones AS text[]))[1 + g % cardinality(CAST(:zones AS text[]))],
        CASE WHEN g % 20 = 0 THEN 'unsubscribed' ELSE 'active' END, '{}',
        current_date - ((g::bigint * 7919) % 5000)::int,
        ((g::bigint * 104729) % 2000000) / 100.0, now(), now(),
        CASE WHEN g % 500 = 0 THEN now() END
    FROM generate_series(1, :contacts) AS g""",
    # Two contracts per contact on average, ends spread over a year back and forward.
    """INSERT INTO contracts (contact_id, product, plan, starts_on, ends_on, term, status,
        price, currency, service_points, attributes, created_at)
    SELECT 1 + (g * 7) % :contacts, 'Support',
        (ARRAY['Basic', 'Pro', 'Enterprise'])[1 + g % 3],
        current_date - 730 + ((g::bigint * 7727) % 730)::int,
        current_date - 365 + ((g::bigint * 7727) % 730)::int,
        1 + g % 3,
        CASE WHEN (g::bigint * 7727) % 730 < 365 THEN 'expired'
             WHEN g % 10 = 0 THEN 'cancelled' ELSE 'active' END,
        480, 'EUR', g % 7, '{}', now()
    FROM generate_series(1, 2 * :contacts) AS g""",
    """INSERT INTO letters (name, kind, category, created_at) VALUES
        ('Renewal offer', 'renewal', 'marketing', now()),
        ('Newsletter', 'other', 'marketing', now())""",
    """INSERT INTO letter_versions (letter_id, number, subject, html_source, compiled_html,
        compiled_text, requires_approval, created_at)
    SELECT id, 1, 'Hello', '<p>Hi</p>', '<p>Hi</p>', 'Hi', false, now() FROM letters""",
    # Letters sent over the last 30 days, half of them renewal offers.
    """INSERT INTO deliveries (contact_id, letter_version_id, email, state, reason, attempts,
        created_at, sent_at)
    SELECT 1 + (g * 13) % :contacts,
        (SELECT min(id) FROM letter_versions) + g % 2, 'x@example.com', 'sent', '', 1,
        now(), now() - ((g % 30) || ' days')::interval - ((g % 24) || ' hours')::interval
    FROM generate_series(1, :contacts * 3 / 10) AS g""",
    # One letter in three opened, one open in ten by a scanner.
    """INSERT INTO events (kind, delivery_id, contact_id, occurred_at, user_agent, is_machine,
        detail)
    SELECT 'open', id, contact_id, sent_at + interval '2 hours', '', id % 10 = 0, '{}'
    FROM deliveries WHERE id % 3 = 0""",
    """INSERT INTO conversions (contract_id, amount, currency, occurred_at, idempotency_key,
        source, detail)
    SELECT 1 + (g * 17) % (2 * :contacts), 480, 'EUR', now() - ((g % 20) || ' days')::interval,
        'bench-' || g, 'api', '{}'
    FROM generate_series(1, :contacts / 20) AS g""",
    "ANALYZE",
]

SEGMENTS: list[tuple[str, SegmentTarget, dict[str, object], str]] = [
    (
        "Basic contracts ending within 30 days",
        SegmentTarget.CONTRACTS,
        {"match": "all", "conditions": [
            {"field": "contract.plan", "op": "eq", "value": "Basic"},
            {"field": "contract.ends_on", "op": "in_next_days", "value": 30},
            {"field": "contract.status", "op": "eq", "value": "active"},
        ]},
        """SELECT count(*) FROM contacts c JOIN contracts k ON k.contact_id = c.id
        WHERE c.erased_at IS NULL AND k.plan = 'Basic' AND k.status = 'active'
          AND k.ends_on BETWEEN current_date AND current_date + 30""",
    ),
    (
        "Loyal or big spenders",
        SegmentTarget.CONTACTS,
        {"match": "any", "conditions": [
            {"field": "contact.customer_since", "op": "more_than_years_ago", "value": 5},
            {"field": "contact.lifetime_spend", "op": "gt", "value": 10000},
        ]},
        """SELECT count(*) FROM contacts c WHERE c.erased_at IS NULL
          AND (c.customer_since < (current_date - interval '5 years')::date
               OR c.lifetime_spend > 10000)""",
    ),
    (
        "Opened a renewal offer, did not renew",
        SegmentTarget.CONTACTS,
        {"match": "all", "conditions": [
            {"engagement": "opened", "letter_kind": "renewal", "days": 14},
            {"match": "none", "conditions": [{"engagement": "renewed", "days": 14}]},
        ]},
        """SELECT count(*) FROM contacts c WHERE c.erased_at IS NULL
          AND EXISTS (SELECT 1 FROM events e
                      JOIN deliveries d ON d.id = e.delivery_id
                      JOIN letter_versions v ON v.id = d.letter_version_id
                      JOIN letters l ON l.id = v.letter_id
                      WHERE e.contact_id = c.id AND e.kind = 'open' AND NOT e.is_machine
                        AND e.occurred_at >= current_date - 14 AND l.kind = 'renewal')
          AND NOT EXISTS (SELECT 1 FROM conversions r JOIN contracts k ON k.id = r.contract_id
                          WHERE k.contact_id = c.id AND r.occurred_at >= current_date - 14)""",
    ),
]  # fmt: skip


def measure() -> Result:
    """Build the data, then time the product's counts against the hand-written ones."""
    server = PostgresServer().start()
    try:
        url = server.create_database("segment_bench")
        schema.upgrade(url)
        database = Database(url)
        try:
            started = time.perf_counter()
            with database.unit_of_work() as session:
                build(session, contacts=CONTACTS)
            print(f"segment_count: data built in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
            return _compare(database)
        finally:
            database.dispose()
    finally:
        server.stop()


def build(session: Session, *, contacts: int, zones: Sequence[str] = ("UTC",)) -> None:
    """Insert the data (dates in UTC), the contacts living in `zones` in turn."""
    session.execute(text("SET TIME ZONE 'UTC'"))
    for statement in DATA:
        query = text(statement)
        if ":contacts" in statement:
            query = query.bindparams(contacts=contacts)
        if ":zones" in statement:
            query = query.bindparams(zones=list(zones))
        session.execute(query)


def _compare(database: Database) -> Result:
    product_total = reference_total = 0.0
    with database.unit_of_work() as session:
        session.execute(text("SET TIME ZONE 'UTC'"))
        for name, target, rules, sql in SEGMENTS:
            segment = segments.create_segment(session, name, rules=rules, target=target)
            product_ms, count = _best(session, partial(_product, session, segment))
            reference_ms, expected = _best(session, partial(_reference, session, sql))
            if count != expected:
                raise BenchError(f"{name}: the product counted {count}, the SQL {expected}")
            print(f"segment_count: {name}: {count} rows, product {product_ms:.1f} ms, "
                  f"hand-written {reference_ms:.1f} ms", file=sys.stderr)  # fmt: skip
            product_total += product_ms
            reference_total += reference_ms
    return Result("segment_count", product_total, "ms", reference_total, GOAL)


def _product(session: Session, segment: Segment) -> int:
    return segments.count_members(session, segment)


def _reference(session: Session, sql: str) -> int:
    return int(session.scalar(text(sql)) or 0)


def _best(session: Session, count: Callable[[], int]) -> tuple[float, int]:
    """Run once to warm the cache, then ROUNDS times; return the fastest ms and the count."""
    result = count()
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        result = count()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), result
