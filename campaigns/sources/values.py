"""Single values as people type them into spreadsheets: times, dates, yes/no, postal codes.

Each parser returns the value or raises ValueError with a stable reason code (the
codes land in error reports). Naive times are Europe/Oslo wall-clock times.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from suppression.calendar import OSLO

# Reason codes of refused values: stable strings, they land in error reports.
REQUIRED = "required"
TOO_LONG = "too_long"
INVALID_DATE = "invalid_date"
INVALID_FLAG = "invalid_flag"
INVALID_POSTAL_CODE = "invalid_postal_code"

# dd.mm.yyyy, optionally with HH:MM[:SS]; Excel drops leading zeros ("1.3.2024 9:05")
# and Norwegians write 14.33 as often as 14:33.
_NORWEGIAN_TIME = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T]+(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?)?"
)
_TRUE = frozenset({"ja", "j", "yes", "y", "true", "sann", "1", "x"})
_FALSE = frozenset({"nei", "n", "no", "false", "usann", "0", ""})


def parse_time(text: str, formats: Sequence[str] = ()) -> datetime:
    """An aware UTC time from ISO 8601, `dd.mm.yyyy HH:MM` or one of `formats` (strptime)."""
    if not formats:
        fast = _by_hour(text)
        if fast is not None:
            return fast
    for fmt in formats:
        try:
            return _aware(datetime.strptime(text, fmt))
        except ValueError:
            continue
    match = _NORWEGIAN_TIME.fullmatch(text)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        try:
            moment = datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                tzinfo=OSLO,
            )
        except ValueError:
            raise ValueError(INVALID_DATE) from None
        return moment.astimezone(UTC)
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(INVALID_DATE) from None


_MINUTES = tuple(timedelta(minutes=m) for m in range(60))
_SECONDS = tuple(timedelta(seconds=s) for s in range(60))


def _by_hour(text: str) -> datetime | None:
    """parse_time of the two spellings partner files write by the million,
    "12.09.2025 14:33" and "2025-09-12T14:33:00", as the UTC time of their local hour
    plus the minutes and seconds; None for any other text (parse_time reads it)."""
    if len(text) == 16 and text[2] == "." and text[5] == "." and text[10] == " ":
        if text[13] != ":" or not (mm := text[14:]).isdigit() or not mm.isascii():
            return None
        hour, ss = _hour_start(text[:13], ":00"), "00"
    elif len(text) == 19 and text[4] == "-" and text[7] == "-" and text[10] == "T":
        mm, ss = text[14:16], text[17:]
        if text[13] != ":" or text[16] != ":" or not (digits := mm + ss).isdigit():
            return None
        if not digits.isascii():
            return None
        hour = _hour_start(text[:13], ":00:00")
    else:
        return None
    minute, second = int(mm), int(ss)
    if hour is None or minute > 59 or second > 59:
        return None
    return hour + _MINUTES[minute] + _SECONDS[second]


@functools.lru_cache(maxsize=1 << 16)
def _hour_start(hour: str, zero: str) -> datetime | None:
    """parse_time(hour + zero), the UTC time at minute 0 of a local hour; None if that
    is no time, or if the hour's UTC offset at minute 59 is another (Oslo changes on
    whole hours, but the slow path decides any hour that would not)."""
    try:
        start = parse_time(hour + zero, ("\0",))  # a format no text matches: the slow path
        end = parse_time(hour + zero.replace("00", "59", 1), ("\0",))
    except ValueError:
        return None
    return start if end - start == _MINUTES[59] else None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=OSLO)
    return moment.astimezone(UTC)


def parse_date(text: str, formats: Sequence[str] = ()) -> date:
    """A calendar date from ISO 8601 or `dd.mm.yyyy` (a time part is refused)."""
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    match = _NORWEGIAN_TIME.fullmatch(text)
    try:
        if match is not None and match[4] is None:
            return date(int(match[3]), int(match[2]), int(match[1]))
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(INVALID_DATE) from None


def parse_flag(text: str) -> bool:
    """Yes/no as written in Norwegian or English; empty is no."""
    key = text.strip().casefold()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueError(INVALID_FLAG)


def postal_code(text: str) -> str:
    """A Norwegian postal code, four digits; spreadsheets drop the leading zero of 0155."""
    digits = text.replace(" ", "")
    if not digits.isascii() or not digits.isdigit() or len(digits) not in (3, 4):
        raise ValueError(INVALID_POSTAL_CODE)
    return digits.zfill(4)


def clean(text: str) -> str:
    """Whitespace collapsed: names and addresses as one spelling."""
    return " ".join(text.split())
