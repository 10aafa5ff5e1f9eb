"""The one error family of outreach.

Messages never carry an email address or a phone number (GD-4): they name the
file, row, field or setting instead.
"""

from __future__ import annotations

from dataclasses import dataclass


class OutreachError(Exception):
    """Root of every error outreach raises on purpose."""


class ConfigurationError(OutreachError):
    """A setting is missing or malformed; `setting` names the variable to fix."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class InvalidIdentity(OutreachError):
    """An email or phone number that cannot be used; the reason never repeats the value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FileRefused(OutreachError):
    """A whole file was refused; nothing of it was stored."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ChannelError(OutreachError):
    """A provider call failed; a permanent error is never retried."""

    def __init__(self, message: str, *, permanent: bool = False, code: str | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class RateLimited(ChannelError):
    """The provider asked us to slow down; retrying later spends no retry."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:.1f}s", permanent=False)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RowError:
    """One refused row of an input file, collected as a value (never raised one at a time)."""

    row: int
    field: str
    reason: str
