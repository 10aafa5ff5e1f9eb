"""Merging incoming people into contacts by identity, a batch at a time.

One person, one contact: a row whose email or phone we already hold joins that
contact (a lead from two partners, a partner lead who is also a customer). The rule,
applied row after row in file order (so a row-by-row import gives the same result):

1. the row joins the contact holding its email, else the one holding its phone
   (the CRM import first pins the contact of a known customer id);
2. a row whose email and phone are held by two different contacts, or that would give
   a contact a second email or a second phone, is refused (`identity_conflict`):
   one contact holds one of each, and we do not guess which person is meant;
3. a contact's missing email, phone, names or address are filled from the row;
   nothing it holds is overwritten, except names and address from the CRM, which is
   authoritative for its customers. An erased contact (hashes without plaintext,
   ALL-4) is never filled with plaintext again.

Set-based: each batch's hashes go into a temporary table (binary COPY on PostgreSQL) that
is joined with `contacts`, new contacts are written with COPY under ids taken from the
sequence in one statement, and changed ones with one executemany. With a `KeyFilter`
only the hashes it cannot rule out are looked up (a large file: nearly none).

The contacts found are locked FOR NO KEY UPDATE until the caller commits: none is
deleted under the contact sources and consent records the caller writes for them (what
a foreign key would do row by row; see campaigns.schema), and none is changed between
this read and the write of its filled fields. (FOR KEY SHARE would not wait for another
import filling a name or an address, and writing back the contact as read here would
then drop what that import filled.) A concurrent import of the same people waits for
this one and reads what it committed; an erasure waits too (`campaigns.people.forget`).
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    bindparam,
    select,
    text,
    true,
    update,
)

from campaigns.bulkcopy import copy_rows
from campaigns.keyfilter import KeyFilter
from campaigns.schema import contacts, customers

# Outcomes per row: stable strings.
NEW: Final = "new"
MERGED: Final = "merged"  # joined a contact that existed before this import
DUPLICATE: Final = "duplicate"  # joined a contact an earlier row of this import created
CONFLICT: Final = "identity_conflict"

_EMAIL, _PHONE = 1, 2
_keys = Table(
    "merge_keys",
    MetaData(),
    Column("kind", Integer, nullable=False),
    Column("key_hash", LargeBinary, nullable=False),
)
_CREATE_KEYS = {
    "postgresql": "CREATE TEMPORARY TABLE IF NOT EXISTS merge_keys "
    "(kind integer NOT NULL, key_hash bytea NOT NULL) ON COMMIT DROP",
    "sqlite": "CREATE TEMPORARY TABLE IF NOT EXISTS merge_keys "
    "(kind INTEGER NOT NULL, key_hash BLOB NOT NULL)",
}
# A contact's own values, in this order in `_Contact.v`, in the COPY below and in what
# `Merger(values=...)` returns.
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
_values = operator.attrgetter(*FIELDS)
_INSERT_COLUMNS: Final = (
    "id",
    *FIELDS[:5],
    "key_id",
    *FIELDS[5:],
    "is_partner_lead",
    "is_customer",
    "created_at",
    "updated_at",
)
_UPDATE_COLUMNS: Final = (*FIELDS, "is_partner_lead", "is_customer")


class Incoming(Protocol):
    """What a row brings to merge: canonical identities, their hashes, names, address."""

    @property
    def email(self) -> str | None: ...
    @property
    def email_hash(self) -> bytes | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def phone_type(self) -> str | None: ...
    @property
    def phone_hash(self) -> bytes | None: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def street(self) -> str | None: ...
    @property
    def postal_code(self) -> str | None: ...
    @property
    def city(self) -> str | None: ...
    @property
    def name_address_hash(self) -> bytes | None: ...


class _Contact:
    """A contact as this batch sees it: loaded from the store, or created by a row that
    another row of the batch joined (a row nobody joins stays a plain row: cheaper)."""

    __slots__ = (
        "claim",
        "created",
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

    @property
    def erased(self) -> bool:
        v = self.v
        return (v[_EH] is not None and v[_E] is None) or (v[_PH] is not None and v[_P] is None)


class Merger:
    """Merges batches of incoming rows into `contacts` within the caller's transaction."""

    def __init__(
        self,
        conn: Connection,
        key_id: str,
        now: datetime,
        *,
        partner_lead: bool = False,
        customer: bool = False,
        authoritative: bool = False,
        known: KeyFilter | None = None,
        values: Callable[[Any], Sequence[Any]] = _values,
    ) -> None:
        """`known`: every email and phone hash contacts held when the caller's transaction
        began (campaigns.keyfilter); hashes it rules out are not looked up. `values`: a
        row's `FIELDS`, in that order (a caller with tuples can slice them)."""
        self.conn = conn
        self.key_id = key_id
        self.now = now
        self.partner_lead = partner_lead
        self.customer = customer
        self.authoritative = authoritative  # names and address overwrite (the CRM)
        self.known = known
        self.values = values
        self.counts = {NEW: 0, MERGED: 0, DUPLICATE: 0, CONFLICT: 0}
        self._own: list[tuple[int, int]] = []  # id ranges this import created, sorted
        conn.execute(text(_CREATE_KEYS[conn.dialect.name]))
        if conn.dialect.name == "postgresql":
            # The lookups' cost estimates (a probe per hash, up to tens of thousands)
            # pass jit_above_cost: compiling them took longer than running them.
            conn.execute(text("SET LOCAL jit = off"))

    def close(self) -> None:
        """Drop the temporary table (PostgreSQL drops it at commit anyway)."""
        self.conn.execute(text("DROP TABLE IF EXISTS merge_keys"))

    def merge(
        self,
        batch: Sequence[Incoming],
        pinned: Sequence[int | None] | None = None,
        claims: Sequence[str] | None = None,
    ) -> list[int | None]:
        """The contact id of each row, None for a refused one (identity_conflict).

        `pinned`: per row, a contact the row must join (the CRM's known customer ids).
        `claims`: per row, the customer id it is; a row may not join a contact that
        belongs to another customer id (one customer per contact).
        """
        by_email, by_phone, by_id = self._load(batch, pinned, with_claims=claims is not None)
        # Per new contact, by place: the row that created it, or its _Contact once
        # another row joined it. by_email and by_phone hold the place of a plain one.
        created: list[Any] = []
        eager = claims is not None or pinned is not None

        def joined(place: int) -> _Contact:
            entry = created[place]
            if type(entry) is _Contact:
                return entry
            contact = self._new(entry, place)
            created[place] = contact
            if contact.v[_EH] is not None:
                by_email[contact.v[_EH]] = contact
            if contact.v[_PH] is not None:
                by_phone[contact.v[_PH]] = contact
            return contact

        result: list[int | None] = []
        outcome = self.counts
        new = merged = duplicate = conflict = 0
        for i, row in enumerate(batch):
            eh, ph = row.email_hash, row.phone_hash
            ce = by_email.get(eh) if eh is not None else None
            cp = by_phone.get(ph) if ph is not None else None
            pin = by_id.get(pinned[i]) if pinned is not None and pinned[i] is not None else None  # type: ignore[arg-type]
            if ce is None and cp is None and pin is None:
                place = len(created)
                created.append(self._new(row, place) if eager else row)
                if eh is not None:
                    by_email[eh] = created[place] if eager else place
                if ph is not None:
                    by_phone[ph] = created[place] if eager else place
                if eager:
                    created[place].claim = claims[i] if claims is not None else None
                new += 1
                result.append(~place)  # resolved to an id below
                continue
            if type(ce) is int:
                ce = joined(ce)
            if type(cp) is int:
                cp = joined(cp)
            target: _Contact = pin or ce or cp  # type: ignore[assignment]
            claim = claims[i] if claims is not None else None
            v = target.v
            if (
                (ce is not None and ce is not target)
                or (cp is not None and cp is not target)
                or (eh is not None and v[_EH] not in (None, eh))
                or (ph is not None and v[_PH] not in (None, ph))
                or (claim is not None and target.claim not in (None, claim))
            ):
                conflict += 1
                result.append(None)
                continue
            self._fill(target, row)
            if claim is not None:
                target.claim = claim
            if eh is not None:
                by_email[eh] = target
            if ph is not None:
                by_phone[ph] = target
            if target.own:
                duplicate += 1
            else:
                merged += 1
            result.append(~target.pos if target.created else target.id)
        outcome[NEW] += new
        outcome[MERGED] += merged
        outcome[DUPLICATE] += duplicate
        outcome[CONFLICT] += conflict
        ids = self._write_new(created)
        self._write_changed(by_id.values())
        return [ids[~r] if r is not None and r < 0 else r for r in result]

    def _new(self, row: Incoming, place: int) -> _Contact:
        contact = _Contact(list(self.values(row)), created=True, own=True)
        contact.pos = place
        contact.is_partner_lead = self.partner_lead
        contact.is_customer = self.customer
        return contact

    def _fill(self, target: _Contact, row: Incoming) -> None:
        changed = False
        if not target.created and self.partner_lead and not target.is_partner_lead:
            target.is_partner_lead = changed = True
        if not target.created and self.customer and not target.is_customer:
            target.is_customer = changed = True
        if target.erased:
            target.dirty = target.dirty or changed
            return
        v = target.v
        if v[_EH] is None and row.email_hash is not None:
            v[_E], v[_EH] = row.email, row.email_hash
            changed = True
        if v[_PH] is None and row.phone_hash is not None:
            v[_P], v[_PT], v[_PH] = row.phone, row.phone_type, row.phone_hash
            changed = True
        for at, value in ((_FN, row.first_name), (_LN, row.last_name)):
            if value is not None and (v[at] is None or (self.authoritative and v[at] != value)):
                v[at] = value
                changed = True
        has_address = row.street is not None or row.postal_code is not None
        if has_address and (
            (v[_ST] is None and v[_PC] is None)
            or (self.authoritative and v[_NAH] != row.name_address_hash)
        ):
            v[_ST], v[_PC], v[_CI], v[_NAH] = (
                row.street,
                row.postal_code,
                row.city,
                row.name_address_hash,
            )
            changed = True
        target.dirty = target.dirty or changed

    def _load(
        self, batch: Sequence[Incoming], pinned: Sequence[int | None] | None, with_claims: bool
    ) -> tuple[dict[bytes, Any], dict[bytes, Any], dict[int, _Contact]]:
        """The contacts holding any of the batch's emails or phones (or pinned ids),
        locked FOR NO KEY UPDATE."""
        conn = self.conn
        known = self.known
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
        by_id: dict[int, _Contact] = {}
        if not emails and not phones and not ids:
            return by_email, by_phone, by_id
        c = contacts.c
        columns: list[Any] = [contacts.c[name] for name in ("id", *_UPDATE_COLUMNS)]
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
            # TRUNCATE: a DELETE would leave every earlier batch's keys as dead rows to scan.
            if conn.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE merge_keys"))
            else:
                conn.execute(_keys.delete())
            copy_rows(conn, _keys, ("kind", "key_hash"), [(kind, h) for h in hashes])
            found = conn.execute(self._lookup(columns, kind, column)).all()  # fetchall: one call
            self._hold(found, by_email, by_phone, by_id)
        if ids:
            query = select(*columns).where(c.id.in_(ids)).with_for_update(key_share=True)
            self._hold(conn.execute(query).all(), by_email, by_phone, by_id)
        return by_email, by_phone, by_id

    def _hold(
        self,
        rows: Iterable[Any],
        by_email: dict[bytes, Any],
        by_phone: dict[bytes, Any],
        by_id: dict[int, _Contact],
    ) -> None:
        for found in rows:
            contact_id = found[0]
            if contact_id in by_id:
                continue
            v = list(found[1:12])
            for at in (_EH, _PH, _NAH):
                if isinstance(v[at], memoryview):
                    v[at] = bytes(v[at])
            held = _Contact(v, created=False, own=self._is_own(contact_id))
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
        """The contacts holding a hash of `kind` in merge_keys, locked FOR NO KEY UPDATE."""
        keys = _keys.alias("k")
        if self.conn.dialect.name != "postgresql":
            held = select(keys.c.key_hash).where(keys.c.kind == kind)
            return select(*columns).where(column.in_(held))
        # One index probe per hash, whatever the planner thinks of merge_keys' size: a
        # hash join would read every contact for each batch. (LATERAL with LIMIT 1 is
        # never flattened into a join; each hash is unique, so LIMIT 1 drops nothing.)
        found = (
            select(*columns)
            .where(column == keys.c.key_hash)
            .limit(1)
            .with_for_update(key_share=True, of=contacts)  # FOR NO KEY UPDATE
            .lateral("found")
        )
        return select(found).select_from(keys).join(found, true()).where(keys.c.kind == kind)

    def _is_own(self, contact_id: int) -> bool:
        i = bisect.bisect_right(self._own, (contact_id, float("inf"))) - 1
        return i >= 0 and self._own[i][0] <= contact_id <= self._own[i][1]

    def _write_new(self, created: list[Any]) -> list[int]:
        if not created:
            return []
        ids = allocate_ids(self.conn, len(created))
        self._remember(ids)
        copy_rows(self.conn, contacts, _INSERT_COLUMNS, self._new_rows(created, ids))
        return ids

    def _new_rows(self, created: list[Any], ids: list[int]) -> Iterator[tuple[Any, ...]]:
        now, key_id, values = self.now, self.key_id, self.values
        plain_tail = (self.partner_lead, self.customer, now, now)
        for entry, contact_id in zip(created, ids, strict=True):
            v: Sequence[Any]
            if type(entry) is _Contact:
                entry.id = contact_id
                v = entry.v
                tail = (entry.is_partner_lead, entry.is_customer, now, now)
            else:
                v = values(entry)
                tail = plain_tail
            yield (contact_id, v[0], v[1], v[2], v[3], v[4], key_id, *v[5:], *tail)

    def _remember(self, ids: list[int]) -> None:
        ranges = self._own
        for contact_id in sorted(ids):
            if ranges and ranges[-1][1] + 1 == contact_id:
                ranges[-1] = (ranges[-1][0], contact_id)
            else:
                bisect.insort(ranges, (contact_id, contact_id))

    def _write_changed(self, known: Iterable[_Contact]) -> None:
        changed = [k for k in known if k.dirty]
        if not changed:
            return
        stmt = (
            update(contacts)
            .where(contacts.c.id == bindparam("_id"))
            .values({name: bindparam(name) for name in (*_UPDATE_COLUMNS, "updated_at")})
        )
        self.conn.execute(
            stmt,
            [
                {
                    "_id": k.id,
                    "updated_at": self.now,
                    "is_partner_lead": k.is_partner_lead,
                    "is_customer": k.is_customer,
                    **dict(zip(FIELDS, k.v, strict=True)),
                }
                for k in changed
            ],
        )
        for k in changed:
            k.dirty = False


def allocate_ids(conn: Connection, count: int) -> list[int]:
    """`count` new contact ids, in one statement (the caller holds the transaction)."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        rows = raw.execute(  # type: ignore[union-attr]
            "SELECT nextval(pg_get_serial_sequence('contacts', 'id')) FROM generate_series(1, %s)",
            (count,),
        ).fetchall()
        return [int(r[0]) for r in rows]
    # SQLite: the import holds the database's write lock, so max(id) cannot move under us.
    top = conn.execute(text("SELECT coalesce(max(id), 0) FROM contacts")).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))
