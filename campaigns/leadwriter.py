"""Storing the accepted leads of an import, batch by batch, on the import's connection.

A batch is merged by identity into contacts (`campaigns.merge`); each lead kept gets
its contact source and its consent record. On PostgreSQL a `Writer` does the writes
from a thread of its own while the import reads and merges on.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from datetime import datetime
from typing import Final

from sqlalchemy import Connection

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
    sources = [(cid, source, lead[_LEAD_ID], import_id, now) for cid, lead in kept]
    # A consent record is the lead's evidence fields (lead_id .. multi_company_form,
    # in Lead's order) between the ids and the constants.
    consents = [
        (cid, import_id, source, *lead[_LEAD_ID:_EVIDENCE_END], True, now) for cid, lead in kept
    ]

    # Formatted here, sent by the writer thread (`PreparedCopy`).
    write_sources = PreparedCopy(conn, contact_sources, _SOURCE_COLUMNS, sources)
    write_consents = PreparedCopy(conn, consent_records, _CONSENT_COLUMNS, consents)

    def write() -> None:
        write_sources()
        write_consents()

    merger.submit(write)
