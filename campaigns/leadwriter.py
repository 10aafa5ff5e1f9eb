"""Storing the accepted leads of an import, batch by batch, on the import's connection.

A batch is merged by identity into contacts (`campaigns.merge`); each lead kept gets
its contact source and its consent record. On PostgreSQL a `Writer` stores the
batches from a thread of its own while the import reads on.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Final

from sqlalchemy import Connection

from campaigns.bulkcopy import copy_rows
from campaigns.merge import CONFLICT, Merger
from campaigns.schema import consent_records, contact_sources
from campaigns.sources.leadreader import LeadReader
from campaigns.sources.partner import IDENTITY_CONFLICT, Lead
from suppression.errors import RowError

_LEAD_ID: Final = Lead._fields.index("lead_id")
_EVIDENCE_END: Final = Lead._fields.index("multi_company_form") + 1
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
    """Stores batches on the import's connection from a thread of its own, so that the
    database works on one batch while the reader validates the next (PostgreSQL only:
    the server does its share in its own process). The connection is used by this
    thread alone until `close`, which returns when every batch is stored and re-raises
    the first error of storing."""

    def __init__(self, store: Callable[[list[Lead]], None]) -> None:
        self._store = store
        self._queue: queue.Queue[list[Lead] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._store(batch)
                except BaseException as exc:  # handed to the reading thread in close()
                    self._error = exc

    def put(self, batch: list[Lead]) -> None:
        if self._error is not None:
            self.close()
        self._queue.put(batch)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def abort(self) -> None:
        """Stop after the batch in hand, dropping the rest and any error of storing."""
        self._error = self._error or _Aborted()
        with contextlib.suppress(BaseException):
            self.close()


class _Aborted(Exception):
    """Marks a writer told to stop: batches still queued are not stored."""


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
    """Merge one batch, then record each kept lead's contact source and consent record;
    a lead whose identities belong to two contacts is an IDENTITY_CONFLICT in `errors`."""
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
    copy_rows(
        conn,
        contact_sources,
        ("contact_id", "source", "source_ref", "import_id", "imported_at"),
        [(cid, source, lead[_LEAD_ID], import_id, now) for cid, lead in kept],
    )
    # A consent record is the lead's evidence fields (lead_id .. multi_company_form,
    # in Lead's order) between the ids and the constants.
    copy_rows(
        conn,
        consent_records,
        _CONSENT_COLUMNS,
        [(cid, import_id, source, *lead[_LEAD_ID:_EVIDENCE_END], True, now) for cid, lead in kept],
    )
