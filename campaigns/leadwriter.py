"""Storing the accepted leads of an import, batch by batch, on the import's connection.

A batch is merged by identity into contacts (`campaigns.merge`); each lead kept gets
its contact source and its consent record, once: a row repeated in a file (the same
contact, the same consent evidence) adds no second consent record, and the same lead
id of the same contact no second source. On PostgreSQL a `Writer` does the writes
from a thread of its own while the import reads and merges on.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, select

from campaigns.bulkcopy import PreparedCopy
from campaigns.merge import CONFLICT, Merger, Task
from campaigns.schema import consent_records, contact_sources
from campaigns.sources.leadreader import LeadReader
from campaigns.sources.partner import IDENTITY_CONFLICT, Lead
from suppression.errors import RowError

_LEAD_ID: Final = Lead._fields.index("lead_id")
_EVIDENCE_END: Final = Lead._fields.index("multi_company_form") + 1
_SOURCE_COLUMNS: Final = ("contact_id", "source", "source_ref", "import_id", "imported_at")
_CONSENT_COLUMNS: Final = (
    "contact_id",
    "import_id",
    "source",
    "source_ref",  # Lead.lead_id
    "given_at",
    "channels",
    "wording_version",
    "captured_at",
    "company_named",
    "explicit_call_request",
    "multi_company_form",
    "from_partner",
    "recorded_at",
)
assert Lead._fields[_LEAD_ID:_EVIDENCE_END] == (
    "lead_id",
    *_CONSENT_COLUMNS[4:11],
), "Lead's evidence fields must stay in consent_records' column order"
_EVIDENCE_COLUMNS: Final = ("contact_id", "source_ref", *_CONSENT_COLUMNS[4:11])
_LOOKUP_CHUNK: Final = 5_000  # contact ids a query (SQLite takes 32,766 parameters)
Kept = list[tuple[int, Lead]]


class Writer:
    """Runs the import's writes (the COPY of a merged batch's rows) on its connection, in
    order, from a thread of its own, while the import reads, validates and merges the
    next batch (PostgreSQL only: the server does its share in its own process).

    Only the writes are here: the thread mostly waits for the server, so the reading
    thread keeps the GIL. (With the merge in this thread too, the two threads fought
    for the GIL and a million-row import took as long as their CPU time and the
    server's added together.) Reads of the connection (a merge's lookups) come after
    `drain`, when this thread is idle. The first error of a write is re-raised by
    `drain` or `close`; writes after it are dropped.
    """

    def __init__(self) -> None:
        _handoff.enter()
        self._queue: queue.Queue[Task | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None  # the first, kept: later writes are dropped
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                if self._error is None:
                    task()
            except BaseException as exc:  # handed to the importing thread by drain()
                self._error = exc
            finally:
                self._queue.task_done()

    def submit(self, task: Task) -> None:
        self._raise()
        self._queue.put(task)

    def drain(self) -> None:
        """Return when every write submitted is done; raise the first error of one."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Drain, stop the thread, raise the first error of a write."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
            _handoff.leave()
        self._raise()

    def abort(self) -> None:
        """Stop after the write in hand, dropping the rest and any error of writing."""
        self._error = self._error or _Aborted()
        with contextlib.suppress(BaseException):
            self.close()

    def _raise(self) -> None:
        if self._error is not None and not isinstance(self._error, _Aborted):
            raise self._error


class _Handoff:
    """The interpreter's thread switch interval, short while any Writer runs.

    The writer thread needs the GIL only for moments (to hand the server the next part
    of a batch), but at each it waits for the reading thread to give the GIL up, which
    a busy thread does every switch interval (5 ms by default). With dozens of such
    waits a batch, the writer fell behind and the reading thread waited for it at
    every batch: 4 to 7 s of a million-row import. At 0.2 ms these waits are gone
    (0.1 s); the cost of the more frequent checks is within the noise. The interval
    is process-wide: it is restored when the last Writer closes.
    """

    INTERVAL: Final = 0.0002

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writers = 0
        self._saved = sys.getswitchinterval()

    def enter(self) -> None:
        with self._lock:
            if self._writers == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, self.INTERVAL))
            self._writers += 1

    def leave(self) -> None:
        with self._lock:
            self._writers -= 1
            if self._writers == 0:
                sys.setswitchinterval(self._saved)


_handoff = _Handoff()


class _Aborted(Exception):
    """Marks a writer told to stop: writes still queued are not done."""


