"""GD-4: no email address or phone number survives into a log line; every line is JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker import logs
from worker.logs import redact


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The root logger's one handler, as `logs.configure` sets it up, writing JSON here."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("INFO", json_output=True, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_common_phone_spelling_is_redacted() -> None:
    for spelling in (
        "+47 412 34 567",
        "0047 41234567",
        "412 34 567",
        "41234567",
        "(+47) 41-23-45-67",
        "41 23 45 67",
        "4123 4567",
        "+4741234567",
        "+46 70 123 45 67",
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


@pytest.mark.parametrize(
    "text",
    [
        'Running job "reconcile (trigger: interval[0:00:02], next run at: 2026-12-07 17:30:38 CET)"',
        "next wakeup is due at 2026-12-07 17:30:38.123456+01:00 (in 1.998 seconds)",
        "2026-12-07T16:30:38.687789Z",
        "07.12.2026 17:30",
        "Started server process [123456]",
        "listening on 127.0.0.1:8000, 4 threads, 0:00:30 timeout",
    ],
)
def test_dates_times_and_small_numbers_are_kept(text: str) -> None:
    assert redact(text) == text


def test_a_library_record_is_one_json_line_with_its_arguments_redacted(
    lines: io.StringIO,
) -> None:
    logging.getLogger("apscheduler.executors.default").info(
        'Running job "%s" (next run at: %s) for %s',
        "reconcile",
        "2026-12-07 17:30:38 CET",
        "kari@example.no",
    )
    (record,) = records(lines)
    assert record["event"] == (
        'Running job "reconcile" (next run at: 2026-12-07 17:30:38 CET) for [email]'
    )
    assert record["logger"] == "apscheduler.executors.default"
    assert record["level"] == "info"


def test_a_structlog_event_keeps_its_fields_and_redacts_their_values(
    lines: io.StringIO,
) -> None:
    # The record carries its event dict in record.msg: rewriting it would make structlog
    # fail ("'str' object has no attribute 'copy'"), as the old redacting filter did.
    logs.get("outreach.test").info(
        "opt-out recorded", recipient=7, to="+47 412 34 567", note="from ola@example.no"
    )
    (record,) = records(lines)
    assert record["event"] == "opt-out recorded"
    assert record["recipient"] == 7
    assert record["to"] == "[phone]" and record["note"] == "from [email]"


def test_an_exception_and_extra_fields_are_redacted_too(lines: io.StringIO) -> None:
    log = logging.getLogger("test.redaction")
    try:
        raise ValueError("bad address kari@example.no")
    except ValueError:
        log.exception("failed for %s", "+47 412 34 567", extra={"partner": "p", "to": 41234567})
    text = lines.getvalue()
    assert "kari@example.no" not in text and "412 34 567" not in text and "41234567" not in text
    (record,) = records(lines)
    assert record["event"] == "failed for [phone]"
    assert record["partner"] == "p" and record["to"] == "[phone]"
    assert "ValueError: bad address [email]" in str(record["exception"])


def test_a_record_whose_arguments_do_not_fit_is_still_one_json_line(
    lines: io.StringIO,
) -> None:
    logging.getLogger("test.broken").warning("two %s %s", "ola@example.no")
    (record,) = records(lines)
    assert "ola@example.no" not in str(record["event"]) and "[email]" in str(record["event"])


def test_alembic_is_quiet_at_info_and_speaks_at_debug() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("INFO", json_output=True, stream=io.StringIO())
        assert not logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
        logs.configure("DEBUG", json_output=True, stream=io.StringIO())
        assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("alembic").setLevel(logging.NOTSET)


def test_uvicorns_dict_config_uses_the_same_handler() -> None:
    config = logs.dict_config("WARNING")
    assert config["handlers"]["outreach"]["()"] == "worker.logs.Handler"
    assert config["root"] == {"handlers": ["outreach"], "level": "WARNING"}
    assert config["loggers"]["uvicorn.error"]["propagate"] is True
