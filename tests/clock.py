"""The one clock of the test suite.

Every instant a test or factory uses comes from here: `NOW`, the suite's instant, and
times derived from it (`working_morning`, `days_ago`). The default is a named, fixed
instant in Europe/Oslo, so the suite proves the same thing on the day it is run as on
the day it was written; `OUTREACH_TEST_NOW` moves it ("time travel"), e.g.

    OUTREACH_TEST_NOW=2028-02-29T12:00:00+01:00 make test

Nothing in tests/ reads the wall clock except where a test measures elapsed time on
purpose (monotonic timers) and says so; `tests/unit/test_wall_clock.py` enforces it.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import holidays

OSLO: Final = ZoneInfo("Europe/Oslo")
ENV: Final = "OUTREACH_TEST_NOW"

# The suite's own instant: a Tuesday morning in late November, an ordinary working day
# inside calling hours (TP-5) and outside SMS quiet hours (ES-6).
TUESDAY_MORNING: Final = datetime(2026, 11, 24, 10, 0, tzinfo=OSLO)

# The instants `make test-travel` runs the whole suite at (README, docs/development.md):
# a year on, both DST changes of 2027 on each side of the missing/doubled hour, the last
# minute of a year, and a leap day.
TRAVEL: Final = (
    "2027-12-29T10:00:00+01:00",  # the default instant + 400 days
    "2027-03-28T01:30:00+01:00",  # DST starts this Sunday at 02:00 (the hour 02-03 is skipped)
    "2027-03-28T03:30:00+02:00",
    "2027-10-31T01:30:00+02:00",  # DST ends this Sunday at 03:00 (the hour 02-03 comes twice)
    "2027-10-31T03:30:00+01:00",
    "2026-12-31T23:59:00+01:00",
    "2028-02-29T12:00:00+01:00",
)
# The two `make test` runs its time-sensitive subset (marker `travel`) at, besides NOW.
TRAVEL_IN_CI: Final = ("2027-10-31T01:30:00+02:00", "2026-12-31T23:59:00+01:00")


class ClockSettingError(ValueError):
    """OUTREACH_TEST_NOW is not an ISO 8601 time with an offset."""


def parse(text: str) -> datetime:
    """An OUTREACH_TEST_NOW value as an aware instant shown in Europe/Oslo."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ClockSettingError(
            f"{ENV}={text!r}: not an ISO 8601 time (e.g. 2028-01-15T09:00:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        raise ClockSettingError(f"{ENV}={text!r}: give the UTC offset (e.g. +01:00)")
    return moment.astimezone(OSLO)


def _suite_now() -> datetime:
    text = os.environ.get(ENV, "").strip()
    return parse(text) if text else TUESDAY_MORNING


NOW: Final = _suite_now()
UTC_NOW: Final = NOW.astimezone(UTC)
TODAY: Final = NOW.date()  # the date in Oslo

_NORWAY = holidays.country_holidays("NO")


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a Norwegian public holiday, nor 1 or 17 May (TP-5)."""
    return (
        day.weekday() < 5 and day not in _NORWAY and (day.month, day.day) not in {(5, 1), (5, 17)}
    )


def working_morning(after: datetime = NOW, hour: int = 10) -> datetime:
    """The first working day's `hour`:00 in Oslo at or after `after`: a time at which
    calls (TP-5) and SMS (ES-6) may go, for tests that are about something else."""
    local = after.astimezone(OSLO)
    day = local.date()
    while True:
        candidate = datetime.combine(day, time(hour), OSLO)
        if candidate >= local and is_working_day(day):
            return candidate
        day += timedelta(days=1)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """`day` at hour:minute, Oslo time."""
    return datetime.combine(day, time(hour, minute), OSLO)


def days_ago(days: float, since: datetime = NOW) -> datetime:
    """An instant `days` before `since` (real elapsed time, whatever DST does between)."""
    return (since.astimezone(UTC) - timedelta(days=days)).astimezone(OSLO)


class TestClock:
    """A clock a test can pass as `now=` and move on purpose; it starts at NOW."""

    __test__ = False  # not a test class, for pytest's collector

    def __init__(self, start: datetime = NOW) -> None:
        if start.tzinfo is None:
            raise ClockSettingError("a test clock needs an aware start time")
        self._now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self._now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ClockSettingError("set the test clock with an aware time")
        self._now = moment.astimezone(UTC)
        return self._now

    def today(self) -> date:
        return self._now.astimezone(OSLO).date()
