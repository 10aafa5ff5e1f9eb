"""Moving contacts to the current key, and keeping every no they had on the way.

A contact is stored under one key (`contacts.key_id`; its three digests are that key's).
After a rotation (suppression.keys) a contact moves to the current key when

- an import meets it: the rows' identities are hashed under every previous key too, a
  contact found under one of them is re-keyed before the merge looks it up, and what
  any identity of the rows had under a previous key (a ledger entry, a register entry)
  is copied under its current digest (`Rotation.before_lookup`);
- `outreach keys rekey` runs (`rekey_all`): every contact under a previous key whose
  plaintext the store still holds, in batches, each batch in its own transaction, so a
  kill loses at most the batch under way and a second run finds nothing left to do.

A digest re-keyed is copied forward with suppression.rotation.copy_forward. A contact
whose plaintext is gone for some digest (erased) keeps that digest and its key: its
no stays under the key that made it, which is why that key stays configured.

A batch is a few statements whatever its size. On PostgreSQL the contacts' new digests
are one UPDATE from arrays sent in binary (`update_digests`; an executemany of an
UPDATE per contact cost the server several times as much), tried first in a savepoint:
a clash (the same person stored under both keys, which the unique digests refuse) is
rare, and only then are the digests looked up and the clashing contacts left out.
SQLite looks them up first (in-process, cheap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

import psycopg
from sqlalchemy import Connection, Engine, LargeBinary, any_, bindparam, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError

from campaigns.bulkcopy import plain_bytes
from campaigns.schema import contacts
from suppression.keys import Hasher, KeyedHash
from suppression.register import name_address_key
from suppression.rotation import Copied, Forward, Pair, copy_forward, copy_pairs

BATCH: Final = 5_000
_COLUMNS: Final = ("email_hash", "phone_hash", "name_address_hash")
# A contact's new digests: (contact id, email, phone, name+address digest or None).
Digests = tuple[int, bytes | None, bytes | None, bytes | None]
_DIGESTS: Final = postgresql.ARRAY(LargeBinary)
# psycopg's placeholders: %b a parameter in binary (a list of digests is then packed,
# not escaped value by value), %s as psycopg sees fit. No NULL in an array: a missing
# digest is b"" there (a list of None alone would have no type).
_UPDATE_FROM_ARRAYS: Final = (
    "UPDATE contacts AS c SET email_hash = NULLIF(u.email_hash, ''::bytea), "
    "phone_hash = NULLIF(u.phone_hash, ''::bytea), "
    "name_address_hash = NULLIF(u.name_address_hash, ''::bytea), key_id = %s, updated_at = %s "
    "FROM unnest(%b::bigint[], %b::bytea[], %b::bytea[], %b::bytea[]) "
    "AS u(id, email_hash, phone_hash, name_address_hash) "
    # The ids twice: an index condition on contacts, whatever the planner makes of unnest.
    "WHERE c.id = u.id AND c.id = ANY(%b::bigint[])"
)


class Incoming(Protocol):
    """The plaintext and digests of a row an import merges; campaigns.contactlookup.Incoming
    adds what the merge needs besides."""

    @property
    def email(self) -> str | None: ...
    @property
    def email_hash(self) -> bytes | None: ...
    @property
    def phone(self) -> str | None: ...
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
    def name_address_hash(self) -> bytes | None: ...


@dataclass(slots=True)
class Rekeyed:
    """What a rekey did: contacts moved, those that could not be, copies made."""

    contacts: int = 0
    kept: int = 0  # a digest without plaintext (erased): stays under its key
    conflicts: list[tuple[int, int]] = field(default_factory=list)  # (old, new) contact ids
    copied: Copied = field(default_factory=Copied)

    def as_dict(self) -> dict[str, Any]:
        return {
            "contacts_rekeyed": self.contacts,
            "contacts_kept": self.kept,
            "conflicts": [list(pair) for pair in self.conflicts],
            "ledger_entries_copied": self.copied.ledger_entries,
            "register_entries_copied": self.copied.register_entries,
        }


def name_address_of(first: str | None, last: str | None, street: Any, postal: Any) -> str | None:
    """The name+address key as imports hash it (campaigns.sources), or None."""
    name = " ".join(p for p in (first, last) if p)
    if not name or not street or not postal:
        return None
    return name_address_key(name, str(street), str(postal))


def _plaintext(kind: str, row: Any) -> str | None:
    if kind == "email_hash":
        return row.email or None
    if kind == "phone_hash":
        return row.phone or None
    return name_address_of(row.first_name, row.last_name, row.street, row.postal_code)


_KIND: Final = {"email_hash": "email", "phone_hash": "phone", "name_address_hash": "name_address"}


def rekey_rows(
    conn: Connection,
    hasher: Hasher,
    rows: Sequence[Any],
    now: datetime,
    known: dict[bytes, str] | None = None,
) -> Rekeyed:
    """Move these contact rows (id, key_id, the digests and the plaintext columns) to
    the current key, in the caller's transaction. `known`: plaintext for old digests
    the caller holds (an import's rows), used where the contact's own is erased."""
    done = Rekeyed()
    current = hasher.key_id
    digest = hasher.digest
    known = known or {}
    pairs: dict[int, list[Pair]] = {}
    updates: list[Digests] = []
    for row in rows:
        key_id = row.key_id
        if key_id == current or not hasher.knows(key_id):
            continue
        cid = int(row.id)
        moved: list[Pair] = []
        new: list[bytes | None] = []
        for col, old in zip(
            _COLUMNS, (row.email_hash, row.phone_hash, row.name_address_hash), strict=True
        ):
            if old is None:
                new.append(None)
                continue
            old = bytes(old)
            value = _plaintext(col, row) or known.get(old)
            if value is None:
                if col == "name_address_hash":
                    # An erased contact's name+address: its no is under the phone and
                    # email too; the digest goes (it could never be re-hashed).
                    new.append(None)
                    continue
                break
            fresh = digest(_KIND[col], value)
            new.append(fresh)
            moved.append((old, key_id, fresh, current, _KIND[col]))
        else:
            updates.append((cid, new[0], new[1], new[2]))
            pairs[cid] = moved
            continue
        done.kept += 1
    if not updates:
        return done
    clashes = _write(conn, updates, current, now)
    if clashes:
        done.conflicts += clashes
        gone = {old for old, _new in clashes}
        updates = [u for u in updates if u[0] not in gone]
    done.contacts += len(updates)
    done.copied += copy_pairs(conn, (p for u in updates for p in pairs[u[0]]), now)
    return done


def _write(
    conn: Connection, updates: Sequence[Digests], key_id: str, now: datetime
) -> list[tuple[int, int]]:
    """`update_digests` of every contact but those whose new digest another contact
    holds; returns those (`_clashes`)."""
    if conn.dialect.name == "postgresql":
        try:
            with conn.begin_nested():
                update_digests(conn, updates, key_id, now)
            return []
        except IntegrityError:
            pass  # a clash: rolled back to the savepoint, looked up below
    clashes = _clashes(conn, updates)
    gone = {old for old, _new in clashes}
    update_digests(conn, [u for u in updates if u[0] not in gone], key_id, now)
    return clashes


def update_digests(
    conn: Connection, updates: Sequence[Digests], key_id: str, now: datetime
) -> None:
    """Write these contacts' digests (and `key_id`), in the caller's transaction: one
    UPDATE from arrays on PostgreSQL, an executemany on SQLite (in-process, and no
    arrays)."""
    if not updates:
        return
    if conn.dialect.name == "postgresql":
        ids = [u[0] for u in updates]
        emails, phones, addresses = ([u[at] or b"" for u in updates] for at in (1, 2, 3))
        params = (key_id, now, ids, emails, phones, addresses, ids)
        try:
            with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
                plain_bytes(cur)
                cur.execute(_UPDATE_FROM_ARRAYS, params)
        except psycopg.Error as exc:
            # As SQLAlchemy raises it for its own statements (IntegrityError for a clash).
            raise DBAPIError.instance(_UPDATE_FROM_ARRAYS, None, exc, psycopg.Error) from exc
        return
    conn.execute(
        update(contacts)
        .where(contacts.c.id == bindparam("cid"))
        .values(
            email_hash=bindparam("email_hash"),
            phone_hash=bindparam("phone_hash"),
            name_address_hash=bindparam("name_address_hash"),
            key_id=key_id,
            updated_at=now,
        ),
        [
            {"cid": cid, "email_hash": e, "phone_hash": p, "name_address_hash": a}
            for cid, e, p, a in updates
        ],
    )


def _clashes(conn: Connection, updates: Sequence[Digests]) -> list[tuple[int, int]]:
    """(contact to re-key, contact already holding its new email or phone digest): the
    same person stored twice, once under each key; left for a person to merge."""
    found: list[tuple[int, int]] = []
    for at, col in ((1, "email_hash"), (2, "phone_hash")):
        wanted = {bytes(d): u[0] for u in updates if (d := u[at]) is not None}
        if not wanted:
            continue
        column = contacts.c[col]
        among = (
            column == any_(bindparam(None, list(wanted), type_=_DIGESTS))
            if conn.dialect.name == "postgresql"
            else column.in_(list(wanted))
        )
        for cid, digest in conn.execute(select(contacts.c.id, column).where(among)):
            if cid != wanted[bytes(digest)]:
                found.append((wanted[bytes(digest)], int(cid)))
    return found


_READ: Final = (
    "id", "key_id", "email", "email_hash", "phone", "phone_hash", "first_name", "last_name",
    "street", "postal_code", "name_address_hash",
)  # fmt: skip


def rekey_all(
    engine: Engine,
    hasher: Hasher,
    now: Callable[[], datetime],
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> Rekeyed:
    """Every contact under a previous key, a batch per transaction; resumable."""
    total = Rekeyed()
    after = 0
    while True:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # The copies' estimates pass jit_above_cost: JIT would compile their plans
                # anew every batch (15 ms of a statement that runs in 100).
                conn.execute(text("SET LOCAL jit = off"))
            rows = conn.execute(
                select(*(contacts.c[c] for c in _READ))
                .where(contacts.c.key_id != hasher.key_id, contacts.c.id > after)
                .order_by(contacts.c.id)
                .limit(batch)
                .with_for_update()
            ).all()
            if not rows:
                return total
            done = rekey_rows(conn, hasher, rows, now())
        after = int(rows[-1].id)
        total.contacts += done.contacts
        total.kept += done.kept
        total.conflicts += done.conflicts
        total.copied += done.copied
        if progress is not None:
            progress(len(rows))


class Rotation:
    """An import's part in a rotation (see the module docstring); None without one."""

    def __init__(self, conn: Connection, hasher: Hasher, now: datetime) -> None:
        self.conn = conn
        self.hasher = hasher
        self.now = now
        self.previous = hasher.previous_key_ids

    @classmethod
    def of(cls, conn: Connection, hasher: Hasher, now: datetime) -> Rotation | None:
        return cls(conn, hasher, now) if hasher.previous_key_ids else None

    def before_lookup(self, batch: Iterable[Incoming]) -> list[bytes]:
        """Re-key the contacts the batch's rows match under a previous key, and copy
        forward what the rows' identities had under one; returns the new digests of
        the contacts re-keyed (a key filter must hold them from now on)."""
        hasher, current = self.hasher, self.hasher.key_id
        forwards: list[Forward] = []
        known: dict[bytes, str] = {}
        for row in batch:
            for kind, value, digest in (
                ("email", row.email, row.email_hash),
                ("phone", row.phone, row.phone_hash),
                (
                    "name_address",
                    name_address_of(row.first_name, row.last_name, row.street, row.postal_code),
                    row.name_address_hash,
                ),
            ):
                if value is None or digest is None:
                    continue
                for key_id in self.previous:
                    old = hasher.digest(kind, value, key_id)
                    known[old] = value
                    forwards.append(
                        Forward(KeyedHash(key_id, old), KeyedHash(current, digest), kind)
                    )
        if not forwards:
            return []
        found = self._contacts_under_previous_keys([f.old.digest for f in forwards])
        done = rekey_rows(self.conn, hasher, found, self.now, known)
        copy_forward(self.conn, forwards, self.now)
        moved = {int(r.id) for r in found} - {old for old, _ in done.conflicts}
        if not moved:
            return []
        return [
            bytes(d)
            for r in self.conn.execute(
                select(contacts.c.email_hash, contacts.c.phone_hash).where(
                    contacts.c.id.in_(sorted(moved))
                )
            )
            for d in r
            if d is not None
        ]

    def _contacts_under_previous_keys(self, digests: list[bytes]) -> list[Any]:
        rows: dict[int, Any] = {}
        for col in ("email_hash", "phone_hash"):
            for start in range(0, len(digests), 5_000):
                chunk = digests[start : start + 5_000]
                for r in self.conn.execute(
                    select(*(contacts.c[c] for c in _READ))
                    .where(contacts.c[col].in_(chunk), contacts.c.key_id != self.hasher.key_id)
                    .with_for_update()
                ):
                    rows[int(r.id)] = r
        return [rows[k] for k in sorted(rows)]
