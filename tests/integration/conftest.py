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


@pytest.fixture(autouse=True)
def _no_message_outlives_its_test() -> Iterator[None]:
    """Empty the in-process stub broker after each test. A `campaign launch --no-wait` in
    one test leaves its batches queued there (each CLI process has its own broker, but the
    tests share one), and the next test's embedded worker would take them for a campaign
    its store never had."""
    yield
    from dramatiq.brokers.stub import StubBroker

    from worker import actors

    if isinstance(actors.broker, StubBroker):
        actors.broker.flush_all()
