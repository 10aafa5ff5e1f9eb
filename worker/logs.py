"""Logging: structured (JSON when not on a terminal), and never an email or phone number.

Every record, ours or a library's (uvicorn, dramatiq, paramiko, SQLAlchemy), passes
through `redact` on its way out: email addresses and anything that looks like a phone
number are replaced before a handler sees them (GD-4). Our own code logs ids and
hashes only; the filter is the net under that rule.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# +47 412 34 567, 0047 41234567, 412 34 567, 41234567, (+47) 41-23-45-67 ...: a run of
# 8 or more digits allowing the separators people write. Durations and ids of fewer
# digits pass; long ids (timestamps, sids) may be redacted too, which is the safe side.
PHONE = re.compile(r"(?<![\w])(?:\+|00)?(?:\(?\d\)?[\s.\-/]?){7,14}\d(?![\w])")
REDACTED_EMAIL = "[email]"
REDACTED_PHONE = "[phone]"


def redact(text: str) -> str:
    return PHONE.sub(REDACTED_PHONE, EMAIL.sub(REDACTED_EMAIL, text))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (with its arguments merged in) and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _redact_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {k: _redact_value(v) for k, v in event.items()}


def get(name: str) -> Any:
    """A structlog logger: keyword fields become JSON keys (and are redacted too)."""
    return structlog.get_logger(name)


def configure(level: str = "INFO", json_output: bool | None = None) -> None:
    """Configure stdlib logging and structlog once per process."""
    json_output = not sys.stderr.isatty() if json_output is None else json_output
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
