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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import Connection, Engine, bindparam, select, update

from campaigns.schema import contacts
from suppression.keys import Hasher, KeyedHash
from suppression.register import name_address_key
from suppression.rotation import Copied, Forward, copy_forward

BATCH: Final = 5_000
_COLUMNS: Final = ("email_hash", "phone_hash", "name_address_hash")


class Incoming(Protocol):
    """The plaintext of a row an import merges (campaigns.contactlookup.Incoming)."""

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
    forwards: dict[int, list[Forward]] = {}
    updates: list[dict[str, Any]] = []
    for row in rows:
        if row.key_id == current or not hasher.knows(row.key_id):
            continue
        new: dict[str, bytes | None] = {}
        moved: list[Forward] = []
        for col in _COLUMNS:
            old = getattr(row, col)
            if old is None:
                new[col] = None
                continue
            old = bytes(old)
            value = _plaintext(col, row) or (known or {}).get(old)
            if value is None:
                if col == "name_address_hash":
                    # An erased contact's name+address: its no is under the phone and
                    # email too; the digest goes (it could never be re-hashed).
                    new[col] = None
                    continue
                break
            digest = hasher.digest(_KIND[col], value)
            new[col] = digest
            moved.append(Forward(KeyedHash(row.key_id, old), KeyedHash(current, digest)))
        else:
            updates.append({"cid": row.id, **new})
            forwards[int(row.id)] = moved
            continue
        done.kept += 1
    if not updates:
        return done
    clashes = _clashes(conn, updates)
    if clashes:
        done.conflicts += clashes
        gone = {old for old, _new in clashes}
        updates = [u for u in updates if u["cid"] not in gone]
    if updates:
        conn.execute(
            update(contacts)
            .where(contacts.c.id == bindparam("cid"))
            .values(
                email_hash=bindparam("email_hash"),
                phone_hash=bindparam("phone_hash"),
                name_address_hash=bindparam("name_address_hash"),
                key_id=current,
                updated_at=now,
            ),
            updates,
        )
    done.contacts += len(updates)
    done.copied += copy_forward(conn, [f for u in updates for f in forwards[u["cid"]]], now)
    return done


def _clashes(conn: Connection, updates: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(contact to re-key, contact already holding its new email or phone digest): the
    same person stored twice, once under each key; left for a person to merge."""
    found: list[tuple[int, int]] = []
    for col in ("email_hash", "phone_hash"):
        wanted = {bytes(u[col]): u["cid"] for u in updates if u[col] is not None}
        if not wanted:
            continue
        column = contacts.c[col]
        for cid, digest in conn.execute(
            select(contacts.c.id, column).where(column.in_(list(wanted)))
        ):
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
                    forwards.append(Forward(KeyedHash(key_id, old), KeyedHash(current, digest)))
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
