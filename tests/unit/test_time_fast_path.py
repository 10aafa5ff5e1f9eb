"""The two common time spellings are read by their hour (values._by_hour); for any text
of their shape that shortcut must give what parse_time's regular path gives, or leave
the text to it."""

from __future__ import annotations

from datetime import datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from campaigns.sources import values

# Digits near the edges of every field, non-ASCII digits (Arabic-Indic, full-width),
# and characters of the other spelling.
_CHAR = st.sampled_from([*"0123456789", "٣", "３", "²", ":", ".", "-", " ", "T", "x"])
_NORWEGIAN = st.tuples(*[_CHAR] * 10).map(
    lambda c: f"{c[0]}{c[1]}.{c[2]}{c[3]}.20{c[4]}{c[5]} {c[6]}{c[7]}:{c[8]}{c[9]}"
)
_ISO = st.tuples(*[_CHAR] * 12).map(
    lambda c: f"20{c[0]}{c[1]}-{c[2]}{c[3]}-{c[4]}{c[5]}T{c[6]}{c[7]}:{c[8]}{c[9]}:{c[10]}{c[11]}"
)
# Real times of the two spellings, across the DST changes and the edges of the clock.
_REAL = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31)).flatmap(
    lambda t: st.sampled_from([t.strftime("%d.%m.%Y %H:%M"), t.strftime("%Y-%m-%dT%H:%M:%S")])
)


def regular(text: str) -> datetime | str:
    try:
        return values.parse_time(text, ("\0",))  # a format no text matches: the regular path
    except ValueError as exc:
        return str(exc)


def shortcut(text: str) -> datetime | str:
    try:
        return values.parse_time(text)
    except ValueError as exc:
        return str(exc)


@settings(max_examples=3000)
@given(st.one_of(_NORWEGIAN, _ISO, _REAL))
@example("31.03.2024 02:30")  # the hour the spring change skips
@example("27.10.2024 02:30")  # the hour the autumn change repeats
@example("2024-03-31T02:59:59")
@example("12.09.2025 14:٣3")
@example("2025-09-12T14:33:６0")
def test_the_hour_shortcut_agrees_with_the_regular_path(text: str) -> None:
    assert shortcut(text) == regular(text)
    assert shortcut(text) == regular(text)  # again: now from the remembered hour
