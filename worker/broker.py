"""The dramatiq broker: Redis when REDIS_URL is set, in-process otherwise.

Tuned so that the messages of a SIGKILLed worker come back to another worker within
about a minute: a worker is presumed dead 15 s after its last heartbeat, and every
fetch has a 5 % chance of running the maintenance that requeues a dead worker's
unacknowledged messages (the default, 0.1 %, can take many minutes on a quiet
queue). `outreach worker` also keeps the prefetch at two messages per process so that a
dying worker holds few batches.

A consumer that holds its prefetch, or finds its queue empty, sleeps before it fetches
again, backing off up to the worker timeout (1 s). With a prefetch of one, that sleep
grows while a batch is sent and then idles the process after the batch; capped at
IDLE_POLL_MS, the next batch is fetched promptly, and the frequent fetches also run
the maintenance sooner.
"""

from __future__ import annotations

import dramatiq
from dramatiq.broker import Consumer
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

HEARTBEAT_TIMEOUT_MS = 15_000
MAINTENANCE_CHANCE = 50_000  # out of dramatiq's 1,000,000
SEND_QUEUE = "sends"
INTAKE_QUEUE = "intake"
IDLE_POLL_MS = 50
PING_TIMEOUT_S = 5


class _RedisBroker(RedisBroker):
    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        return super().consume(queue_name, prefetch, min(timeout, IDLE_POLL_MS))


def make_broker(redis_url: str | None) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if redis_url:
        broker = _RedisBroker(  # type: ignore[no-untyped-call]
            url=redis_url,
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_CHANCE,
            namespace="outreach",
        )
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    broker.add_middleware(CurrentMessage())
    if redis_url:
        # Worker metrics for Prometheus (dramatiq's middleware serves them on
        # dramatiq_prom_host:dramatiq_prom_port, default 0.0.0.0:9191, from the worker).
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    return broker


def is_embedded(broker: dramatiq.Broker) -> bool:
    return isinstance(broker, StubBroker)


def ping(redis_url: str) -> None:
    """Redis answers at `redis_url`, or redis.ConnectionError / TimeoutError (the CLI's
    exit code 4): what a process checks before it starts to depend on it."""
    import redis

    client = redis.Redis.from_url(
        redis_url, socket_connect_timeout=PING_TIMEOUT_S, socket_timeout=PING_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