def store(
    conn: Connection,
    merger: Merger,
    reader: LeadReader,
    batch: list[Lead],
    source: str,
    import_id: int,
    now: datetime,
    errors: list[RowError],
) -> None:
    """Merge one batch, then record each kept lead's contact source and consent record
    (written by the merger's `submit`); a lead whose identities belong to two contacts
    is an IDENTITY_CONFLICT in `errors`."""
    if not batch:
        return
    conflicts = merger.counts[CONFLICT]
    ids = merger.merge(batch)
    kept: list[tuple[int, Lead]] = []
    if merger.counts[CONFLICT] != conflicts:
        label = reader.labels["email"] if "email" in reader.labels else reader.labels["phone"]
        for contact_id, lead in zip(ids, batch, strict=True):
            if contact_id is None:
                errors.append(RowError(lead.row, label, IDENTITY_CONFLICT))
            else:
                kept.append((contact_id, lead))
    else:
        kept = list(zip(ids, batch, strict=True))  # type: ignore[arg-type]
    if merger.erased:
        # ALL-4: an erased person's no stays; no new source or consent joins it.
        kept = [(cid, lead) for cid, lead in kept if cid not in merger.erased]
    held: Kept = []
    with_consent = with_source = kept
    joined = merger.joined_held
    if joined or len({cid for cid, _ in kept}) != len(kept):
        # Rows of one person: the batch's own repeats go now; for the contacts from the
        # store, what an earlier batch recorded is asked when writing (`_write_held`).
        held = [(cid, lead) for cid, lead in kept if cid in joined]
        fresh = [(cid, lead) for cid, lead in kept if cid not in joined] if held else kept
        with_consent, with_source = _once(fresh, set(), set())

    # Formatted here, sent by the writer thread (`PreparedCopy`).
    write_sources = PreparedCopy(
        conn, contact_sources, _SOURCE_COLUMNS, _sources(with_source, source, import_id, now)
    )
    write_consents = PreparedCopy(
        conn, consent_records, _CONSENT_COLUMNS, _consents(with_consent, source, import_id, now)
    )

    def write() -> None:
        write_sources()
        write_consents()
        if held:
            _write_held(conn, held, source, import_id, now)

    merger.submit(write)


def _sources(kept: Kept, source: str, import_id: int, now: datetime) -> list[tuple[Any, ...]]:
    return [(cid, source, lead[_LEAD_ID], import_id, now) for cid, lead in kept]


def _consents(kept: Kept, source: str, import_id: int, now: datetime) -> list[tuple[Any, ...]]:
    # A consent record is the lead's evidence fields (lead_id .. multi_company_form,
    # in Lead's order) between the ids and the constants.
    return [
        (cid, import_id, source, *lead[_LEAD_ID:_EVIDENCE_END], True, now) for cid, lead in kept
    ]


def _once(
    kept: Kept, recorded: set[tuple[Any, ...]], referred: set[tuple[Any, ...]]
) -> tuple[Kept, Kept]:
    """(the rows that get a consent record, those that get a source): a row whose
    evidence (contact id, lead id .. multi_company_form) is `recorded` gets neither, one
    whose contact id and lead id are `referred` no source; both sets grow as it goes."""
    with_consent: Kept = []
    with_source: Kept = []
    for cid, lead in kept:
        evidence = (cid, *lead[_LEAD_ID:_EVIDENCE_END])
        if evidence in recorded:
            continue
        recorded.add(evidence)
        with_consent.append((cid, lead))
        ref = evidence[:2]
        if ref not in referred:
            referred.add(ref)
            with_source.append((cid, lead))
    return with_consent, with_source


def _write_held(conn: Connection, held: Kept, source: str, import_id: int, now: datetime) -> None:
    """Write the consents and sources of rows that joined a contact from the store, but
    none this import recorded already (in an earlier batch). Run by the writer, after
    the writes before it, so that it sees them."""
    recorded = _recorded(conn, import_id, sorted({cid for cid, _ in held}))
    # Every source this import wrote has a consent record with its contact and lead id.
    referred = {evidence[:2] for evidence in recorded}
    with_consent, with_source = _once(held, recorded, referred)
    if with_source:
        rows = _sources(with_source, source, import_id, now)
        PreparedCopy(conn, contact_sources, _SOURCE_COLUMNS, rows)()
    if with_consent:
        rows = _consents(with_consent, source, import_id, now)
        PreparedCopy(conn, consent_records, _CONSENT_COLUMNS, rows)()


def _recorded(conn: Connection, import_id: int, ids: list[int]) -> set[tuple[Any, ...]]:
    """The evidence this import recorded for these contacts, as `_once` compares it."""
    columns = [consent_records.c[name] for name in _EVIDENCE_COLUMNS]
    found: set[tuple[Any, ...]] = set()
    for at in range(0, len(ids), _LOOKUP_CHUNK):
        rows: Iterable[Any] = conn.execute(
            select(*columns).where(
                consent_records.c.import_id == import_id,
                consent_records.c.contact_id.in_(ids[at : at + _LOOKUP_CHUNK]),
            )
        )
        for r in rows:
            cid, ref, given_at, *texts, explicit, multi = r
            if given_at.tzinfo is None:  # SQLite hands back UTC without the zone
                given_at = given_at.replace(tzinfo=UTC)
            found.add((int(cid), ref, given_at, *texts, bool(explicit), bool(multi)))
    return found
