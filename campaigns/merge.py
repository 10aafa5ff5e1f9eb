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
is joined with `contacts` once, new contacts are written with COPY under ids taken
from the sequence in one statement, and changed ones with one executemany.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
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
    union_all,
    update,
)

from campaigns.bulkcopy import copy_rows
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
_INSERT_COLUMNS: Final = (
    "id",
    "email",
    "email_hash",
    "phone",
    "phone_type",
    "phone_hash",
    "key_id",
    "first_name",
    "last_name",
    "street",
    "postal_code",
    "city",
    "name_address_hash",
    "is_partner_lead",
    "is_customer",
    "created_at",
    "updated_at",
)
_UPDATE_COLUMNS: Final = _INSERT_COLUMNS[1:6] + _INSERT_COLUMNS[7:15]
_ADDRESS: Final = ("street", "postal_code", "city", "name_address_hash")


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
    """A contact as this import sees it: loaded from the store, or created by a row."""

    __slots__ = (
        "city",
        "claim",
        "created",
        "dirty",
        "email",
        "email_hash",
        "first_name",
        "id",
        "is_customer",
        "is_partner_lead",
        "last_name",
        "name_address_hash",
        "own",
        "phone",
        "phone_hash",
        "phone_type",
        "pos",
        "postal_code",
        "street",
    )

    def __init__(self, values: Any, *, created: bool, own: bool) -> None:
        self.id: int = 0
        self.email: str | None = values.email
        self.email_hash: bytes | None = values.email_hash
        self.phone: str | None = values.phone
        self.phone_type: str | None = values.phone_type
        self.phone_hash: bytes | None = values.phone_hash
        self.first_name: str | None = values.first_name
        self.last_name: str | None = values.last_name
        self.street: str | None = values.street
        self.postal_code: str | None = values.postal_code
        self.city: str | None = values.city
        self.name_address_hash: bytes | None = values.name_address_hash
        self.is_partner_lead = False
        self.is_customer = False
        self.created = created  # created by this batch, not yet written
        self.own = own  # created by this import
        self.dirty = False
        self.pos = 0  # place among the batch's new contacts, until it has an id
        self.claim: str | None = None  # the customer id it belongs to (CRM import)

    @property
    def erased(self) -> bool:
        return (self.email_hash is not None and self.email is None) or (
            self.phone_hash is not None and self.phone is None
        )


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
    ) -> None:
        self.conn = conn
        self.key_id = key_id
        self.now = now
        self.partner_lead = partner_lead
        self.customer = customer
        self.authoritative = authoritative  # names and address overwrite (the CRM)
        self.counts = {NEW: 0, MERGED: 0, DUPLICATE: 0, CONFLICT: 0}
        self._own: list[tuple[int, int]] = []  # id ranges this import created, sorted
        conn.execute(text(_CREATE_KEYS[conn.dialect.name]))

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
        result: list[int | None] = []
        created: list[_Contact] = []
        outcome = self.counts
        for i, row in enumerate(batch):
            eh, ph = row.email_hash, row.phone_hash
            ce = by_email.get(eh) if eh is not None else None
            cp = by_phone.get(ph) if ph is not None else None
            pin = by_id.get(pinned[i]) if pinned is not None and pinned[i] is not None else None  # type: ignore[arg-type]
            target = pin or ce or cp
            claim = claims[i] if claims is not None else None
            if target is None:
                target = _Contact(row, created=True, own=True)
                target.claim = claim
                target.is_partner_lead = self.partner_lead
                target.is_customer = self.customer
                created.append(target)
                target.pos = len(created)
                if eh is not None:
                    by_email[eh] = target
                if ph is not None:
                    by_phone[ph] = target
                outcome[NEW] += 1
                result.append(-len(created))  # resolved to an id below
                continue
            if (
                (ce is not None and ce is not target)
                or (cp is not None and cp is not target)
                or (eh is not None and target.email_hash not in (None, eh))
                or (ph is not None and target.phone_hash not in (None, ph))
                or (claim is not None and target.claim not in (None, claim))
            ):
                outcome[CONFLICT] += 1
                result.append(None)
                continue
            self._fill(target, row)
            if claim is not None:
                target.claim = claim
            if eh is not None:
                by_email[eh] = target
            if ph is not None:
                by_phone[ph] = target
            outcome[DUPLICATE if target.own else MERGED] += 1
            result.append(-target.pos if target.created else target.id)
        self._write_new(created)
        self._write_changed(by_id.values())
        return [(created[-r - 1].id if r is not None and r < 0 else r) for r in result]

    def _fill(self, target: _Contact, row: Incoming) -> None:
        changed = False
        if not target.created and self.partner_lead and not target.is_partner_lead:
            target.is_partner_lead = changed = True
        if not target.created and self.customer and not target.is_customer:
            target.is_customer = changed = True
        if target.erased:
            target.dirty = target.dirty or changed
            return
        if target.email_hash is None and row.email_hash is not None:
            target.email, target.email_hash = row.email, row.email_hash
            changed = True
        if target.phone_hash is None and row.phone_hash is not None:
            target.phone, target.phone_type, target.phone_hash = (
                row.phone,
                row.phone_type,
                row.phone_hash,
            )
            changed = True
        has_address = row.street is not None or row.postal_code is not None
        for name in ("first_name", "last_name"):
            value = getattr(row, name)
            if value is not None and (
                getattr(target, name) is None
                or (self.authoritative and getattr(target, name) != value)
            ):
                setattr(target, name, value)
                changed = True
        if has_address and (
            (target.street is None and target.postal_code is None)
            or (self.authoritative and target.name_address_hash != row.name_address_hash)
        ):
            for name in _ADDRESS:
                setattr(target, name, getattr(row, name))
            changed = True
        target.dirty = target.dirty or changed

    def _load(
        self, batch: Sequence[Incoming], pinned: Sequence[int | None] | None, with_claims: bool
    ) -> tuple[dict[bytes, _Contact], dict[bytes, _Contact], dict[int, _Contact]]:
        """The contacts holding any of the batch's emails or phones (or pinned ids)."""
        conn = self.conn
        # TRUNCATE: a DELETE would leave every earlier batch's keys as dead rows to scan.
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE merge_keys"))
        else:
            conn.execute(_keys.delete())

        def keys() -> Iterator[tuple[int, bytes]]:
            for row in batch:
                if row.email_hash is not None:
                    yield (_EMAIL, row.email_hash)
                if row.phone_hash is not None:
                    yield (_PHONE, row.phone_hash)

        copy_rows(conn, _keys, ("kind", "key_hash"), keys())
        c = contacts.c
        columns: list[Any] = [contacts.c[name] for name in ("id", *_UPDATE_COLUMNS)]
        if with_claims:
            columns.append(
                select(customers.c.customer_id)
                .where(customers.c.contact_id == contacts.c.id)
                .scalar_subquery()
                .label("claim")
            )
        email_keys = select(_keys.c.key_hash).where(_keys.c.kind == _EMAIL)
        phone_keys = select(_keys.c.key_hash).where(_keys.c.kind == _PHONE)
        parts = [
            select(*columns).where(c.email_hash.in_(email_keys)),
            select(*columns).where(c.phone_hash.in_(phone_keys)),
        ]
        ids = sorted({p for p in pinned or () if p is not None})
        if ids:
            parts.append(select(*columns).where(c.id.in_(ids)))
        query = union_all(*parts)  # duplicates are skipped below
        by_email: dict[bytes, _Contact] = {}
        by_phone: dict[bytes, _Contact] = {}
        by_id: dict[int, _Contact] = {}
        for found in conn.execute(query):
            m = found._mapping
            if m["id"] in by_id:
                continue
            known = _Contact(_Row(m), created=False, own=self._is_own(m["id"]))
            known.id = m["id"]
            known.is_partner_lead = bool(m["is_partner_lead"])
            known.is_customer = bool(m["is_customer"])
            known.claim = m["claim"] if with_claims else None
            by_id[known.id] = known
            if known.email_hash is not None:
                by_email[known.email_hash] = known
            if known.phone_hash is not None:
                by_phone[known.phone_hash] = known
        return by_email, by_phone, by_id

    def _is_own(self, contact_id: int) -> bool:
        i = bisect.bisect_right(self._own, (contact_id, float("inf"))) - 1
        return i >= 0 and self._own[i][0] <= contact_id <= self._own[i][1]

    def _write_new(self, created: list[_Contact]) -> None:
        if not created:
            return
        ids = allocate_ids(self.conn, len(created))
        for contact, contact_id in zip(created, ids, strict=True):
            contact.id = contact_id
        self._remember(ids)
        now, key_id = self.now, self.key_id
        copy_rows(
            self.conn,
            contacts,
            _INSERT_COLUMNS,
            (
                (
                    k.id,
                    k.email,
                    k.email_hash,
                    k.phone,
                    k.phone_type,
                    k.phone_hash,
                    key_id,
                    k.first_name,
                    k.last_name,
                    k.street,
                    k.postal_code,
                    k.city,
                    k.name_address_hash,
                    k.is_partner_lead,
                    k.is_customer,
                    now,
                    now,
                )
                for k in created
            ),
        )

    def _remember(self, ids: list[int]) -> None:
        ranges = self._own
        for contact_id in sorted(ids):
            if ranges and ranges[-1][1] + 1 == contact_id:
                ranges[-1] = (ranges[-1][0], contact_id)
            else:
                bisect.insort(ranges, (contact_id, contact_id))

    def _write_changed(self, known: Any) -> None:
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
                {"_id": k.id, "updated_at": self.now, **{n: getattr(k, n) for n in _UPDATE_COLUMNS}}
                for k in changed
            ],
        )
        for k in changed:
            k.dirty = False


class _Row:
    """Attribute access over a result mapping, for _Contact's constructor."""

    __slots__ = ("_m",)

    def __init__(self, mapping: Any) -> None:
        self._m = mapping

    def __getattr__(self, name: str) -> Any:
        value = self._m[name]
        return bytes(value) if isinstance(value, memoryview) else value


def allocate_ids(conn: Connection, count: int) -> list[int]:
    """`count` new contact ids, in one statement (the caller holds the transaction)."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('contacts', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": count},
        )
        return [int(r[0]) for r in rows]
    # SQLite: the import holds the database's write lock, so max(id) cannot move under us.
    top = conn.execute(text("SELECT coalesce(max(id), 0) FROM contacts")).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))
