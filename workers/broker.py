"""Configure Dramatiq's Redis broker from Settings; imported before any actor is declared."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from campaigns.config import Settings
from workers import metrics
from workers.heartbeat import Heartbeat


def setup_broker(settings: Settings | None = None) -> RedisBroker:
    """Create the Redis broker for REDIS_URL and make it Dramatiq's global broker."""
    settings = settings or Settings.from_env()
    broker = RedisBroker(url=settings.redis_url)
    broker.add_middleware(Heartbeat())
    metrics.install(broker, settings)
    dramatiq.set_broker(broker)
    return broker


broker = setup_broker()
