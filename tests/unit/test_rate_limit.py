"""The reservations behind a campaign's messages-per-second (worker.rate_limit), computed
without Redis: whatever the requests, no window holds more than the limit."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.rate_limit import PACE, WINDOW, LocalReservations, earliest_start


def busiest_window(reserved: list[tuple[float, int]], window: float) -> int:
    return max(
        sum(n for at, n in reserved if start <= at < start + window) for start, _ in reserved
    )


@given(
    limit=st.integers(min_value=1, max_value=60),
    requests=st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.5), st.integers(min_value=1, max_value=60)),
        min_size=1,
        max_size=60,
    ),
)
def test_no_window_ever_holds_more_than_the_limit(
    limit: int, requests: list[tuple[float, int]]
) -> None:
    reserved: list[tuple[float, int]] = []
    now = paced = 0.0
    for pause, n in requests:
        now += pause
        n = min(n, limit)
        start = earliest_start(reserved, max(now, paced), n, limit, WINDOW)
        assert start >= now
        assert not reserved or start >= reserved[-1][0]  # first come, first served
        reserved.append((start, n))
        paced = start + n * PACE / limit
    assert busiest_window(reserved, WINDOW) <= limit


def test_a_steady_demand_is_spread_evenly_a_little_under_the_limit() -> None:
    limit, n = 560, 28
    reservations = LocalReservations()
    waits = [reservations.reserve("campaign-1", n, limit) for _ in range(40)]

    gaps = [b - a for a, b in pairwise(waits)]
    assert gaps == pytest.approx([n * PACE / limit] * 39, abs=1e-3)  # one every 52.5 ms
    assert waits[0] == 0.0


def test_an_idle_campaign_starts_at_once_and_campaigns_do_not_share_a_limit() -> None:
    reservations = LocalReservations()
    assert reservations.reserve("campaign-1", 10, 10) == 0.0
    assert reservations.reserve("campaign-2", 10, 10) == 0.0
    assert reservations.reserve("campaign-1", 1, 10) > 0.9


def test_a_sub_batch_that_went_out_slowly_pushes_back_the_next_window() -> None:
    """The thread comes back 0.2 s after its reservation started: its messages may have
    reached the provider until then, so the next window starts from there."""
    reservations = LocalReservations(window=1.0, pace=1.0)
    assert reservations.reserve("campaign-1", 10, 10) == 0.0
    time.sleep(0.2)  # sending and recording the sub-batch

    assert 0.99 < reservations.reserve("campaign-1", 10, 10) <= 1.0


def test_another_threads_reservation_still_counts_from_its_start() -> None:
    reservations = LocalReservations(window=1.0, pace=1.0)
    assert reservations.reserve("campaign-1", 10, 10) == 0.0
    time.sleep(0.2)
    waits: list[float] = []
    other = threading.Thread(
        target=lambda: waits.append(reservations.reserve("campaign-1", 10, 10))
    )
    other.start()
    other.join()

    assert 0.75 < waits[0] <= 0.8
