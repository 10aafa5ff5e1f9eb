"""Importing the CRM's customer export and its alarm contacts.

Customers become contacts (merged by identity with partner leads: one person, one
contact) with a `customers` row holding the ES-2 / TP-3 facts. A known customer id
updates its row: the CRM is the truth about its customers, their names and
addresses. The same export delivered twice imports once (`imports` source "crm").

Alarm contacts are never contacts (ALL-3): each of their identities becomes a ledger
exclusion (reason alarm_contact, scope all, source "crm:alarm_contacts"), hashes
only, with a source event derived from the customer id, so importing the same list
again adds nothing. Nothing here lifts a suppression (ALL-5).

The alarm contacts are a block list (guarantee 5): a row that cannot be read (a wrong
number of fields, a bad phone or email, no customer id) refuses the whole load, and the
previous list stays in force; so does a list shorter than the last one loaded by more
than `max_shrink` (OUTREACH_ALARM_MAX_SHRINK, default 10 %), unless the operator says
the shrink is meant (`--allow-shrink`): an export cut short looks like that.

Both files go in one transaction: all of it or nothing. Either file refused whole
refuses both, and so does a file whose last line has no line ending (it may have been
cut inside its last row, leaving a value that reads well but is not the one sent).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from campaigns.bulkcopy import copy_rows
from campaigns.hashing import current_digest
from campaigns.importresult import (
    ALREADY_IMPORTED,
    IMPORTED,
    REFUSED,
    ImportResult,
    already_imported,
)
from campaigns.merge import DUPLICATE, MERGED, NEW, Merger
from campaigns.rekeying import Rotation
from campaigns.schema import contact_sources, customers, import_errors, imports
from campaigns.sources import csvfile
from campaigns.sources.crm import AlarmContact, AlarmContactReader, Customer, CustomerReader
from campaigns.sources.partner import IDENTITY_CONFLICT
from suppression.errors import FileRefused, RowError
from suppression.keys import Hasher, KeyedHash
from suppression.ledger import ALARM_CONTACT, Ledger, entry_rows

CRM_SOURCE: Final = "crm"
ALARM_SOURCE: Final = "crm:alarm_contacts"
NOT_IMPORTED: Final = "not_imported"  # the other file of a refused pair: nothing stored
# Reasons a whole file is refused, besides those of campaigns.sources.csvfile.
BAD_ROWS: Final = "bad_rows"
SHRINK: Final = "shrink"
MAX_SHRINK: Final = 0.10  # the default of OUTREACH_ALARM_MAX_SHRINK
SHOWN_ERRORS: Final = 20
BATCH = 5_000
_CUSTOMER_COLUMNS: Final = (
    "contract_status",
    "contract_end",
    "product_categories",
    "email_source",
    "email_from_sale",
    "opt_out_offered",
)


@dataclass
class CustomerImport:
    """The outcome of `outreach customers import`: the export, and the alarm contacts."""

    customers: ImportResult
    alarm_contacts: ImportResult | None = None
    customers_added: int = 0
    customers_updated: int = 0
    exclusions_added: int = 0
    errors_by_file: dict[str, list[RowError]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "customers": {
                **self.customers.as_dict(),
                "customers_added": self.customers_added,
                "customers_updated": self.customers_updated,
            }
        }
        if self.alarm_contacts is not None:
            out["alarm_contacts"] = {
                **self.alarm_contacts.as_dict(),
                "exclusions_added": self.exclusions_added,
            }
        return out


class RowsRefused(FileRefused):
    """A block list refused whole for its bad rows; `errors` are the rows (row, field, reason)."""

    def __init__(self, path: str, errors: list[RowError]) -> None:
        shown = "; ".join(f"row {e.row}, {e.field}: {e.reason}" for e in errors[:SHOWN_ERRORS])
        more = f" (and {len(errors) - SHOWN_ERRORS} more)" if len(errors) > SHOWN_ERRORS else ""
        rows = len({e.row for e in errors})
        super().__init__(
            path,
            f"{BAD_ROWS}: {rows} of its rows cannot be read, nothing imported and the previous "
            f"alarm contacts stay in force: {shown}{more}",
        )
        self.errors = errors


def import_customer_files(
    engine: Engine,
    hasher: Hasher,
    path: Path,
    alarm_contacts: Path | None = None,
    *,
    now: datetime,
    max_shrink: float = MAX_SHRINK,
    allow_shrink: bool = False,
) -> CustomerImport:
    """Both files in one transaction; a refused file refuses both (nothing is stored).

    `max_shrink`: the largest fraction by which the alarm contacts may be fewer than at
    the last load, unless `allow_shrink`."""
    shapes: list[csvfile.Shape] = []
    for p in (path, *([alarm_contacts] if alarm_contacts else [])):
        try:
            shapes.append(csvfile.inspect(p))
        except FileRefused as exc:
            return _refused(path, alarm_contacts, p, exc)
    try:
        with engine.begin() as conn:
            outcome = import_customers(conn, hasher, path, shapes[0], now=now)
            if alarm_contacts is not None:
                alarm, added = import_alarm_contacts(
                    conn,
                    hasher,
                    alarm_contacts,
                    shapes[1],
                    now=now,
                    max_shrink=None if allow_shrink else max_shrink,
                )
                outcome.alarm_contacts, outcome.exclusions_added = alarm, added
            return outcome
    except FileRefused as exc:
        failed = alarm_contacts if alarm_contacts and exc.path == alarm_contacts.name else path
        return _refused(path, alarm_contacts, failed, exc)


def _refused(path: Path, alarm: Path | None, failed: Path, exc: FileRefused) -> CustomerImport:
    def result(source: str, p: Path) -> ImportResult:
        errors = [RowError(0, "file", exc.reason)] if p == failed else []
        if p == failed and isinstance(exc, RowsRefused):
            errors += exc.errors
        status = REFUSED if p == failed else NOT_IMPORTED
        return ImportResult(source, p.name, "", status, errors=errors)

    return CustomerImport(result(CRM_SOURCE, path), result(ALARM_SOURCE, alarm) if alarm else None)


def _start(
    conn: Connection, source: str, path: Path, shape: csvfile.Shape, now: datetime
) -> tuple[ImportResult | None, int]:
    found = already_imported(conn, source, shape.sha256, path.name)
    if found is not None:
        return found, 0
    import_id = conn.execute(
        insert(imports)
        .values(
            source=source,
            filename=path.name[:500],
            sha256=shape.sha256,
            imported_at=now,
            rows_total=0,
            accepted=0,
            refused=0,
            duplicates=0,
            merged=0,
        )
        .returning(imports.c.id)
    ).scalar_one()
    return None, int(import_id)


def _finish(conn: Connection, result: ImportResult, errors: list[RowError]) -> None:
    assert result.import_id is not None
    errors.sort(key=lambda e: e.row)
    result.errors = errors
    result.refused = len({e.row for e in errors})
    result.accepted = result.rows - result.refused
    copy_rows(
        conn,
        import_errors,
        ("import_id", "row", "field", "reason"),
        ((result.import_id, e.row, e.field[:80], e.reason[:300]) for e in errors),
    )
    conn.execute(
        update(imports)
        .where(imports.c.id == result.import_id)
        .values(
            rows_total=result.rows,
            accepted=result.accepted,
            refused=result.refused,
            duplicates=result.duplicates,
            merged=result.merged,
        )
    )


def import_customers(
    conn: Connection, hasher: Hasher, path: Path, shape: csvfile.Shape, *, now: datetime
) -> CustomerImport:
    """The customer export, within the caller's transaction."""
    found, import_id = _start(conn, CRM_SOURCE, path, shape, now)
    if found is not None:
        return CustomerImport(found)
    result = ImportResult(CRM_SOURCE, path.name, shape.sha256, IMPORTED, import_id)
    outcome = CustomerImport(result)
    records = csvfile.records(path, shape)
    header = next(records, None)
    if header is None:
        raise FileRefused(path.name, "empty_file: no header row")
    reader = CustomerReader(path.name, header[1], current_digest(hasher))
    merger = Merger(
        conn,
        hasher.key_id,
        now,
        customer=True,
        authoritative=True,
        rotation=Rotation.of(conn, hasher, now),
    )
    errors: list[RowError] = []
    batch: list[Customer] = []
    last_row = 1  # the header
    for row, cells in records:
        result.rows += 1
        last_row = row
        customer = reader.read(row, cells, errors)
        if customer is not None:
            batch.append(customer)
            if len(batch) >= BATCH:
                _store_customers(conn, merger, reader, batch, import_id, now, errors, outcome)
                batch = []
    _refuse_cut(path, shape, last_row)
    _store_customers(conn, merger, reader, batch, import_id, now, errors, outcome)
    merger.close()
    result.duplicates = merger.counts[DUPLICATE]
    result.merged = merger.counts[MERGED]
    result.new_contacts = merger.counts[NEW]
    _finish(conn, result, errors)
    return outcome


