"""Importing a partner lead file: validate, merge by identity, record the evidence.

One file, one transaction: every accepted row or nothing; a file that cannot be read
whole (`campaigns.sources.csvfile`), or that has no row, is refused whole. The same
content from the same partner, read the same way, imports once, whatever the file is
called (`imports` is unique on source and the import's identity, `import_identity`).
Refused rows are kept as `import_errors` (row, field, reason) for the error report. An import writes contacts, contact sources and consent
records; it never writes the ledger, so it can never lift a suppression (ALL-5).
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine, insert, update
from sqlalchemy.exc import IntegrityError

from campaigns import leadwriter
from campaigns.bulkcopy import copy_rows
from campaigns.contactlookup import FIELDS as MERGE_FIELDS
from campaigns.hashing import current_digest
from campaigns.importresult import (
    IMPORTED,
    REFUSED,
    ImportResult,
    already_imported,
)
from campaigns.keyfilter import contacts_upper_bound, load_contact_keys
from campaigns.memory import collector_paused
from campaigns.merge import DUPLICATE, MERGED, NEW, Merger
from campaigns.rekeying import Rotation
from campaigns.schema import import_errors, imports
from campaigns.sources import csvfile
from campaigns.sources.leadreader import LeadReader
from campaigns.sources.partner import Lead, LeadFormat, header_key
from suppression.errors import FileRefused, RowError
from suppression.keys import Hasher
from suppression.policy import PolicyConfig

BATCH = 20_000
NO_ROWS: Final = "no_rows"  # a reason a file is refused whole: a header and nothing more

Progress = Callable[[int], None]  # bytes read since the last call


def import_lead_file(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    source: str,
    lead_format: LeadFormat,
    path: Path,
    *,
    filename: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    now: datetime,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one partner file in its own transaction; a refused file is a result, not a raise.

    `source` is "partner:<name>"; `filename` the name the partner gave the file.
    """
    name = filename or path.name
    try:
        shape = csvfile.inspect(path, encoding=encoding, delimiter=delimiter)
    except FileRefused as exc:
        return _refused(source, name, "", exc)
    furthest = _Furthest(progress) if progress is not None else None
    for screen in (True, False):
        try:
            with engine.begin() as conn:
                return import_leads(
                    conn, hasher, policy, source, lead_format, path, shape,
                    filename=name, now=now, screen=screen,
                    progress=furthest.attempt() if furthest is not None else None,
                )  # fmt: skip
        except FileRefused as exc:
            return _refused(source, name, shape.sha256, exc)
        except IntegrityError:
            # Another process imported the same content at the same time and committed first.
            with engine.connect() as conn:
                found = already_imported(conn, source, import_identity(shape, lead_format), name)
            if found is not None:
                return found
            if not screen:
                raise
            # Another transaction gave a contact one of the file's emails or phones
            # after this import read which ones contacts held (campaigns.keyfilter):
            # import again, looking every one up.
    raise AssertionError("unreachable")


