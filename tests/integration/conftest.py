"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest


@pytest.fixture
def worker() -> Iterator[dramatiq.Worker]:
    """A real dramatiq worker (two threads) on the in-process stub broker, emptied first."""
    from worker import actors

    broker = actors.broker
    broker.flush_all()
    w = dramatiq.Worker(broker, worker_timeout=100, worker_threads=2)
    w.start()
    yield w
    w.stop()