def _store_customers(
    conn: Connection,
    merger: Merger,
    reader: CustomerReader,
    batch: list[Customer],
    import_id: int,
    now: datetime,
    errors: list[RowError],
    outcome: CustomerImport,
) -> None:
    if not batch:
        return
    known = dict(
        conn.execute(
            select(customers.c.customer_id, customers.c.contact_id).where(
                customers.c.customer_id.in_([c.customer_id for c in batch])
            )
        ).all()
    )
    ids = merger.merge(
        batch,
        pinned=[known.get(c.customer_id) for c in batch],
        claims=[c.customer_id for c in batch],
    )
    added: list[tuple[int, Customer]] = []
    updated: list[dict[str, Any]] = []
    for contact_id, c in zip(ids, batch, strict=True):
        if contact_id is None:
            field = reader.label("email" if c.email else "phone")
            errors.append(RowError(c.row, field, IDENTITY_CONFLICT))
        elif c.customer_id in known:
            updated.append(
                {
                    "_cid": c.customer_id,
                    "imported_at": now,
                    **{k: getattr(c, k) for k in _CUSTOMER_COLUMNS},
                }
            )
        else:
            added.append((contact_id, c))
    copy_rows(
        conn,
        customers,
        ("contact_id", "customer_id", *_CUSTOMER_COLUMNS, "imported_at"),
        (
            (cid, c.customer_id, *(getattr(c, k) for k in _CUSTOMER_COLUMNS), now)
            for cid, c in added
        ),
    )
    copy_rows(
        conn,
        contact_sources,
        ("contact_id", "source", "source_ref", "import_id", "imported_at"),
        ((cid, CRM_SOURCE, c.customer_id, import_id, now) for cid, c in added),
    )
    if updated:
        conn.execute(
            update(customers)
            .where(customers.c.customer_id == bindparam("_cid"))
            .values({k: bindparam(k) for k in (*_CUSTOMER_COLUMNS, "imported_at")}),
            updated,
        )
    outcome.customers_added += len(added)
    outcome.customers_updated += len(updated)


