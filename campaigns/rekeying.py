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
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from campaigns.bulkcopy import plain_bytes
from campaigns.schema import contacts
from suppression.keys import Hasher, KeyedHash
from suppression.register import name_address_key
from suppression.rotation import LEDGER_KEPT, Copied, Forward, Pair, copy_forward, copy_pairs

BATCH: Final = 5_000  # contacts a SQLite transaction (rekey_rows)
# Contacts a PostgreSQL transaction: its staged rows (about 250 bytes each) stay within
# the session's temp_buffers (8 MB by default), and an import waits at most one chunk
# for a contact the chunk holds.
CHUNK: Final = 20_000
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
            pair = (wanted[bytes(digest)], int(cid))
            # Once, whether the email, the phone or both are held twice.
            if cid != pair[0] and pair not in found:
                found.append(pair)
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
    batch: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Rekeyed:
    """Every contact under a previous key, a batch per transaction; resumable. `batch`:
    contacts a transaction, by default CHUNK on PostgreSQL (set-based, `_rekey_chunk`)
    and BATCH on SQLite (`rekey_rows`)."""
    total = Rekeyed()
    postgres = engine.dialect.name == "postgresql"
    size = batch or (CHUNK if postgres else BATCH)
    after = 0
    deadlocks = 0
    while True:
        try:
            with engine.begin() as conn:
                if postgres:
                    done, read, last = _rekey_chunk(conn, hasher, after, size, now())
                else:
                    done, read, last = _rekey_batch(conn, hasher, after, size, now())
        except OperationalError as exc:
            # An import and this chunk waited on each other's rows: this side gave way
            # (_rekey_chunk's deadlock_timeout) and the chunk runs again, its rows re-read.
            deadlocks += 1
            if not isinstance(exc.orig, psycopg.errors.DeadlockDetected) or deadlocks > 10:
                raise
            continue
        if not read:
            return total
        after = last
        total.contacts += done.contacts
        total.kept += done.kept
        total.conflicts += done.conflicts
        total.copied += done.copied
        if progress is not None:
            progress(read)


def _rekey_batch(
    conn: Connection, hasher: Hasher, after: int, size: int, now: datetime
) -> tuple[Rekeyed, int, int]:
    """SQLite's batch: the rows read (locked: SQLite has one writer anyway), re-keyed by
    `rekey_rows`; (what it did, rows read, the last id read)."""
    rows = conn.execute(
        select(*(contacts.c[c] for c in _READ))
        .where(contacts.c.key_id != hasher.key_id, contacts.c.id > after)
        .order_by(contacts.c.id)
        .limit(size)
        .with_for_update()
    ).all()
    if not rows:
        return Rekeyed(), 0, after
    return rekey_rows(conn, hasher, rows, now), len(rows), int(rows[-1].id)


# --- PostgreSQL: a chunk of contacts set-based --------------------------------------------

