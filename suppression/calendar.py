"""When a contact may happen: calling hours (TP-5) and SMS quiet hours (ES-6).

Always in Europe/Oslo, whatever the server's zone. Holidays come from the
`holidays` package for Norway; 1 and 17 May are among them. Christmas Eve and New
Year's Eve on a weekday are ordinary days (the package lists them only as
unofficial observances, which we do not include).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

OSLO = ZoneInfo("Europe/Oslo")
OPENS = time(9, 0)
CLOSES = time(21, 0)


@lru_cache(maxsize=64)
def _norwegian_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("NO", years=year)


def is_public_holiday(day: date) -> bool:
    """Norwegian helligdager and 1/17 May; plain Sundays are not counted here."""
    return day in _norwegian_holidays(day.year)


def _oslo(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(OSLO)


def may_call(moment: datetime) -> bool:
    """TP-5: Monday-Friday 09:00-21:00 Oslo (a call may not start at 21:00), no holidays."""
    local = _oslo(moment)
    if local.weekday() >= 5 or is_public_holiday(local.date()):
        return False
    return OPENS <= local.time() < CLOSES


def may_send_sms(moment: datetime) -> bool:
    """ES-6 (POLICY): 09:00-21:00 Oslo, not on Sundays or public holidays."""
    local = _oslo(moment)
    if local.weekday() == 6 or is_public_holiday(local.date()):
        return False
    return OPENS <= local.time() < CLOSES


def next_opening(moment: datetime, allowed: Callable[[datetime], bool] = may_send_sms) -> datetime:
    """The first moment at or after `moment` when `allowed` holds (now, or a day's 09:00),
    for delaying a batch instead of dropping it."""
    check = allowed
    if check(moment):
        return moment
    local = _oslo(moment)
    day = local.date()
    for offset in range(0, 15):
        candidate = datetime.combine(day + timedelta(days=offset), OPENS, OSLO)
        if candidate >= local and check(candidate):
            return candidate
    raise ValueError("no opening within two weeks")  # pragma: no cover - cannot happen in Norway


CALLING_HOURS_TEXT = "Mon-Fri 09:00-21:00 Europe/Oslo, not on public holidays, 1 May or 17 May"