def _refuse_cut(path: Path, shape: csvfile.Shape, last_row: int) -> None:
    """A file whose last line has no line ending may have been cut inside its last row,
    after a delimiter or inside a value ("ja" cut to "j" still reads as yes); a file of
    a header alone is an export that went wrong, not a list of no one."""
    if last_row == 1:
        raise FileRefused(path.name, f"{csvfile.EMPTY_FILE}: a header and no rows")
    if not shape.ends_line:
        raise FileRefused(
            path.name,
            f"{csvfile.TRUNCATED}: row {last_row}: the last line has no line ending, so the file "
            "may have been cut inside it; an export ends every row with one",
        )


def _refuse_shrink(
    conn: Connection, path: Path, rows: int, import_id: int, max_shrink: float
) -> None:
    """FileRefused when the list is shorter than at the last load by more than `max_shrink`."""
    last = conn.execute(
        select(imports.c.rows_total)
        .where(imports.c.source == ALARM_SOURCE, imports.c.id != import_id)
        .order_by(imports.c.id.desc())
        .limit(1)
    ).scalar()
    if not last or rows >= last:
        return
    shrink = (last - rows) / last
    if shrink > max_shrink:
        raise FileRefused(
            path.name,
            f"{SHRINK}: the alarm contacts would shrink by {shrink:.1%} (from {last} rows at "
            f"the last load to {rows}), more than the {max_shrink:.0%} allowed "
            "(OUTREACH_ALARM_MAX_SHRINK); nothing imported and the previous list stays in "
            "force. Check the export; if the shrink is meant, import again with --allow-shrink",
        )


