"""Logging: one set-up for every process, every line JSON, never an email or phone number.

The CLI, the web process (uvicorn's loggers included), the dramatiq worker processes and
the clock all log through the root logger's one handler, whose formatter is structlog's
`ProcessorFormatter`: a record of ours (`get`, keyword fields) or a library's (stdlib
`logging`: uvicorn, dramatiq, APScheduler, SQLAlchemy, paramiko) becomes one event dict
and one JSON line (a console rendering on a terminal).

Redaction works on the event's values, after the message is formatted with its
arguments: email addresses and what looks like a phone number (a Norwegian number as
people write it, or an E.164 number) are replaced in the event, its fields and the
exception text (GD-4). Records are never rewritten: structlog's own records carry their
event dict in `record.msg`. Our own code logs ids and hashes only; this is the net
under that rule.

structlog is imported when the first line is written (or the first structlog logger is
asked for), not at start-up: a command that logs nothing does not pay for it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# A Norwegian number: 8 digits as people write them (41234567, 412 34 567, 41 23 45 67,
# 4123 4567), each grouping with one separator throughout, optionally after +47, 0047 or
# (+47); or an E.164 number of any country (+, then 8 to 15 digits). Dates and times do
# not fit these groupings (2026-12-07 is 4-2-2, 17:30:38 has colons), so timestamps in
# library messages survive; any other run of exactly 8 digits is redacted, the safe side.
_NATIONAL = (
    r"\d{3}(?P<s1>[ .\-]?)\d{2}(?P=s1)\d{3}"
    r"|\d{2}(?P<s2>[ .\-]?)\d{2}(?P=s2)\d{2}(?P=s2)\d{2}"
    r"|\d{4}[ .\-]?\d{4}"
)
PHONE = re.compile(
    rf"(?:(?<![\w+])(?:0047|\(\+?47\))?|(?<![\d+])\+47)[ .\-]?(?:{_NATIONAL})(?!\w)"
    r"|(?<![\d+])\+[1-9](?:[ .\-]?\d){7,14}(?!\w)"
)
REDACTED_EMAIL = "[email]"
REDACTED_PHONE = "[phone]"
# Libraries whose INFO lines are chatter for an operator (Alembic's "Running upgrade",
# "Context impl"): at WARNING unless the level is DEBUG.
QUIET = ("alembic",)
# Fields the formatter adds itself: never personal data, never redacted.
_OWN_FIELDS = frozenset({"timestamp", "level", "logger"})
# Extra fields of library records that are presentation, not information.
_NOISE = ("color_message",)


def redact(text: str) -> str:
    return PHONE.sub(REDACTED_PHONE, EMAIL.sub(REDACTED_EMAIL, text))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return REDACTED_PHONE if PHONE.fullmatch(str(value)) else value
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    return value


def _redact_event(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {k: v if k in _OWN_FIELDS else _redact_value(v) for k, v in event.items()}


def _drop_noise(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    for key in _NOISE:
        event.pop(key, None)
    return event


def _shared() -> list[Any]:
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(json_output: bool | None = None) -> logging.Formatter:
    """The one formatter: a record (ours or a library's) to one redacted line, JSON unless
    `json_output` is False (None: JSON when stderr is not a terminal)."""
    import structlog

    if json_output is None:
        json_output = not _isatty(sys.stderr)
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json_output
        else structlog.dev.ConsoleRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared(), structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _drop_noise,
            _redact_event,
            renderer,
        ],
    )


class _SafeMessage(logging.Filter):
    """A library record whose arguments do not fit its format string would make logging
    print "--- Logging error ---" and a traceback: it keeps its text and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and not hasattr(record, "_logger"):
            try:
                record.getMessage()
            except (TypeError, ValueError):
                record.msg, record.args = f"{record.msg} {record.args!r}", ()
        return True


class Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root logger's handler (stderr by default); its formatter is built at the first
    line, so that importing structlog waits until something is logged."""

    def __init__(self, stream: IO[str] | None = None, json_output: bool | None = None) -> None:
        super().__init__(stream)
        self._json_output = json_output
        self.addFilter(_SafeMessage())

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is None:
            json_output = self._json_output
            if json_output is None:
                json_output = not _isatty(self.stream)
            self.setFormatter(formatter(json_output))
        return super().format(record)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


_structlog_ready = False


def _configure_structlog() -> None:
    global _structlog_ready
    if _structlog_ready:
        return
    import structlog

    structlog.configure(
        processors=[
            *_shared(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _structlog_ready = True


def get(name: str) -> Any:
    """A structlog logger: keyword fields become JSON keys (and are redacted too)."""
    import structlog

    _configure_structlog()
    return structlog.get_logger(name)


def _level(level: str | None) -> str:
    if level is None:
        from worker.settings import log_level

        return log_level()
    return level.upper()


def _quiet_level(level: str) -> int:
    return logging.NOTSET if level == "DEBUG" else max(logging.WARNING, logging.getLevelName(level))


def configure(
    level: str | None = None, json_output: bool | None = None, stream: IO[str] | None = None
) -> None:
    """Configure logging for this process: the root logger's one handler at `level`
    (default OUTREACH_LOG_LEVEL). Every process calls it; calling it again replaces the
    handler (a dramatiq worker process writes to the pipe its parent reads)."""
    level = _level(level)
    root = logging.getLogger()
    root.handlers[:] = [Handler(stream, json_output)]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(_quiet_level(level))


def dict_config(level: str | None = None) -> dict[str, Any]:
    """The same set-up as `configure`, as a `logging.config.dictConfig` dictionary: for
    uvicorn (`log_config=`), which applies it in each of its worker processes too."""
    level = _level(level)
    through_root = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"outreach": {"()": "worker.logs.Handler"}},
        "root": {"handlers": ["outreach"], "level": level},
        "loggers": {
            **{name: dict(through_root) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            **{name: {"level": _quiet_level(level)} for name in QUIET},
        },
    }
