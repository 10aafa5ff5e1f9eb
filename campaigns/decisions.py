"""Facts for many people at once: set-based queries per chunk of contacts, never one
query per person. Used by launch (all facts) and by the send-time check (ledger and
frequency cap only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
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
from campaigns.people import consent_facts, customer_facts
from campaigns.schema import consent_records, contacts, customers
from suppression.ledger import Entry, Status
from suppression.policy import ConsentFacts, CustomerFacts, RegisterFacts
from suppression.register import Snapshot
from suppression.schema import ledger_entries, register_entries

HASH_COLUMNS = ("email_hash", "phone_hash", "name_address_hash")
FETCH = 20_000  # rows per round trip of a streamed query
# The sends that count towards the frequency cap (ALL-8): sent, and those that may have been.
COUNTED_STATES = ("sent", "sending", "unknown")
ADDRESS_COLUMN = {
    "email": "email_hash",
    "sms": "phone_hash",
    "call": "phone_hash",
    "post": "name_address_hash",
}


def consents_by_contact(conn: Connection, low: int, high: int) -> dict[int, list[ConsentFacts]]:
    out: dict[int, list[ConsentFacts]] = defaultdict(list)
    result = conn.execute(
        select(consent_records).where(consent_records.c.contact_id.between(low, high))
    )
    keys = list(result.keys())
    # Plain dicts: a chunk is tens of thousands of rows, and a dict's lookups cost a tenth
    # of a RowMapping's.
    for values in result.all():
        row = dict(zip(keys, values, strict=True))
        out[int(row["contact_id"])].append(consent_facts(row))
    return out


def customers_by_contact(conn: Connection, low: int, high: int) -> dict[int, CustomerFacts]:
    rows = conn.execute(select(customers).where(customers.c.contact_id.between(low, high))).all()
    return {int(r.contact_id): customer_facts(r._mapping) for r in rows}


def recent_contacts(
    conn: Connection,
    contact_ids: Iterable[int],
    now: datetime,
    window_days: int,
    exclude_campaign: int | None,
) -> dict[int, int]:
    """Recorded marketing sends per contact in the window, all channels (ALL-8)."""
    ids = set(contact_ids)
    if not ids:
        return {}
    since = now - timedelta(days=window_days)
    # The ids' range rather than the ids (a chunk is tens of thousands: a parameter each
    # costs more to send and parse than the query takes); others in it are dropped below.
    query = (
        select(recipients.c.contact_id, func.count())
        .where(
            recipients.c.contact_id.between(min(ids), max(ids)),
            recipients.c.state.in_(COUNTED_STATES),
            func.coalesce(recipients.c.sent_at, recipients.c.updated_at) >= since,
        )
        .group_by(recipients.c.contact_id)
    )
    if exclude_campaign is not None:
        query = query.where(recipients.c.campaign_id != exclude_campaign)
    return {int(cid): int(n) for cid, n in conn.execute(query) if int(cid) in ids}


def register_by_contact(
    conn: Connection, snapshot: Snapshot | None, contact_rows: Sequence[Any]
) -> dict[int, RegisterFacts]:
    """Register reservations per contact (phone and name+address hashes)."""
    if snapshot is None:
        return {}
    owners: dict[bytes, list[int]] = defaultdict(list)
    for c in contact_rows:
        for col in ("phone_hash", "name_address_hash"):
            if c[col] is not None:
                owners[bytes(c[col])].append(int(c["id"]))
    flags: dict[int, list[bool]] = {}
    keys = list(owners)
    for start in range(0, len(keys), 5000):
        rows = conn.execute(
            select(
                register_entries.c.key_hash,
                register_entries.c.reserved_phone,
                register_entries.c.reserved_post,
            ).where(
                register_entries.c.snapshot_id == snapshot.id,
                register_entries.c.key_hash.in_(keys[start : start + 5000]),
            )
        )
        for digest, phone, post in rows:
            for cid in owners[bytes(digest)]:
                current = flags.setdefault(cid, [False, False])
                current[0] = current[0] or bool(phone)
                current[1] = current[1] or bool(post)
    return {
        cid: RegisterFacts(
            snapshot.snapshot_date, snapshot.loaded_at, reserved_phone=f[0], reserved_post=f[1]
        )
        for cid, f in flags.items()
    }


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


_LEDGER_COLUMNS = (
    ledger_entries.c.id,
    ledger_entries.c.key_hash,
    ledger_entries.c.kind,
    ledger_entries.c.scope,
    ledger_entries.c.reason,
    ledger_entries.c.source,
    ledger_entries.c.evidence_ref,
    ledger_entries.c.occurred_at,
    ledger_entries.c.actor,
)


def ledger_hits(conn: Connection, audience: Select[Any]) -> Iterator[tuple[int, Status]]:
    """(contact id, ledger status over all of the contact's identities) for the audience's
    contacts that have ledger entries, in contact id order, streamed.

    One equi-join per identity column, not a query per chunk: the planner joins the
    whole audience with the ledger at once (hash joins for a big audience, index probes
    for a small one), so the ledger is read once per launch."""
    branches = [
        select(contacts.c.id.label("contact_id"), *_LEDGER_COLUMNS)
        .select_from(contacts.join(ledger_entries, ledger_entries.c.key_hash == contacts.c[col]))
        .where(_who(audience))
        for col in HASH_COLUMNS
    ]
    hits = union_all(*branches).subquery()
    rows = conn.execute(
        select(hits).order_by(hits.c.contact_id), execution_options={"yield_per": FETCH}
    )
    current: int | None = None
    status = Status()
    for cid, entry_id, key_hash, kind, scope, reason, source, ref, at, actor in rows:
        if cid != current:
            if current is not None:
                status.entries.sort(key=lambda e: (e.occurred_at, e.id))
                yield current, status
            current, status = cid, Status()
        status.entries.append(
            Entry(
                int(entry_id), bytes(key_hash), kind, scope, reason, source, ref,
                at if at.tzinfo else at.replace(tzinfo=UTC), actor,
            )
        )  # fmt: skip
    if current is not None:
        status.entries.sort(key=lambda e: (e.occurred_at, e.id))
        yield current, status


def register_hits(
    conn: Connection, audience: Select[Any], snapshot: Snapshot
) -> Iterator[tuple[int, RegisterFacts]]:
    """(contact id, register reservations under its phone or name+address) for the
    audience's contacts listed in the snapshot, in contact id order, streamed; one join
    for the whole audience, as `ledger_hits`."""
    branches = [
        select(
            contacts.c.id.label("contact_id"),
            cast(register_entries.c.reserved_phone, Integer).label("phone"),
            cast(register_entries.c.reserved_post, Integer).label("post"),
        )
        .select_from(
            contacts.join(
                register_entries,
                and_(
                    register_entries.c.key_hash == contacts.c[col],
                    # "+ 0": SQLite would probe the snapshot_id index (every row of it).
                    register_entries.c.snapshot_id + 0 == snapshot.id,
                ),
            )
        )
        .where(_who(audience))
        for col in ("phone_hash", "name_address_hash")
    ]
    hits = union_all(*branches).subquery()
    rows = conn.execute(
        select(hits.c.contact_id, func.max(hits.c.phone), func.max(hits.c.post))
        .group_by(hits.c.contact_id)
        .order_by(hits.c.contact_id),
        execution_options={"yield_per": FETCH},
    )
    for cid, phone, post in rows:
        yield (
            int(cid),
            RegisterFacts(
                snapshot.snapshot_date,
                snapshot.loaded_at,
                reserved_phone=bool(phone),
                reserved_post=bool(post),
            ),
        )
