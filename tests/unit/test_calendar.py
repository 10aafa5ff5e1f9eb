"""Calling hours (TP-5) and SMS quiet hours (ES-6), always in Europe/Oslo. No I/O."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppression.calendar import OSLO, is_public_holiday, may_call, may_send_sms, next_opening

NEW_YORK = ZoneInfo("America/New_York")


def oslo(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=OSLO)


def utc(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hh", "mm", "open_"),
    [(8, 59, False), (9, 0, True), (12, 0, True), (20, 59, True), (21, 0, False), (23, 0, False)],
)
@pytest.mark.parametrize("allowed", [may_call, may_send_sms], ids=["TP-5 call", "ES-6 sms"])
def test_on_a_weekday_the_window_is_09_00_to_before_21_00(
    allowed: Callable[[datetime], bool], hh: int, mm: int, open_: bool
) -> None:
    assert allowed(oslo(2026, 3, 10, hh, mm)) is open_  # a Tuesday


def test_tp_5_no_calls_on_saturday_or_sunday() -> None:
    assert not may_call(oslo(2026, 3, 14))  # Saturday
    assert not may_call(oslo(2026, 3, 15))  # Sunday


def test_es_6_sms_is_allowed_on_saturday_but_not_on_sunday() -> None:
    assert may_send_sms(oslo(2026, 3, 14))
    assert not may_send_sms(oslo(2026, 3, 14, 8, 59))
    assert not may_send_sms(oslo(2026, 3, 15))


HOLIDAYS_ON_WEEKDAYS = {
    "New Year's Day": date(2026, 1, 1),
    "Maundy Thursday": date(2026, 4, 2),
    "Good Friday": date(2026, 4, 3),
    "Easter Monday": date(2026, 4, 6),
    "1 May": date(2026, 5, 1),
    "Ascension Day": date(2026, 5, 14),
    "17 May": date(2027, 5, 17),
    "Whit Monday": date(2026, 5, 25),
    "Christmas Day": date(2026, 12, 25),
    "Boxing Day": date(2025, 12, 26),
}


@pytest.mark.parametrize("day", HOLIDAYS_ON_WEEKDAYS.values(), ids=HOLIDAYS_ON_WEEKDAYS.keys())
def test_no_calls_and_no_sms_on_a_public_holiday(day: date) -> None:
    assert day.weekday() < 5
    assert is_public_holiday(day)
    noon = oslo(day.year, day.month, day.day)
    assert not may_call(noon)
    assert not may_send_sms(noon)


def test_holidays_on_a_saturday_stop_sms_too() -> None:
    assert is_public_holiday(date(2026, 12, 26))  # Boxing Day 2026 is a Saturday
    assert not may_send_sms(oslo(2026, 12, 26))


@pytest.mark.parametrize(
    "day", [date(2026, 12, 24), date(2026, 12, 31)], ids=["Christmas Eve", "New Year's Eve"]
)
def test_christmas_eve_and_new_years_eve_on_a_weekday_are_ordinary_days(day: date) -> None:
    assert day.weekday() == 3  # Thursdays in 2026
    assert not is_public_holiday(day)
    assert may_call(oslo(day.year, day.month, day.day))
    assert may_send_sms(oslo(day.year, day.month, day.day))


def test_a_plain_sunday_is_not_a_public_holiday() -> None:
    assert not is_public_holiday(date(2026, 3, 15))


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (utc(2026, 3, 27, 7, 59), False),  # Friday, CET: 08:59 in Oslo
        (utc(2026, 3, 27, 8, 0), True),  # 09:00 CET
        (utc(2026, 3, 30, 6, 30), False),  # Monday after the change, CEST: 08:30
        (utc(2026, 3, 30, 7, 30), True),  # 09:30 CEST
        (utc(2026, 3, 30, 18, 59), True),  # 20:59 CEST
        (utc(2026, 3, 30, 19, 0), False),  # 21:00 CEST
        (utc(2026, 10, 23, 19, 0), False),  # Friday, CEST: 21:00
        (utc(2026, 10, 26, 7, 59), False),  # Monday after the change back, CET: 08:59
        (utc(2026, 10, 26, 8, 0), True),  # 09:00 CET
        (utc(2026, 10, 26, 19, 59), True),  # 20:59 CET
        (utc(2026, 10, 26, 20, 0), False),  # 21:00 CET
    ],
)
def test_hours_are_read_in_oslo_whatever_the_zone_given_across_dst(
    moment: datetime, open_: bool
) -> None:
    assert may_call(moment) is open_
    assert may_send_sms(moment) is open_
    assert may_call(moment.astimezone(NEW_YORK)) is open_


def test_the_day_is_read_in_oslo_too() -> None:
    # 23:30 UTC on Friday 1 May is 01:30 on Saturday 2 May in Oslo.
    late_friday_utc = utc(2026, 5, 1, 23, 30)
    assert not may_send_sms(late_friday_utc)  # 01:30 in Oslo, before opening
    # 07:30 UTC on Saturday 2 May is 09:30 in Oslo: SMS yes, calls no.
    assert may_send_sms(utc(2026, 5, 2, 7, 30))
    assert not may_call(utc(2026, 5, 2, 7, 30))


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        may_call(datetime(2026, 3, 10, 12, 0))


def test_next_opening_is_now_when_the_window_is_open() -> None:
    moment = utc(2026, 3, 10, 10, 15)
    assert next_opening(moment, may_call) == moment


@pytest.mark.parametrize(
    ("moment", "allowed", "expected"),
    [
        (oslo(2026, 3, 10, 7, 0), may_call, oslo(2026, 3, 10, 9, 0)),  # early Tuesday
        (oslo(2026, 3, 13, 21, 0), may_call, oslo(2026, 3, 16, 9, 0)),  # Friday evening
        (oslo(2026, 3, 13, 21, 0), may_send_sms, oslo(2026, 3, 14, 9, 0)),  # SMS: Saturday
        (oslo(2026, 3, 14, 22, 0), may_send_sms, oslo(2026, 3, 16, 9, 0)),  # not Sunday
        (oslo(2026, 4, 1, 21, 30), may_call, oslo(2026, 4, 7, 9, 0)),  # over Easter
        (oslo(2026, 4, 1, 21, 30), may_send_sms, oslo(2026, 4, 4, 9, 0)),  # Easter Saturday
        (utc(2026, 3, 29, 22, 0), may_call, oslo(2026, 3, 30, 9, 0)),  # over the DST change
    ],
)
def test_next_opening_is_the_next_days_09_00_that_is_allowed(
    moment: datetime, allowed: Callable[[datetime], bool], expected: datetime
) -> None:
    opening = next_opening(moment, allowed)
    assert opening == expected
    assert opening.utcoffset() == expected.utcoffset()


def test_next_opening_defaults_to_sms_hours() -> None:
    assert next_opening(oslo(2026, 3, 13, 22, 0)) == oslo(2026, 3, 14, 9, 0)


@given(
    minutes=st.integers(min_value=0, max_value=3 * 366 * 24 * 60),
    sms=st.booleans(),
)
def test_next_opening_is_never_earlier_and_always_allowed(minutes: int, sms: bool) -> None:
    moment = utc(2025, 1, 1, 0) + timedelta(minutes=minutes)
    allowed = may_send_sms if sms else may_call
    opening = next_opening(moment, allowed)
    assert opening >= moment
    assert allowed(opening)
    # Nothing in between was open: the opening is the moment itself or a 09:00.
    assert opening == moment or opening.astimezone(OSLO).time().isoformat() == "09:00:00"
