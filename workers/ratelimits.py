"""The product's rates on Dramatiq's rate limiters, in Redis: shared by every worker."""

from __future__ import annotations

import time
from functools import cache

from dramatiq.rate_limits import RateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from campaigns.config import Settings

MAX_WAIT_SECONDS = 5.0  # longer than this, and the batch is handed back for later
POLL_SECONDS = 0.02


class RedisThrottle:
    """Sliding-window limits: SEND_RATE_PER_SECOND overall, each campaign's own rate per
    minute, and DOMAIN_RATES per recipient domain (gmail.com=20,…) per second."""

    def __init__(self, settings: Settings, *, max_wait: float = MAX_WAIT_SECONDS) -> None:
        self.backend = RedisBackend(url=settings.redis_url)
        self.global_rate = settings.send_rate_per_second
        self.domain_rates = dict(settings.domain_rates)
        self.max_wait = max_wait

    def _limiters(
        self, campaign_id: int | None, rate_per_minute: int | None, domain: str
    ) -> list[RateLimiter]:
        # Narrowest first: a slot taken from a wider limit is wasted when a narrower one says no.
        limiters: list[RateLimiter] = []
        if campaign_id is not None and rate_per_minute:
            limiters.append(WindowRateLimiter(
                self.backend, f"campaigns-rate-campaign-{campaign_id}",
                limit=rate_per_minute, window=60))  # fmt: skip
        if domain in self.domain_rates:
            limiters.append(WindowRateLimiter(
                self.backend, f"campaigns-rate-domain-{domain}",
                limit=self.domain_rates[domain], window=1))  # fmt: skip
        if self.global_rate:
            limiters.append(WindowRateLimiter(
                self.backend, "campaigns-rate-global",
                limit=self.global_rate, window=1))  # fmt: skip
        return limiters

    def wait(self, *, campaign_id: int | None, rate_per_minute: int | None, domain: str) -> bool:
        limiters = self._limiters(campaign_id, rate_per_minute, domain.lower())
        if not limiters:
            return True
        deadline = time.monotonic() + self.max_wait
        while True:
            if all(_take(limiter) for limiter in limiters):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)


def _take(limiter: RateLimiter) -> bool:
    with limiter.acquire(raise_on_failure=False) as acquired:
        return bool(acquired)


@cache
def throttle() -> RedisThrottle:
    from workers import runtime

    return RedisThrottle(runtime.settings())
