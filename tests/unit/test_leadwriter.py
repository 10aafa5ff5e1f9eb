"""The import's writer thread: writes in order, errors handed back, nothing after one."""

from __future__ import annotations

import sys
import threading

import pytest

from campaigns.leadwriter import Writer


def test_writes_are_done_in_order_by_one_other_thread_and_drain_waits_for_them() -> None:
    done: list[tuple[int, str]] = []
    gate = threading.Event()
    writer = Writer()
    writer.submit(gate.wait)  # holds the thread until the reader says go
    for n in range(6):  # fewer than the queue holds: submit must not wait here
        writer.submit(lambda n=n: done.append((n, threading.current_thread().name)))
    assert done == []
    gate.set()
    writer.drain()
    assert [n for n, _ in done] == list(range(6))
    assert {name for _, name in done} == {"intake-writer"}
    writer.close()


def test_the_first_error_is_raised_by_drain_and_later_writes_are_dropped() -> None:
    done: list[int] = []
    writer = Writer()
    writer.submit(lambda: done.append(1))
    writer.submit(lambda: (_ for _ in ()).throw(ValueError("first")))
    writer.submit(lambda: done.append(3))
    with pytest.raises(ValueError, match="first"):
        writer.drain()
    with pytest.raises(ValueError, match="first"):
        writer.submit(lambda: done.append(4))
    with pytest.raises(ValueError, match="first"):
        writer.close()
    assert done == [1]


def test_abort_drops_queued_writes_and_swallows_their_errors() -> None:
    done: list[int] = []
    gate = threading.Event()
    writer = Writer()
    writer.submit(gate.wait)
    writer.submit(lambda: done.append(1))
    writer.submit(lambda: (_ for _ in ()).throw(ValueError("never seen")))
    threading.Timer(0.05, gate.set).start()
    writer.abort()  # returns once the thread has stopped
    assert done == []
    writer.close()  # nothing left to raise


def test_the_switch_interval_is_short_while_any_writer_runs_and_restored_after() -> None:
    before = sys.getswitchinterval()
    first = Writer()
    short = sys.getswitchinterval()
    assert short < before and short <= 0.0002 + 1e-9
    second = Writer()
    first.close()
    assert sys.getswitchinterval() == short  # the second one still runs
    first.close()  # closing twice does not count twice
    assert sys.getswitchinterval() == short
    second.abort()
    assert sys.getswitchinterval() == before
