"""What an import did: its result, the earlier import of the same content, the error report.

Shared by partner files (`campaigns.intake`), the CRM export (`campaigns.customers`),
SFTP polling and the commands that print or write them.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, select

from campaigns.schema import import_errors, imports
from suppression.calendar import OSLO
from suppression.errors import RowError

# Outcomes of a file: stable strings.
IMPORTED: Final = "imported"
ALREADY_IMPORTED: Final = "already_imported"
REFUSED: Final = "refused"  # the whole file: not text, not CSV, missing columns


@dataclass
class ImportResult:
    """What one file did; `errors` are the refused rows (and a file-level error as row 0).

    `sha256` is the import's identity as `imports` holds it: the content's SHA-256, or
    for a partner file read with a given encoding or column mapping a digest of those
    and it (`campaigns.intake.import_identity`); `content_sha256` the content's alone.
    """

    source: str
    filename: str
    sha256: str
    status: str
    import_id: int | None = None
    rows: int = 0
    accepted: int = 0
    refused: int = 0
    duplicates: int = 0
    merged: int = 0
    new_contacts: int = 0
    errors: list[RowError] = field(default_factory=list)
    first_filename: str | None = None  # already imported: the name it was first imported under
    first_imported_at: datetime | None = None  # already imported: when
    content_sha256: str = ""  # empty: the same as sha256

    @property
    def by_reason(self) -> dict[str, int]:
        counts = Counter(e.reason.split(":", 1)[0] for e in self.errors)
        return dict(sorted(counts.items()))

    @property
    def refused_rows(self) -> list[RowError]:
        """The errors of rows (not of the whole file): row, field, reason."""
        return [e for e in self.errors if e.row > 0]

    @property
    def note(self) -> str | None:
        """Already imported: when, as which import, and that nothing changed."""
        if self.status != ALREADY_IMPORTED:
            return None
        when = (
            f" on {self.first_imported_at.astimezone(OSLO):%Y-%m-%d}"
            if self.first_imported_at
            else ""
        )
        return f"already imported{when} as import {self.import_id} (same content); nothing changed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "file": self.filename,
            "sha256": self.sha256,
            "status": self.status,
            "import_id": self.import_id,
            "rows": self.rows,
            "accepted": self.accepted,
            "refused": self.refused,
            "duplicates": self.duplicates,
            "merged": self.merged,
            "new_contacts": self.new_contacts,
            "by_reason": self.by_reason,
            "content_sha256": self.content_sha256 or self.sha256,
            **({"first_filename": self.first_filename} if self.first_filename else {}),
            **(
                {"first_imported_at": self.first_imported_at.isoformat()}
                if self.first_imported_at
                else {}
            ),
            **({"note": self.note} if self.note else {}),
        }


def already_imported(
    conn: Connection, source: str, sha256: str, filename: str
) -> ImportResult | None:
    """The earlier import with the same identity (`sha256`, see ImportResult) from the
    same source, with its row errors."""
    row = conn.execute(
        select(imports).where(imports.c.source == source, imports.c.sha256 == sha256)
    ).first()
    if row is None:
        return None
    m = row._mapping
    errors = [
        RowError(int(r.row), r.field, r.reason)
        for r in conn.execute(
            select(import_errors.c.row, import_errors.c.field, import_errors.c.reason)
            .where(import_errors.c.import_id == m["id"])
            .order_by(import_errors.c.row, import_errors.c.id)
        )
    ]
    return ImportResult(
        source,
        filename,
        sha256,
        ALREADY_IMPORTED,
        int(m["id"]),
        rows=int(m["rows_total"]),
        accepted=int(m["accepted"]),
        refused=int(m["refused"]),
        duplicates=int(m["duplicates"]),
        merged=int(m["merged"]),
        errors=errors,
        first_filename=str(m["filename"]),
        first_imported_at=_utc(m["imported_at"]),
    )


def _utc(moment: datetime) -> datetime:
    """SQLite hands back what it stored in UTC without the zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


REPORT_HEADER: Final = ("row", "field", "reason")


def error_report(errors: Iterable[RowError]) -> bytes:
    """The partner's error report: CSV of row, field, reason; no other data (UTF-8, BOM
    so that Excel reads it right). Fields are the partner's own headers; one that Excel
    would run as a formula is quoted with a leading apostrophe."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_HEADER)
    for e in errors:
        writer.writerow((e.row, _cell(e.field), _cell(e.reason)))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
