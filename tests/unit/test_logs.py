"""GD-4: no email address or phone number survives into a log line."""

from __future__ import annotations

import io
import logging

from hypothesis import given
from hypothesis import strategies as st

from worker.logs import RedactingFilter, redact


def test_every_common_phone_spelling_is_redacted() -> None:
    for spelling in (
        "+47 412 34 567",
        "0047 41234567",
        "412 34 567",
        "41234567",
        "(+47) 41-23-45-67",
    ):
        assert "[phone]" in redact(f"sent to {spelling} ok"), spelling
        assert "4123" not in redact(f"sent to {spelling} ok"), spelling


def test_email_addresses_are_redacted_and_ids_are_kept() -> None:
    line = redact("recipient 1234 of campaign 7: Ola.Nordmann@Example.com unsubscribed")
    assert "Nordmann" not in line and "[email]" in line
    assert "recipient 1234 of campaign 7" in line


@given(st.integers(min_value=10_000_000, max_value=99_999_999))
def test_no_eight_digit_number_survives(number: int) -> None:
    assert str(number) not in redact(f"x {number} y")


def test_the_filter_redacts_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ValueError("bad address kari@example.no")
        except ValueError:
            log.exception("failed for %s", "+47 412 34 567")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "kari@example.no" not in text and "412 34 567" not in text
    assert "[email]" in text and "[phone]" in text
