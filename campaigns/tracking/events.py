"""Recording what customers did with their letters: opens and clicks, people or machines.

Hits are not part of a caller's transaction: the process's hit writer (`hits.HitWriter`)
writes them in groups, a few milliseconds after these functions return (`flush` waits for
it). So they take the `Database`, not a session; a click's one look-up (the URL it leads
to) runs on a connection that takes no lock.
"""

from __future__ import annotations

from datetime import datetime

from campaigns.db import Database, utcnow
from campaigns.errors import TokenInvalid
from campaigns.models import EventKind
from campaigns.tracking import hits
from campaigns.tracking.machines import Hit

_LINK_URL = (
    "SELECT links.url FROM deliveries JOIN links "  # noqa: S608
    "ON links.version_id = deliveries.letter_version_id "
    "WHERE deliveries.id = :delivery_id AND links.id = :link_id "
    f"AND deliveries.state IN ({hits.DELIVERED_SQL})"
)


def record(database: Database, pending: hits.Pending) -> None:
    """Hand a hit to the process's hit writer (see `hits`)."""
    hits.writer(database.engine).write(pending)


def record_open(
    database: Database, delivery_id: int, *, hit: Hit, now: datetime | None = None
) -> None:
    """Record that a letter's pixel was fetched, by a person or a machine.

    No look-up: the hit writer drops the hits of letters that were not delivered.
    """
    record(database, hits.Pending(EventKind.OPEN, delivery_id, hit, now or utcnow()))


def click_url(database: Database, delivery_id: int, link_id: int) -> str:
    """Return the stored URL a click token leads to.

    The link must belong to the version the delivery was sent with: a token can never
    redirect anywhere the letter did not link to.
    """
    row = hits.writer(database.engine).lookup(
        _LINK_URL, {"delivery_id": delivery_id, "link_id": link_id}
    )
    url = row[0] if row else None
    if url is None or not url.startswith(("https://", "http://")):  # never javascript:
        raise TokenInvalid("this link does not belong to a delivered letter")
    return str(url)


def record_click(
    database: Database, delivery_id: int, link_id: int, *, hit: Hit,
    now: datetime | None = None,
) -> str:  # fmt: skip
    """Record a click and return the stored URL to redirect to (see `click_url`)."""
    url = click_url(database, delivery_id, link_id)
    record(database, hits.Pending(EventKind.CLICK, delivery_id, hit, now or utcnow(),
                                  link_id=link_id))  # fmt: skip
    return url


def flush(database: Database) -> None:
    """Wait until the hits recorded so far in this process are in the database."""
    hits.writer(database.engine).flush()
