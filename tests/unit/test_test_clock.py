"""The suite's one clock (tests.clock): its instant, its travel, the times it derives."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from tests import clock
from tests.clock import OSLO, ClockSettingError, TestClock, at, parse, working_morning


def test_the_suite_runs_at_its_named_instant_unless_told_to_travel() -> None:
    expected = os.environ.get(clock.ENV)
    assert (parse(expected) if expected else clock.TUESDAY_MORNING) == clock.NOW
    assert clock.NOW.tzinfo is OSLO
    assert clock.NOW.date() == clock.TODAY


def test_one_environment_variable_moves_the_clock() -> None:
    run = subprocess.run(
        [sys.executable, "-c", "from tests import clock; print(clock.NOW.isoformat())"],
        env={**os.environ, clock.ENV: "2028-02-29T12:00:00+01:00"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "2028-02-29T12:00:00+01:00"


@pytest.mark.parametrize("text", ["tomorrow", "2028-02-30T12:00:00+01:00", "2028-01-15T09:00"])
def test_a_bad_instant_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ClockSettingError, match=clock.ENV):
        parse(text)


def test_every_travel_instant_is_a_valid_instant() -> None:
    assert all(parse(t).tzinfo is not None for t in clock.TRAVEL)
    assert set(clock.TRAVEL_IN_CI) <= set(clock.TRAVEL)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # Tuesday 10:00 is a working morning already.
        (datetime(2026, 11, 24, 10, 0, tzinfo=OSLO), datetime(2026, 11, 24, 10, 0, tzinfo=OSLO)),
        # Later that morning: the next day.
        (datetime(2026, 11, 24, 10, 1, tzinfo=OSLO), datetime(2026, 11, 25, 10, 0, tzinfo=OSLO)),
        # New Year's Eve at 23:59: 1 January (a Friday) is a holiday; Monday the 4th.
        (datetime(2026, 12, 31, 23, 59, tzinfo=OSLO), datetime(2027, 1, 4, 10, 0, tzinfo=OSLO)),
        # The Sunday summer time starts is Easter Sunday in 2027: Tuesday, at +02:00.
        (datetime(2027, 3, 28, 1, 30, tzinfo=OSLO), datetime(2027, 3, 30, 10, 0, tzinfo=OSLO)),
        # Easter 2027: Maundy Thursday 25 March to Easter Monday 29 March are holidays.
        (datetime(2027, 3, 24, 11, 0, tzinfo=OSLO), datetime(2027, 3, 30, 10, 0, tzinfo=OSLO)),
        # 29 February 2028 is a Tuesday.
        (datetime(2028, 2, 29, 12, 0, tzinfo=OSLO), datetime(2028, 3, 1, 10, 0, tzinfo=OSLO)),
        # 17 May (Constitution Day) 2027 is a Monday.
        (datetime(2027, 5, 15, 9, 0, tzinfo=OSLO), datetime(2027, 5, 18, 10, 0, tzinfo=OSLO)),
    ],
)
def test_a_working_morning_skips_weekends_and_holidays(after: datetime, expected: datetime) -> None:
    found = working_morning(after)
    assert found == expected
    assert found.utcoffset() == expected.utcoffset()


def test_at_gives_oslo_time_with_the_offset_of_that_day() -> None:
    assert at(date(2027, 3, 29), 10).utcoffset() == timedelta(hours=2)
    assert at(date(2027, 11, 1), 10).utcoffset() == timedelta(hours=1)


def test_a_test_clock_starts_at_now_and_moves_only_when_told() -> None:
    c = TestClock()
    assert c() == c.now() == clock.NOW
    assert c().tzinfo is UTC
    c.advance(timedelta(hours=1))
    assert c() == clock.NOW + timedelta(hours=1)
    c.set(datetime(2030, 1, 1, tzinfo=OSLO))
    assert c.today() == date(2030, 1, 1)
    with pytest.raises(ClockSettingError):
        c.set(datetime(2030, 1, 1))  # a naive time, refused on purpose
