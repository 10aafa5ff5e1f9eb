"""The campaign's messages-per-second hold in every sliding second, across processes (Redis)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from tests.services import REDIS_URL, require
from worker.rate_limit import RedisReservations, acquire

pytestmark = pytest.mark.integration


def test_no_sliding_second_holds_more_than_the_limit() -> None:
    require("Redis", "127.0.0.1", 6379)
    key = f"test-{uuid.uuid4().hex}"
    limit, chunk = 40, 4
    granted: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 2.5

    def hammer() -> None:
        # Two "workers" sharing one Redis key, like two processes on one campaign.
        reservations = RedisReservations(redis.Redis.from_url(REDIS_URL))
        while time.monotonic() < deadline:
            acquire(reservations, key, chunk, limit)
            with lock:
                granted.extend([time.monotonic()] * chunk)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted.sort()
    worst = max(sum(1 for g in granted if s <= g < s + 1.0) for s in granted)
    assert worst <= limit
    assert len(granted) >= 2 * limit  # it did let messages through: ~limit per second


def test_a_sub_batch_that_went_out_slowly_pushes_back_the_next_window_on_redis() -> None:
    require("Redis", "127.0.0.1", 6379)
    key = f"test-{uuid.uuid4().hex}"
    reservations = RedisReservations(redis.Redis.from_url(REDIS_URL), window=1.0, pace=1.0)
    assert reservations.reserve(key, 10, 10) == 0.0
    time.sleep(0.2)  # sending and recording the sub-batch

    assert 0.99 < reservations.reserve(key, 10, 10) <= 1.0
