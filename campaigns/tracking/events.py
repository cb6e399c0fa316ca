"""Recording what customers did with their letters: opens and clicks, people or machines.

Hits are not part of a caller's transaction: the process's hit writer (`hits.HitWriter`)
writes them in groups, a few milliseconds after these functions return (`flush` waits for
it). So they take the `Database`, not a session. A click needs the URL its link leads to,
kept per process once read (links never change).
"""

from __future__ import annotations

from datetime import datetime

from campaigns.db import Database, utcnow
from campaigns.errors import TokenInvalid
from campaigns.models import EventKind
from campaigns.tracking import hits
from campaigns.tracking.machines import Hit

_LINK = "SELECT version_id, url FROM links WHERE id = :link_id"
_SENT_WITH = (
    "SELECT letter_version_id FROM deliveries "  # noqa: S608
    f"WHERE id = :delivery_id AND state IN ({hits.DELIVERED_SQL})"
)
# Links are never changed once stored (a version is immutable): each web process keeps the
# ones followed (per database, with its hit writer), so a click needs no look-up. Bounded:
# emptied when full.
_LINKS_KEPT = 100_000


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


def stored_link(database: Database, link_id: int) -> tuple[int, str]:
    """The version a stored link belongs to, and the URL it leads to (http or https only:
    never `javascript:` or `data:`); TokenInvalid if there is no such link."""
    writer = hits.writer(database.engine)
    found = writer.links.get(link_id)
    if found is None:
        row = writer.lookup(_LINK, {"link_id": link_id})
        if row is None or not str(row[1]).startswith(("https://", "http://")):
            raise TokenInvalid("this link does not belong to a letter we sent")
        if len(writer.links) >= _LINKS_KEPT:
            writer.links.clear()
        found = writer.links[link_id] = (int(row[0]), str(row[1]))
    return found


def click_url(database: Database, delivery_id: int, link_id: int) -> str:
    """Return the stored URL a click token leads to (for staff: nothing is recorded).

    The link must belong to the version the delivery was sent with: a token can never
    redirect anywhere the letter did not link to.
    """
    version_id, url = stored_link(database, link_id)
    row = hits.writer(database.engine).lookup(_SENT_WITH, {"delivery_id": delivery_id})
    if row is None or row[0] != version_id:
        raise TokenInvalid("this link does not belong to a delivered letter")
    return url


def record_click(
    database: Database, delivery_id: int, link_id: int, *, hit: Hit,
    now: datetime | None = None,
) -> str:  # fmt: skip
    """Record a click and return the stored URL to redirect to.

    No look-up of the delivery: the token was signed for a link of its letter, and the hit
    writer drops a click of a letter not delivered, or on another letter's link.
    """
    version_id, url = stored_link(database, link_id)
    record(database, hits.Pending(EventKind.CLICK, delivery_id, hit, now or utcnow(),
                                  link_id=link_id, version_id=version_id))  # fmt: skip
    return url


def flush(database: Database) -> None:
    """Wait until the hits recorded so far in this process are in the database."""
    hits.writer(database.engine).flush()