def import_alarm_contacts(
    conn: Connection,
    hasher: Hasher,
    path: Path,
    shape: csvfile.Shape,
    *,
    now: datetime,
    max_shrink: float | None = MAX_SHRINK,
) -> tuple[ImportResult, int]:
    """Alarm contacts as ledger exclusions (ALL-3), within the caller's transaction.

    Returns the file's result and how many ledger entries were new. FileRefused (the
    caller's transaction then stores nothing) for any row that cannot be read
    (RowsRefused), a file that may be cut, and a list shorter than at the last load by
    more than `max_shrink` (None: by any fraction).
    """
    found, import_id = _start(conn, ALARM_SOURCE, path, shape, now)
    if found is not None:
        return found, 0
    result = ImportResult(ALARM_SOURCE, path.name, shape.sha256, IMPORTED, import_id)
    records = csvfile.records(path, shape)
    header = next(records, None)
    if header is None:
        raise FileRefused(path.name, "empty_file: no header row")
    reader = AlarmContactReader(
        path.name,
        header[1],
        current_digest(hasher),
        (lambda kind, value: hasher.keyed_all(kind, value)[1:])
        if hasher.previous_key_ids
        else None,
    )
    ledger = Ledger(conn, hasher)
    errors: list[RowError] = []
    added = 0

    last_row = [1]  # the header

    def entries() -> Iterator[AlarmContact]:
        for row, cells in records:
            result.rows += 1
            last_row[0] = row
            yield from reader.read(row, cells, errors)

    batch: list[dict[str, object]] = []
    for contact in entries():
        batch.extend(_exclusion(contact, hasher, now))
        if len(batch) >= BATCH:
            added += ledger.add_many(batch)
            batch = []
    added += ledger.add_many(batch)
    _refuse_cut(path, shape, last_row[0])
    if errors:
        raise RowsRefused(path.name, sorted(errors, key=lambda e: e.row))
    if max_shrink is not None:
        _refuse_shrink(conn, path, result.rows, import_id, max_shrink)
    _finish(conn, result, errors)
    return result, added


def _exclusion(contact: AlarmContact, hasher: Hasher, now: datetime) -> list[dict[str, object]]:
    """The exclusion's rows: under the current key, and during a rotation under every
    other configured key too (suppression.keys)."""
    keys: Sequence[KeyedHash] = (KeyedHash(hasher.key_id, contact.digest), *contact.previous)
    # ALL-3: exclusion, not suppression: nothing ever lifts it (ALL-5).
    return entry_rows(
        keys,
        identity_kind=contact.identity_kind,
        kind="exclusion",
        scope="all",
        reason=ALARM_CONTACT,
        source=ALARM_SOURCE,
        source_event=f"alarm_contact:{contact.customer_id or 'unknown'}",
        evidence_ref=f"customer:{contact.customer_id}" if contact.customer_id else "",
        occurred_at=now,
        recorded_at=now,
        actor="crm",
    )


__all__ = [
    "ALARM_SOURCE",
    "ALREADY_IMPORTED",
    "CRM_SOURCE",
    "NOT_IMPORTED",
    "CustomerImport",
    "RowsRefused",
    "import_alarm_contacts",
    "import_customer_files",
    "import_customers",
]