_STAGING: Final = "rekey_staging"
# A chunk's contacts: their old digests and key (the UPDATE re-checks them), their new
# digests (NULL: none), and whether this is the chunk's first contact with that old
# name+address digest (people who share a name and address share it: one pair each).
_CREATE_STAGING: Final = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (id bigint NOT NULL, "
    "key_id text NOT NULL, email_old bytea, email_new bytea, phone_old bytea, "
    "phone_new bytea, address_old bytea, address_new bytea, address_first boolean NOT NULL) "
    "ON COMMIT DELETE ROWS"
)
_STAGING_TYPES: Final = (
    "int8", "text", "bytea", "bytea", "bytea", "bytea", "bytea", "bytea", "bool",
)  # fmt: skip
READ_CHUNK: Final = (
    f"SELECT {', '.join(_READ)} FROM contacts WHERE key_id <> %s AND id > %s ORDER BY id LIMIT %s"
)
# No FOR UPDATE on the read (locking every row read cost the server as much as writing
# it): the UPDATE re-checks what was read. A contact an import re-keyed or changed in the
# meantime (its key id or a digest differs), or that `forget` erased (its plaintext is
# gone), is left out: the import moved it itself, and an erased contact stays under its
# key. A contact an import holds locked is waited for and then re-checked (READ
# COMMITTED re-evaluates the WHERE on the row as the import committed it).
_UPDATE_FROM_STAGING: Final = (
    f"UPDATE contacts AS c SET email_hash = s.email_new, phone_hash = s.phone_new, "
    "name_address_hash = s.address_new, key_id = :current, updated_at = :now "
    f"FROM {_STAGING} AS s WHERE c.id = s.id AND c.key_id = s.key_id "
    "AND c.email_hash IS NOT DISTINCT FROM s.email_old "
    "AND c.phone_hash IS NOT DISTINCT FROM s.phone_old "
    "AND c.name_address_hash IS NOT DISTINCT FROM s.address_old "
    "AND (s.email_new IS NULL OR c.email IS NOT NULL) "
    "AND (s.phone_new IS NULL OR c.phone IS NOT NULL) "
    "AND (s.address_new IS NULL OR c.street IS NOT NULL)"
)
# Only when the UPDATE left some out: their pairs are not this rekey's to copy.
_DROP_LEFT_OUT: Final = (
    f"DELETE FROM {_STAGING} AS s WHERE NOT EXISTS (SELECT 1 FROM contacts c "
    "WHERE c.id = s.id AND c.key_id = :current)"
)
# (contact to re-key, contact already holding its new email or phone digest).
_CLASHES: Final = (
    f"SELECT s.id, c.id FROM {_STAGING} s JOIN contacts c ON c.email_hash = s.email_new "
    "WHERE c.id <> s.id UNION "  # once, whether the email, the phone or both clash
    f"SELECT s.id, c.id FROM {_STAGING} s JOIN contacts c ON c.phone_hash = s.phone_new "
    "WHERE c.id <> s.id ORDER BY 1, 2"
)
_DROP_CLASHES: Final = f"DELETE FROM {_STAGING} WHERE id = ANY(CAST(:ids AS bigint[]))"
# Every (old, new) digest pair of the chunk, as suppression.rotation copies them.
_PAIRS_OF_STAGING: Final = (
    f"(SELECT email_old AS old_hash, key_id AS old_key_id, email_new AS new_hash, "
    f"'email' AS kind FROM {_STAGING} WHERE email_new IS NOT NULL UNION ALL "
    f"SELECT phone_old, key_id, phone_new, 'phone' FROM {_STAGING} "
    "WHERE phone_new IS NOT NULL UNION ALL "
    f"SELECT address_old, key_id, address_new, 'name_address' FROM {_STAGING} "
    "WHERE address_first AND address_new IS NOT NULL)"
)
# A chunk's pairs are tens of thousands, the ledger and the register millions of rows: a
# hash join would read the whole ledger and register every chunk (its cost the store's
# size, not the chunk's); each pair probes their key_hash index instead (a LATERAL the
# planner cannot flatten, "OFFSET 0"), as suppression.rotation does.
_COPY_LEDGER: Final = (
    f"INSERT INTO ledger_entries ({', '.join(LEDGER_KEPT)}, key_hash, key_id, origin_id, "
    f"origin_key_id) SELECT {', '.join('e.' + c for c in LEDGER_KEPT)}, p.new_hash, "
    f":current, e.id, e.key_id FROM {_PAIRS_OF_STAGING} p CROSS JOIN LATERAL "
    "(SELECT * FROM ledger_entries l WHERE l.key_hash = p.old_hash OFFSET 0) e "
    "ON CONFLICT (key_hash, source, source_event) DO NOTHING"
)
_COPY_REGISTER: Final = (
    "INSERT INTO register_entries (snapshot_id, key_id, key_hash, identity_kind, "
    "reserved_phone, reserved_post) SELECT DISTINCT r.snapshot_id, :current, p.new_hash, "
    "r.identity_kind, r.reserved_phone, r.reserved_post "
    f"FROM {_PAIRS_OF_STAGING} p CROSS JOIN LATERAL (SELECT l.* FROM register_entries l "
    "JOIN register_snapshots rs ON rs.id = l.snapshot_id AND rs.active "
    "WHERE l.key_hash = p.old_hash AND NOT EXISTS (SELECT 1 FROM register_entries x "
    "WHERE x.key_hash = p.new_hash AND x.snapshot_id = l.snapshot_id) OFFSET 0) r "
    # The register holds phones and names+addresses, never an email.
    "WHERE p.kind <> 'email'"
)
_KEEP_FORWARDS: Final = (
    "INSERT INTO key_forwards (old_hash, old_key_id, new_hash, new_key_id, created_at) "
    f"SELECT old_hash, old_key_id, new_hash, :current, :now FROM {_PAIRS_OF_STAGING} p "
    "ON CONFLICT (old_hash) DO NOTHING"
)
# Staged: (id, key id, email old, new, phone old, new, name+address old, new, first).
Staged = tuple[
    int, str, bytes | None, bytes | None, bytes | None, bytes | None, bytes | None,
    bytes | None, bool,
]  # fmt: skip


