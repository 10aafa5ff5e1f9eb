"""Single values as people type them into spreadsheets: times, dates, yes/no, postal codes.

Each parser returns the value or raises ValueError with a stable reason code (the
codes land in error reports). Naive times are Europe/Oslo wall-clock times.
"""

from __future__ import annotations

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
# The minutes ("33") and the minutes and seconds ("33:07") of the two spellings, read
# and checked by one dict lookup: a text not in them (no ASCII digits, past 59) is
# left to parse_time's regular path.
_MM = {f"{m:02d}": _MINUTES[m] for m in range(60)}
_MM_SS = {f"{m:02d}:{s:02d}": timedelta(minutes=m, seconds=s) for m in range(60) for s in range(60)}
_HOURS_KEPT = 1 << 16  # distinct local hours remembered: seven years
_hours: dict[str, datetime | None] = {}


def _by_hour(text: str) -> datetime | None:
    """parse_time of the two spellings partner files write by the million,
    "12.09.2025 14:33" and "2025-09-12T14:33:00", as the UTC time of their local hour
    plus the minutes and seconds; None for any other text (parse_time reads it)."""
    if len(text) == 16:
        if text[2] != "." or text[5] != "." or text[10] != " " or text[13] != ":":
            return None
        offset, zero = _MM.get(text[14:]), ":00"
    elif len(text) == 19:
        if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":":
            return None
        offset, zero = _MM_SS.get(text[14:]), ":00:00"
    else:
        return None
    if offset is None:
        return None
    head = text[:13]  # the date and hour, in either spelling
    try:
        hour = _hours[head]
    except KeyError:
        hour = _hour_start(head, zero)
        if len(_hours) < _HOURS_KEPT:  # a hostile file cannot grow it without end
            _hours[head] = hour
    return None if hour is None else hour + offset


def _hour_start(head: str, zero: str) -> datetime | None:
    """parse_time(head + zero), the UTC time at minute 0 of a local hour; None if that
    is no time, or if the hour's UTC offset at minute 59 is another (Oslo changes on
    whole hours, but the regular path decides any hour that would not)."""
    try:
        start = parse_time(head + zero, ("\0",))  # a format no text matches: the regular path
        end = parse_time(head + zero.replace("00", "59", 1), ("\0",))
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
