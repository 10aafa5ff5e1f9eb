"""campaigns.prefetch: read-ahead in a thread, bounded, in order, errors forwarded,
stopped and closed when the consumer leaves early."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from campaigns.prefetch import Prefetch


def test_items_arrive_in_order_and_all_of_them() -> None:
    with Prefetch(iter(range(1000)), depth=3) as items:
        assert list(items) == list(range(1000))


def test_an_error_in_the_source_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise OverflowError("date value out of range")

    seen = []
    with pytest.raises(OverflowError, match="out of range"), Prefetch(source()) as items:
        seen.extend(items)
    assert seen == [1, 2]


def test_leaving_early_stops_the_reader_and_closes_the_source_in_its_thread() -> None:
    produced: list[int] = []
    closed_in: list[str] = []

    def source() -> Iterator[int]:
        try:
            for n in range(10**9):
                produced.append(n)
                yield n
        finally:
            closed_in.append(threading.current_thread().name)

    with Prefetch(source(), depth=2, name="reader") as items:
        for n in items:
            if n == 5:
                break
    assert closed_in == ["reader"]
    # The reader ran at most `depth` (+ the one it was putting) ahead of the consumer.
    assert len(produced) <= 6 + 3
    assert not any(t.name == "reader" for t in threading.enumerate())


def test_the_reader_stays_at_most_depth_items_ahead() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for n in range(100):
            produced.append(n)
            yield n

    with Prefetch(source(), depth=4) as items:
        iterator = iter(items)
        assert next(iterator) == 0
        time.sleep(0.3)  # give the reader time to run ahead as far as it may
        assert len(produced) <= 1 + 4 + 1
        assert list(iterator) == list(range(1, 100))