def _rekey_chunk(
    conn: Connection, hasher: Hasher, after: int, size: int, now: datetime
) -> tuple[Rekeyed, int, int]:
    """PostgreSQL's batch, set-based: the chunk read (binary, unlocked), every new digest
    computed here, COPY'd in binary into a temporary table, then one UPDATE of the
    contacts from it and one INSERT ... SELECT each for the ledger copies, the register
    copies and the key_forwards pairs, whatever the chunk's size. (what it did, rows read,
    the last id read)."""
    # The copies' estimates pass jit_above_cost: JIT would compile their plans anew
    # every chunk. A short deadlock_timeout: should an import and this chunk wait on each
    # other's rows, this side finds it first and is the one rolled back (and retried,
    # `rekey_all`), not the import.
    conn.execute(text("SET LOCAL jit = off"))
    conn.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
    # The UPDATE's join sorts the chunk's staged rows: in memory, not on disk.
    conn.execute(text("SET LOCAL work_mem = '32MB'"))
    with driver_cursor(conn) as cur:
        rows = cur.execute(READ_CHUNK, (hasher.key_id, after, size), binary=True).fetchall()
    if not rows:
        return Rekeyed(), 0, after
    done = Rekeyed()
    staged, done.kept = _stage(hasher, rows)
    last = int(rows[-1][0])
    if not staged:
        return done, len(rows), last
    conn.execute(text(_CREATE_STAGING))
    with (
        driver_cursor(conn) as cur,
        cur.copy(f"COPY {_STAGING} FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(list(_STAGING_TYPES))
        for row in staged:
            copy.write_row(row)
    params = {"current": hasher.key_id, "now": now}
    done.contacts, done.conflicts = _update_contacts(conn, params)
    if done.contacts < len(staged) - len(done.conflicts):
        conn.execute(text(_DROP_LEFT_OUT), params)
    done.copied = Copied(
        ledger_entries=conn.execute(text(_COPY_LEDGER), params).rowcount,
        register_entries=conn.execute(text(_COPY_REGISTER), params).rowcount,
    )
    conn.execute(text(_KEEP_FORWARDS), params)
    return done, len(rows), last


def driver_cursor(conn: Connection) -> psycopg.Cursor[Any]:
    """psycopg's own cursor on the connection (binary results, COPY), plain bytes dumped
    by its C dumper (campaigns.bulkcopy.plain_bytes)."""
    cur: psycopg.Cursor[Any] = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    plain_bytes(cur)
    return cur


def _stage(hasher: Hasher, rows: Sequence[Sequence[Any]]) -> tuple[list[Staged], int]:
    """The chunk's rows as staged (see _CREATE_STAGING), and how many are kept under their
    key: an email or phone digest without its plaintext (erased) can never be re-hashed.
    An erased name+address digest just goes, as in `rekey_row`."""
    digest = hasher.digest
    staged: list[Staged] = []
    kept = 0
    addresses: set[bytes] = set()
    for (
        cid,
        key_id,
        email,
        email_old,
        phone,
        phone_old,
        first,
        last,
        street,
        postal,
        address,
    ) in rows:
        if not hasher.knows(key_id):
            continue
        if (email_old is not None and not email) or (phone_old is not None and not phone):
            kept += 1
            continue
        address_new = None
        first_seen = False
        if address is not None:
            value = name_address_of(first, last, street, postal)
            if value is not None:
                address_new = digest("name_address", value)
                first_seen = address not in addresses
                addresses.add(address)
        staged.append(
            (
                cid,
                key_id,
                email_old,
                digest("email", email) if email_old is not None else None,
                phone_old,
                digest("phone", phone) if phone_old is not None else None,
                address,
                address_new,
                first_seen,
            )
        )
    return staged, kept


def _update_contacts(conn: Connection, params: dict[str, Any]) -> tuple[int, list[tuple[int, int]]]:
    """The staged contacts' new digests written; (contacts written, clashes). Tried whole
    in a savepoint first: a clash (the same person stored under both keys, which the unique
    digests refuse) is rare, and only then are the clashing contacts looked up, left out
    of the staging and reported."""
    clashes: list[tuple[int, int]] = []
    for _attempt in range(3):
        try:
            with conn.begin_nested():
                return conn.execute(text(_UPDATE_FROM_STAGING), params).rowcount, clashes
        except IntegrityError:
            pass  # rolled back to the savepoint
        found = [(int(a), int(b)) for a, b in conn.execute(text(_CLASHES))]
        conn.execute(text(_DROP_CLASHES), {"ids": [a for a, _b in found]})
        clashes += found
    # An import kept adding the clashing people: this time the error goes up.
    return conn.execute(text(_UPDATE_FROM_STAGING), params).rowcount, clashes


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