class _Furthest:
    """Progress over attempts at one file: reports only bytes past the furthest point an
    earlier attempt read to, so that a bar moves over the file once."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._furthest = 0
        self._read = 0

    def attempt(self) -> Progress:
        self._read = 0
        return self._advance

    def _advance(self, n: int) -> None:
        self._read += n
        if self._read > self._furthest:
            self._progress(self._read - self._furthest)
            self._furthest = self._read


def _refused(source: str, name: str, sha256: str, exc: FileRefused) -> ImportResult:
    return ImportResult(source, name, sha256, REFUSED, errors=[RowError(0, "file", exc.reason)])


def import_identity(shape: csvfile.Shape, lead_format: LeadFormat) -> str:
    """What makes two imports of a partner the same import (`imports.sha256`): the file's
    content, and how it was read: the encoding, when given rather than detected, and the
    partner's column mapping. So a file refused or misread can be imported again with
    `--encoding` or a corrected mapping, and the same file read the same way never twice.

    Read as detected, without a mapping, it is the content's SHA-256 alone: the identity
    every import had before the reading counted, so those are still found.
    """
    if not shape.encoding_given and not lead_format.columns:
        return shape.sha256
    reading = {
        "encoding": shape.encoding if shape.encoding_given else None,
        "columns": sorted((header_key(k), v) for k, v in lead_format.columns.items()),
    }
    text = json.dumps(reading, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"outreach import\0{shape.sha256}\0{text}".encode()).hexdigest()


def import_leads(
    conn: Connection,
    hasher: Hasher,
    policy: PolicyConfig,
    source: str,
    lead_format: LeadFormat,
    path: Path,
    shape: csvfile.Shape,
    *,
    filename: str,
    now: datetime,
    progress: Progress | None = None,
    batch_size: int = BATCH,
    screen: bool = True,
) -> ImportResult:
    """Import within the caller's transaction; FileRefused means: roll it back.

    `screen`: for a file large against the contacts held, read every contact's email
    and phone hash first (campaigns.keyfilter) and look up only those it holds;
    IntegrityError then may also mean that another transaction added one since.
    """
    now = now.astimezone(UTC)
    identity = import_identity(shape, lead_format)
    found = already_imported(conn, source, identity, filename)
    if found is not None:
        found.content_sha256 = shape.sha256
        return found
    import_id = int(
        conn.execute(
            insert(imports)
            .values(
                source=source,
                filename=filename[:500],
                sha256=identity,
                imported_at=now,
                rows_total=0,
                accepted=0,
                refused=0,
                duplicates=0,
                merged=0,
            )
            .returning(imports.c.id)
        ).scalar_one()
    )
    result = ImportResult(
        source, filename, identity, IMPORTED, import_id, content_sha256=shape.sha256
    )
    records = csvfile.records(path, shape, progress)
    header = next(records, None)
    if header is None:
        raise FileRefused(filename, f"{csvfile.EMPTY_FILE}: no header row")
    reader = LeadReader(
        filename, header[1], lead_format, hasher, policy, now, digest=current_digest(hasher)
    )
    known = None
    # Reading a contact's two hashes costs about a fifth of looking up a row's two:
    # worth it when the file has at least a quarter as many rows as there are contacts.
    if screen and 4 * shape.rows_estimate >= contacts_upper_bound(conn):
        known = load_contact_keys(conn, 2 * shape.rows_estimate)
    # On PostgreSQL the writes of a batch are done from a thread while the next is read.
    writer = leadwriter.Writer() if conn.dialect.name == "postgresql" else None
    merger = Merger(
        conn,
        hasher.key_id,
        now,
        partner_lead=True,
        known=known,
        rotation=Rotation.of(conn, hasher, now),
        values=_CONTACT_VALUES,
        submit=writer.submit if writer is not None else None,
        drain=writer.drain if writer is not None else None,
    )
    errors: list[RowError] = []
    read = reader.read
    batch: list[Lead] = []
    rows = 0
    with collector_paused():
        try:
            for row, cells in records:
                rows += 1
                lead = read(row, cells, errors)
                if lead is not None:
                    batch.append(lead)
                    if len(batch) >= batch_size:
                        leadwriter.store(
                            conn, merger, reader, batch, source, import_id, now, errors
                        )
                        batch = []
            leadwriter.store(conn, merger, reader, batch, source, import_id, now, errors)
        except BaseException:
            if writer is not None:
                writer.abort()  # the reading error is the one to report; the rollback follows
            raise
        if writer is not None:
            writer.close()
    merger.close()
    if rows == 0:
        raise FileRefused(filename, f"{NO_ROWS}: the file has a header row and no rows")
    result.rows = rows
    errors.sort(key=lambda e: e.row)
    result.errors = errors
    result.refused = len({e.row for e in errors})
    result.accepted = result.rows - result.refused
    result.duplicates = merger.counts[DUPLICATE]
    result.merged = merger.counts[MERGED]
    result.new_contacts = merger.counts[NEW]
    copy_rows(
        conn,
        import_errors,
        ("import_id", "row", "field", "reason"),
        ((import_id, e.row, e.field[:80], e.reason[:300]) for e in errors),
    )
    conn.execute(
        update(imports)
        .where(imports.c.id == import_id)
        .values(
            rows_total=result.rows,
            accepted=result.accepted,
            refused=result.refused,
            duplicates=result.duplicates,
            merged=result.merged,
        )
    )
    return result


# A Lead's contact values are one slice of it (Merger reads them by name otherwise).
_CONTACT_VALUES: Final = operator.itemgetter(slice(1, 1 + len(MERGE_FIELDS)))
assert Lead._fields[1 : 1 + len(MERGE_FIELDS)] == MERGE_FIELDS, "Lead's order is Merger's"
