"""Where partner files arrive: an inbox folder, with archive and errors folders beside it.

Two implementations: `sftp.SftpInbox` (the partner's or our SFTP server, paramiko)
and `local.LocalInbox` (a local folder with the same layout, for the demo and for
one machine). The poller (`campaigns.polling`) only speaks this interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

from suppression.errors import OutreachError

# Names that are never taken: uploads in progress, and the markers that say one is done.
IN_PROGRESS_SUFFIXES: Final = (".part", ".tmp", ".filepart", ".partial")
DONE_SUFFIX: Final = ".done"
REPORT_SUFFIX: Final = ".errors.csv"
PART_SUFFIX: Final = ".part"  # what an atomic write writes to before the rename


class InboxError(OutreachError):
    """The inbox cannot be reached or used; names the partner, never file contents."""

    def __init__(self, partner: str, reason: str) -> None:
        super().__init__(f"partner {partner}: {reason}")
        self.partner = partner
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InboxFile:
    name: str
    size: int
    mtime: int  # as the inbox reports it (seconds on SFTP, nanoseconds locally)
    mtime_unit: int = 1  # mtime ticks per second: 1 on SFTP, 10**9 locally

    @property
    def modified_at(self) -> datetime:
        """The mtime as an instant (the age of a file nothing records: campaigns.archives)."""
        seconds, ticks = divmod(self.mtime, self.mtime_unit)
        return datetime.fromtimestamp(seconds, UTC).replace(
            microsecond=ticks * 1_000_000 // self.mtime_unit
        )


# A listing's type, for classes whose own `list` method hides the builtin.
InboxFiles = list[InboxFile]


class Inbox(Protocol):
    def list(self) -> list[InboxFile]:
        """Regular files in the inbox folder (no folders, no links followed)."""
        ...

    def fetch(self, name: str, dest: Path) -> int:
        """Copy an inbox file to a local path; returns the bytes copied."""
        ...

    def archive(self, name: str, tag: str) -> str:
        """Move a file from the inbox to the archive folder by an atomic rename. If the
        archive already holds that name, `tag` is added before the suffix. Returns the
        archived name."""
        ...

    def reject(self, name: str, tag: str) -> str:
        """Move a file refused whole to the errors folder (same naming as `archive`)."""
        ...

    def write_report(self, name: str, data: bytes) -> str:
        """Write the error report of inbox file `name` into the errors folder, atomically
        (a partner never sees half a report). Returns the report's name."""
        ...

    def remove(self, name: str) -> None:
        """Delete an inbox file (a `.done` marker once its file is archived)."""
        ...

    # The archive folder (campaigns.archives: retention and erasure of archived files).

    def list_archive(self) -> InboxFiles:
        """Regular files in the archive folder (no folders, no links followed)."""
        ...

    def fetch_archived(self, name: str, dest: Path) -> int:
        """Copy an archived file to a local path; returns the bytes copied.
        FileNotFoundError when the archive no longer holds it."""
        ...

    def replace_archived(self, name: str, source: Path) -> None:
        """Replace an archived file with the content of a local file, atomically: written
        to `<name>.part` beside it, then renamed over it (no reader sees half a file)."""
        ...

    def delete_archived(self, name: str) -> bool:
        """Delete an archived file; False when it was already gone."""
        ...

    # The errors folder (campaigns.archives: files refused whole hold plaintext too).

    def list_errors(self) -> InboxFiles:
        """Regular files in the errors folder (files refused whole, error reports)."""
        ...

    def fetch_error(self, name: str, dest: Path) -> int:
        """Copy a file of the errors folder to a local path; returns the bytes copied.
        FileNotFoundError when the folder no longer holds it."""
        ...

    def delete_error(self, name: str) -> bool:
        """Delete a file of the errors folder; False when it was already gone."""
        ...

    def close(self) -> None: ...


def taken(name: str) -> bool:
    """Whether a listed name is a partner file to import (not in progress, not a marker)."""
    return (
        not name.startswith(".")
        and not name.endswith(IN_PROGRESS_SUFFIXES)
        and not name.endswith(DONE_SUFFIX)
    )


def tagged(name: str, tag: str) -> str:
    """`leads.csv` with tag `ab12` -> `leads.ab12.csv`."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{tag}.{suffix}" if dot and stem else f"{name}.{tag}"
