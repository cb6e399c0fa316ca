"""Rates letters must keep to: one for all workers, per campaign, per recipient domain.

The domain only asks; the workers answer with Dramatiq's rate limiters on Redis, shared by
every worker process on every machine (workers/ratelimits.py).
"""

from __future__ import annotations

from typing import Protocol


class Throttle(Protocol):
    """Decides when the next letter may go."""

    def wait(self, *, campaign_id: int | None, rate_per_minute: int | None, domain: str) -> bool:
        """Block until a letter may go under every rate that applies to it.

        Return False when no slot comes soon: the caller hands its rows back for later,
        without counting an attempt.
        """
        ...


class Unthrottled:
    """No rate at all (tests, and a relay that paces itself)."""

    def wait(self, *, campaign_id: int | None, rate_per_minute: int | None, domain: str) -> bool:
        return True
