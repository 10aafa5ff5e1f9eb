"""The audience joined with the big tables at once: the ledger (every channel), the
register (calls and post) and the sends that count towards the frequency cap (ALL-8).
Each is one query per launch, not one per chunk of contacts, streamed in contact id
order and read in step with the chunks (`InStep`). `campaigns.decisions` has the
per-chunk queries and the way both read rows."""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    cast,
    func,
    select,
    true,
    union_all,
)

from campaigns.campaign_schema import recipients
from campaigns.decisions import (
    COUNTED_STATES,
    HASH_COLUMNS,
    LEDGER_COLUMNS,
    among,
    fetched,
    streamed,
    tuples,
)
from campaigns.schema import contacts
from suppression.ledger import Status, distinct_facts, entry_from_values
from suppression.policy import RegisterFacts
from suppression.register import Snapshot
from suppression.schema import ledger_entries, register_entries


def recent_hits(
    conn: Connection, since: datetime, sending: Sequence[int]
) -> Generator[tuple[int, int], None, None]:
    """(contact id, recorded marketing sends since `since`, all channels: ALL-8) for the
    contacts with any in the campaigns `sending`, in contact id order, streamed: one query
    per launch, which reads the rows of those campaigns once (by campaign; the planner
    cannot pick a contact range over a history that a per-chunk query would make it walk,
    nor a campaign index per chunk over a campaign it has no statistics of yet)."""
    if not sending:
        return
    query = (
        select(recipients.c.contact_id, func.count())
        .where(
            among(conn, recipients.c.campaign_id, sending),
            recipients.c.state.in_(COUNTED_STATES),
            func.coalesce(recipients.c.sent_at, recipients.c.updated_at) >= since,
        )
        .group_by(recipients.c.contact_id)
        .order_by(recipients.c.contact_id)
    )
    for rows in streamed(conn, query):
        for contact_id, count in rows:
            yield int(contact_id), int(count)


T = TypeVar("T")


class InStep(Generic[T]):
    """Per-contact facts from a stream ordered by contact id, read in step with the
    audience's contacts: `upto(high)` gives those of the contacts up to `high` and keeps
    the rest unread. Memory is what one chunk of contacts has."""

    def __init__(self, stream: Iterator[tuple[int, T]]) -> None:
        self._stream = stream
        self._next: tuple[int, T] | None = next(stream, None)

    def upto(self, high: int) -> dict[int, T]:
        found: dict[int, T] = {}
        while self._next is not None and self._next[0] <= high:
            found[self._next[0]] = self._next[1]
            self._next = next(self._stream, None)
        return found


def _who(audience: Select[Any]) -> ColumnElement[bool]:
    """The audience query's filter on contacts, to join other tables under it."""
    where = audience.whereclause
    return true() if where is None else where


def ledger_hits(
    conn: Connection, audience: Select[Any]
) -> Generator[tuple[int, Status], None, None]:
    """(contact id, ledger status over all of the contact's identities) for the audience's
    contacts that have ledger entries, in contact id order, streamed.

    One join of every identity hash of the audience (all three columns) with the
    ledger, not a query per chunk nor a join per column: the planner joins the whole
    audience with the ledger at once (a hash join for a big audience, index probes for
    a small one), and the ledger is read once per launch."""
    keys = union_all(
        *(
            select(contacts.c.id.label("contact_id"), contacts.c[col].label("key_hash")).where(
                _who(audience)
            )
            for col in HASH_COLUMNS
        )
    ).subquery()
    # First the pairs (contact, entry) alone, in a query the server may run on several
    # cores (a cursor kept open between fetches may not): a launch waits for this join
    # before it can decide anyone. Then the entries themselves, a slice at a time.
    pairs = (
        select(keys.c.contact_id, ledger_entries.c.id)
        .select_from(ledger_entries.join(keys, ledger_entries.c.key_hash == keys.c.key_hash))
        .order_by(keys.c.contact_id, ledger_entries.c.id)
    )
    current: int | None = None
    status = Status()
    with closing(fetched(conn, pairs)) as batches:
        for batch in batches:
            ids = list({entry_id for _cid, entry_id in batch})
            found = {
                int(values[0]): entry_from_values(*values)
                for values in tuples(
                    conn, select(*LEDGER_COLUMNS).where(among(conn, ledger_entries.c.id, ids))
                )
            }
            for cid, entry_id in batch:
                if cid != current:
                    if current is not None:
                        status.entries.sort(key=lambda e: (e.occurred_at, e.id))
                        status.entries = distinct_facts(status.entries)
                        yield current, status
                    current, status = cid, Status()
                status.entries.append(found[int(entry_id)])
    if current is not None:
        status.entries.sort(key=lambda e: (e.occurred_at, e.id))
        status.entries = distinct_facts(status.entries)
        yield current, status


def register_hits(
    conn: Connection, audience: Select[Any], snapshot: Snapshot
) -> Generator[tuple[int, RegisterFacts], None, None]:
    """(contact id, register reservations under its phone or name+address) for the
    audience's contacts listed in the snapshot, in contact id order, streamed; one join
    for the whole audience, as `ledger_hits` (and like its pairs, sent all at once, so that
    the server may join in parallel: a few hundred thousand small rows at most)."""
    in_snapshot = (
        # "+ 0": SQLite would probe the snapshot_id index (every row of it). PostgreSQL
        # would take it for a rare value and probe the contacts once per register entry.
        register_entries.c.snapshot_id + 0 == snapshot.id
        if conn.dialect.name == "sqlite"
        else register_entries.c.snapshot_id == snapshot.id
    )
    branches = [
        select(
            contacts.c.id.label("contact_id"),
            cast(register_entries.c.reserved_phone, Integer).label("phone"),
            cast(register_entries.c.reserved_post, Integer).label("post"),
        )
        .select_from(
            contacts.join(
                register_entries,
                and_(register_entries.c.key_hash == contacts.c[col], in_snapshot),
            )
        )
        .where(_who(audience))
        for col in ("phone_hash", "name_address_hash")
    ]
    hits = union_all(*branches).subquery()
    query = (
        select(hits.c.contact_id, func.max(hits.c.phone), func.max(hits.c.post))
        .group_by(hits.c.contact_id)
        .order_by(hits.c.contact_id)
    )
    with closing(fetched(conn, query)) as rows:
        for cid, phone, post in itertools.chain.from_iterable(rows):
            yield (
                int(cid),
                RegisterFacts(
                    snapshot.snapshot_date,
                    snapshot.loaded_at,
                    reserved_phone=bool(phone),
                    reserved_post=bool(post),
                ),
            )
