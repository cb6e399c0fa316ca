"""The send path's per-letter writes, as SQL prepared once and run on the batch's connection.

Before each letter goes to SMTP, one short transaction records the outcomes of the letters
sent since the last one and marks this letter in flight. Written with the ORM (`update()`
built per call, its cache key computed, the ORM's bulk-update path) these two statements
cost about a millisecond of Python per letter on SQLite — more than rendering and sending
the letter put together. Here they are SQL text built once per letter category and run
with typed parameters on one `Connection` held for the batch: a tenth of that.

The SQL is the same on SQLite and PostgreSQL. Only these two hot statements live here; the
rare paths (a mark refused, a hard bounce, a release) keep using the domain functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, text

from campaigns.db import JSONType, UTCDateTime
from campaigns.delivery.ledger import SUPPRESSED_STATUSES
from campaigns.models import CampaignStatus, DeliveryState, LetterCategory

_SENDING = DeliveryState.SENDING.value


@dataclass(frozen=True, slots=True)
class Outcome:
    """A letter's final state to record: the reason, and its Message-ID once sent."""

    delivery_id: int
    state: DeliveryState
    reason: str = ""
    message_id: str | None = None


# Only a row still `sending` is settled: one the reaper took back meanwhile stays as it is.
# (The f-strings below insert enum values of this module's own, never data.)
_RECORD = text(
    "UPDATE deliveries SET"  # noqa: S608
    " state = :state, reason = :reason, in_flight_at = NULL, "
    "message_id = COALESCE(:message_id, message_id), sent_at = COALESCE(:sent_at, sent_at) "
    f"WHERE id = :id AND state = '{_SENDING}'"
).bindparams(bindparam("sent_at", type_=UTCDateTime()))


@cache
def _mark_statement(category: LetterCategory) -> TextClause:
    """Mark a row in flight only if it is still ours, its contact may still get this
    category of letter, its address is not suppressed and its campaign still runs."""
    blocked = ", ".join(f"'{status.value}'" for status in SUPPRESSED_STATUSES[category])
    return text(
        "UPDATE deliveries SET"  # noqa: S608
        " in_flight_at = :now, locale = :locale, detail = :detail "
        f"WHERE id = :id AND state = '{_SENDING}' "
        "AND EXISTS (SELECT 1 FROM contacts WHERE contacts.id = deliveries.contact_id "
        f"AND contacts.status NOT IN ({blocked}) AND contacts.erased_at IS NULL) "
        "AND NOT EXISTS (SELECT 1 FROM suppressions WHERE suppressions.email = deliveries.email) "
        "AND (deliveries.campaign_id IS NULL OR EXISTS (SELECT 1 FROM campaigns "
        "WHERE campaigns.id = deliveries.campaign_id "
        f"AND campaigns.status = '{CampaignStatus.RUNNING.value}'))"
    ).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("detail", type_=JSONType))


def record(connection: Connection, outcomes: Sequence[Outcome], *, now: datetime) -> None:
    """Settle `sending` rows with their outcomes (one statement for the lot)."""
    if not outcomes:
        return
    connection.execute(_RECORD, [
        {"id": o.delivery_id, "state": o.state.value, "reason": o.reason[:2000],
         "message_id": o.message_id,
         "sent_at": now if o.state == DeliveryState.SENT else None}
        for o in outcomes
    ])  # fmt: skip


def mark_in_flight(
    connection: Connection, delivery_id: int, category: LetterCategory, *, now: datetime,
    locale: str, detail: dict[str, Any],
) -> bool:  # fmt: skip
    """Mark the row in flight if it may still go (see `_mark_statement`); say whether it was."""
    result = connection.execute(
        _mark_statement(category),
        {"id": delivery_id, "now": now, "locale": locale, "detail": detail},
    )
    return result.rowcount == 1
