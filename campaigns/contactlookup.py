"""Finding the contacts a merge batch joins (`campaigns.merge`), and locking them.

Set-based: each batch's hashes are joined with `contacts` in one statement (an array
parameter on PostgreSQL, a temporary table on SQLite). With a `KeyFilter` only the
hashes it cannot rule out are looked up (a large file: nearly none).

The contacts found are locked FOR NO KEY UPDATE until the caller commits: none is
deleted under the contact sources and consent records the caller writes for them (what
a foreign key would do row by row; see campaigns.schema), and none is changed between
this read and the write of its filled fields. (FOR KEY SHARE would not wait for another
import filling a name or an address, and writing back the contact as read here would
then drop what that import filled.) A concurrent import of the same people waits for
this one and reads what it committed; an erasure waits too (`campaigns.people.forget`).

SQLite has no row locks: a writing transaction holds the whole database from its first
write to its commit, but what it read before that first write may be stale by then.
`lock_for_writing` takes the database before the first read (an import's first statement
already writes; an erasure reads first).

A number the call centre reported as not this person's (campaigns.calllist.outcomes) was
detached from the contact; the contacts found here that have no phone carry the pairings
kept of them (`BatchContact.detached`), and `ContactLookup.kept_off` says whether a row's
number is one of them: the merge then does not attach it again (`pairing`).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    bindparam,
    func,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from campaigns import rekeying
from campaigns.bulkcopy import copy_rows
from campaigns.keyfilter import KeyFilter
from campaigns.rekeying import Rotation
from campaigns.schema import contacts, customers, wrong_numbers

_EMAIL, _PHONE = 1, 2
_keys = Table(
    "merge_keys",
    MetaData(),
    Column("kind", Integer, nullable=False),
    Column("key_hash", LargeBinary, nullable=False),
)
# SQLite's lookups join this table (PostgreSQL's take an array parameter).
_CREATE_KEYS: Final = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS merge_keys "
    "(kind INTEGER NOT NULL, key_hash BLOB NOT NULL)"
)
# A contact's own values, in this order in `BatchContact.v`, in the COPY of new contacts
# (campaigns.merge) and in what `Merger(values=...)` returns.
FIELDS: Final = (
    "email",
    "email_hash",
    "phone",
    "phone_type",
    "phone_hash",
    "first_name",
    "last_name",
    "street",
    "postal_code",
    "city",
    "name_address_hash",
)
_E, _EH, _P, _PT, _PH, _FN, _LN, _ST, _PC, _CI, _NAH = range(len(FIELDS))
# What a found contact is read with here, and written back with (campaigns.merge).
UPDATE_COLUMNS: Final = (*FIELDS, "is_partner_lead", "is_customer")
_PAIRING: Final = b"outreach wrong number\x00"
# The consent channels a number serves: a newer consent for one of them names the number.
_PHONE_CHANNELS: Final = frozenset({"sms", "call"})
_CHUNK: Final = 5_000  # contact ids a query (SQLite takes 32,766 parameters)


def pairing(contact_id: int, phone_digest: bytes) -> bytes:
    """The keyed digest of the pairing of a contact and a number (a wrong number,
    `wrong_numbers`): SHA-256 of the contact id and the number's keyed digest under one
    key, so keyed by that key like the digest it is made of (suppression.keys), and
    computed from what a merge holds (a row's digests, not the key). One per configured
    key is written, as for a ledger entry."""
    return hashlib.sha256(_PAIRING + contact_id.to_bytes(8, "big") + phone_digest).digest()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def lock_for_writing(conn: Connection) -> None:
    """SQLite: hold the database's write lock from here to the commit (BEGIN IMMEDIATE,
    waiting up to the connection's timeout), so that nothing read after this changes
    before this transaction's writes. PostgreSQL locks rows as they are read instead.

    pysqlite (legacy transaction control, SQLAlchemy's default) opens its transaction
    only at the first INSERT/UPDATE/DELETE; before that nothing has begun at the driver,
    and BEGIN IMMEDIATE opens it. After a write the lock is held already."""
    if conn.dialect.name != "sqlite":
        return
    if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Incoming(rekeying.Incoming, Protocol):
    """What a row brings to merge: canonical identities, their hashes, names, address
    (the plaintext and digests a rekey reads, and these)."""

    @property
    def phone_type(self) -> str | None: ...
    @property
    def city(self) -> str | None: ...


class BatchContact:
    """A contact as this batch sees it: loaded from the store, or created by a row that
    another row of the batch joined (a row nobody joins stays a plain row: cheaper)."""

    __slots__ = (
        "claim",
        "created",
        "detached",
        "dirty",
        "id",
        "is_customer",
        "is_partner_lead",
        "own",
        "pos",
        "v",
    )

    def __init__(self, v: list[Any], *, created: bool, own: bool) -> None:
        self.v = v  # FIELDS
        self.id = 0
        self.is_partner_lead = False
        self.is_customer = False
        self.created = created  # created by this batch, not yet written
        self.own = own  # created by this import
        self.dirty = False
        self.pos = 0  # place among the batch's new contacts
        self.claim: str | None = None  # the customer id it belongs to (CRM import)
        # Wrong numbers detached from it: pairing digest -> when the last was reported.
        self.detached: dict[bytes, datetime] | None = None

    @property
    def erased(self) -> bool:
        v = self.v
        return (v[_EH] is not None and v[_E] is None) or (v[_PH] is not None and v[_P] is None)


class ContactLookup:
    """Finds and locks the contacts of a merge's batches within the caller's transaction,
    and tells those this import created (`remember`) from those it found."""

    def __init__(
        self, conn: Connection, known: KeyFilter | None, rotation: Rotation | None = None
    ) -> None:
        self.conn = conn
        self.known = known
        self.rotation = rotation
        self._own: list[tuple[int, int]] = []  # id ranges this import created, sorted
        if conn.dialect.name != "postgresql":
            conn.execute(text(_CREATE_KEYS))
        else:
            # The lookups' cost estimates (a probe per hash, up to tens of thousands)
            # pass jit_above_cost: compiling them took longer than running them.
            conn.execute(text("SET LOCAL jit = off"))

    def close(self) -> None:
        """Drop SQLite's temporary table of keys."""
        if self.conn.dialect.name != "postgresql":
            self.conn.execute(text("DROP TABLE IF EXISTS merge_keys"))

    def load(
        self, batch: Sequence[Incoming], pinned: Sequence[int | None] | None, with_claims: bool
    ) -> tuple[dict[bytes, Any], dict[bytes, Any], dict[int, BatchContact]]:
        """The contacts holding any of the batch's emails or phones (or pinned ids),
        locked FOR NO KEY UPDATE."""
        conn = self.conn
        known = self.known
        if self.rotation is not None:
            # Contacts under a previous key move to the current one first, so that the
            # lookups below (current digests only) find them (campaigns.rekeying).
            moved = self.rotation.before_lookup(batch)
            if known is not None:
                known.add_all(moved)
        emails = [r.email_hash for r in batch if r.email_hash is not None]
        phones = [r.phone_hash for r in batch if r.phone_hash is not None]
        if known is not None:
            # Only what it may hold is looked up; what this batch creates or fills is
            # held from now on (refused rows' hashes too: a "maybe" costs a lookup,
            # never a wrong answer).
            emails = known.screen(emails)
            phones = known.screen(phones)
        ids = sorted({p for p in pinned or () if p is not None})
        by_email: dict[bytes, Any] = {}
        by_phone: dict[bytes, Any] = {}
        by_id: dict[int, BatchContact] = {}
        if not emails and not phones and not ids:
            return by_email, by_phone, by_id
        c = contacts.c
        columns: list[Any] = [contacts.c[name] for name in ("id", *UPDATE_COLUMNS)]
        if with_claims:
            columns.append(
                select(customers.c.customer_id)
                .where(customers.c.contact_id == contacts.c.id)
                .scalar_subquery()
                .label("claim")
            )
        # One statement per kind (a row lock is not allowed over a UNION, and an OR
        # of the two would scan every contact); phones of contacts an email found are
        # not looked up again.
        for kind, hashes, column in (
            (_EMAIL, emails, c.email_hash),
            (_PHONE, phones, c.phone_hash),
        ):
            if kind == _PHONE and by_phone:
                hashes = [h for h in hashes if h not in by_phone]
            if not hashes:
                continue
            if conn.dialect.name == "postgresql":
                # One round trip: a temporary table cost a TRUNCATE, a COPY and the
                # join (three quarters of a million-row import's lookup time).
                found = conn.execute(_pg_lookup(columns, column), {"keys": hashes}).all()
            else:
                conn.execute(_keys.delete())
                copy_rows(conn, _keys, ("kind", "key_hash"), [(kind, h) for h in hashes])
                found = conn.execute(self._lookup(columns, kind, column)).all()
            self._hold(found, by_email, by_phone, by_id)
        if ids:
            query = select(*columns).where(c.id.in_(ids)).with_for_update(key_share=True)
            self._hold(conn.execute(query).all(), by_email, by_phone, by_id)
        if any(r.phone_hash is not None for r in batch):
            self._load_detached(by_id)
        return by_email, by_phone, by_id

    def _load_detached(self, by_id: dict[int, BatchContact]) -> None:
        """The wrong-number pairings of the found contacts without a phone (only those
        can be given one by a row), in one query per few thousand."""
        phoneless = {cid: held for cid, held in by_id.items() if held.v[_PH] is None}
        ids = sorted(phoneless)
        w = wrong_numbers.c
        for start in range(0, len(ids), _CHUNK):
            for cid, pair, reported_at in self.conn.execute(
                select(w.contact_id, w.pairing_hash, w.reported_at).where(
                    w.contact_id.in_(ids[start : start + _CHUNK])
                )
            ):
                held = phoneless[int(cid)]
                found = held.detached = held.detached or {}
                pair, when = bytes(pair), _utc(reported_at)
                if pair not in found or found[pair] < when:
                    found[pair] = when

    def kept_off(self, contact: BatchContact, row: Incoming) -> bool:
        """Whether `row`'s number was reported as not this contact's, with no new evidence
        since: then it is not attached to the contact again (issue: a wrong number).

        New evidence is what the row brings itself: a consent for SMS or calls given after
        the last report (a partner's newer consent record, which names the number). A CRM
        row or an older consent repeats the claim the call centre found wrong."""
        if not contact.detached or row.phone_hash is None:
            return False
        digests = [row.phone_hash]
        if self.rotation is not None and row.phone is not None:
            # Reported under a key that is a previous one now (written under each then).
            hasher = self.rotation.hasher
            digests += [hasher.digest("phone", row.phone, k) for k in self.rotation.previous]
        reported = [
            when
            for d in digests
            if (when := contact.detached.get(pairing(contact.id, d))) is not None
        ]
        if not reported:
            return False
        given_at: datetime | None = getattr(row, "given_at", None)
        channels = set(str(getattr(row, "channels", "") or "").split(","))
        newer = given_at is not None and _utc(given_at) > max(reported)
        return not (newer and channels & _PHONE_CHANNELS)

    def _hold(
        self,
        rows: Iterable[Any],
        by_email: dict[bytes, Any],
        by_phone: dict[bytes, Any],
        by_id: dict[int, BatchContact],
    ) -> None:
        for found in rows:
            contact_id = found[0]
            if contact_id in by_id:
                continue
            v = list(found[1:12])
            for at in (_EH, _PH, _NAH):
                if isinstance(v[at], memoryview):
                    v[at] = bytes(v[at])
            held = BatchContact(v, created=False, own=self._is_own(contact_id))
            held.id = contact_id
            held.is_partner_lead = bool(found[12])
            held.is_customer = bool(found[13])
            held.claim = found[14] if len(found) > 14 else None
            by_id[contact_id] = held
            if v[_EH] is not None:
                by_email[v[_EH]] = held
            if v[_PH] is not None:
                by_phone[v[_PH]] = held

    def _lookup(self, columns: list[Any], kind: int, column: Any) -> Any:
        """SQLite: the contacts holding a hash of `kind` in merge_keys."""
        keys = _keys.alias("k")
        held = select(keys.c.key_hash).where(keys.c.kind == kind)
        return select(*columns).where(column.in_(held))

    def _is_own(self, contact_id: int) -> bool:
        i = bisect.bisect_right(self._own, (contact_id, float("inf"))) - 1
        return i >= 0 and self._own[i][0] <= contact_id <= self._own[i][1]

    def remember(self, ids: list[int]) -> None:
        """Contacts this import created: found again, they are its own (a duplicate)."""
        ranges = self._own
        for contact_id in sorted(ids):
            if ranges and ranges[-1][1] + 1 == contact_id:
                ranges[-1] = (ranges[-1][0], contact_id)
            else:
                bisect.insort(ranges, (contact_id, contact_id))


def _pg_lookup(columns: list[Any], column: Any) -> Any:
    """PostgreSQL: the contacts whose `column` is one of the hashes in the array parameter
    `keys`, locked FOR NO KEY UPDATE.

    One index probe per hash, whatever the planner thinks of the array's size: a hash
    join would read every contact for each batch. (LATERAL with LIMIT 1 is never
    flattened into a join; each hash is unique, so LIMIT 1 drops nothing.)
    """
    keys = (
        func.unnest(bindparam("keys", type_=ARRAY(LargeBinary)))
        .table_valued("h")
        .render_derived(name="k")
    )
    found = (
        select(*columns)
        .where(column == keys.c.h)
        .limit(1)
        .with_for_update(key_share=True, of=contacts)  # FOR NO KEY UPDATE
        .lateral("found")
    )
    return select(found).select_from(keys).join(found, true())
