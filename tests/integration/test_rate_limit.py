"""The campaign's messages-per-second hold in every sliding second, across processes (Redis)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from dramatiq.rate_limits.backends import RedisBackend

from tests.services import REDIS_URL, require
from worker.actors import SlidingWindowRateLimiter

pytestmark = pytest.mark.integration


def test_no_sliding_second_holds_more_than_the_limit() -> None:
    require("Redis", "127.0.0.1", 6379)
    backend = RedisBackend(url=REDIS_URL)
    key = f"test-{uuid.uuid4().hex}"
    limit = 40
    granted: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 2.5

    def hammer() -> None:
        # Two "workers" sharing one Redis key, like two processes on one campaign.
        limiter = SlidingWindowRateLimiter(backend, key, limit=limit, window=1)
        while time.monotonic() < deadline:
            with limiter.acquire(raise_on_failure=False) as acquired:
                if acquired:
                    with lock:
                        granted.append(time.monotonic())
            time.sleep(0.001)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted.sort()
    worst = max(sum(1 for g in granted if s <= g < s + 1.0) for s in granted)
    assert worst <= limit
    assert len(granted) >= 2 * limit  # it did let messages through: ~limit per second
