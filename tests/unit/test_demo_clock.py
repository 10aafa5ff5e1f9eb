"""The demo clock of whole-process tests: processes started apart share one clock."""

from __future__ import annotations

import time

import pytest

from suppression.errors import ConfigurationError
from tests.clock import working_morning
from tests.conftest import SECRET
from worker import settings
from worker.context import make_clock

APART = 0.5  # seconds between the two processes' first use of their clocks


def test_clocks_anchored_at_one_instant_agree_however_far_apart_they_were_made() -> None:
    demo_now = working_morning().isoformat()
    anchor = time.monotonic()  # the machine's monotonic clock: every process shares it
    first = make_clock(demo_now, anchor)
    time.sleep(APART)
    second = make_clock(demo_now, anchor)
    a, b = first(), second()
    assert abs((b - a).total_seconds()) < APART / 2
    assert (a - working_morning()).total_seconds() >= APART * 0.9  # it runs from the anchor


def test_without_an_anchor_a_clock_starts_at_its_first_use() -> None:
    demo_now = working_morning().isoformat()
    first = make_clock(demo_now)
    time.sleep(APART)
    second = make_clock(demo_now)
    a, b = first(), second()
    assert (a - b).total_seconds() >= APART * 0.9


def test_a_bad_anchor_names_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_KEY", SECRET)
    monkeypatch.setenv("OUTREACH_DEMO_NOW_AT", "yesterday")
    with pytest.raises(ConfigurationError) as caught:
        settings.load()
    assert "OUTREACH_DEMO_NOW_AT" in str(caught.value)
