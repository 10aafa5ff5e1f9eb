"""What a key rotation does to the ledger and the register: copy a no under a new key.

A contact is kept under one key. When it moves to another (campaigns.rekeying: an
import that found it under an older key, or `outreach keys rekey`), every digest it had
is paired with its digest under the new key (`Forward`), and here:

- every ledger entry under an old digest gets a copy under the new one (same kind,
  scope, reason, source, times and evidence; `origin_id` and `origin_key_id` name the
  entry copied), so that the launch, which joins digests of one key, still finds it;
- every register entry of the active snapshot likewise (a snapshot loaded before the
  rotation holds the older key's digests only);
- the pair itself is kept in `key_forwards`: what holds the old digest and cannot be
  re-hashed (an unsubscribe token, a recipient of a running campaign) is followed to
  the new one (`forwarded`).

Everything is set-based, through a temporary table of the pairs: a rekey of a million
contacts is a handful of statements per batch, not a query per contact. Copies are
idempotent (the ledger's unique key; a NOT EXISTS for the register), so a rekey killed
half way runs again from the start without writing anything twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Column, Connection, LargeBinary, MetaData, String, Table, func, select, text

from suppression.bulk import insert_rows
from suppression.keys import KeyedHash
from suppression.schema import key_forwards, ledger_entries

_PAIRS: Final = "rotation_pairs"
_CREATE: Final = {
    "postgresql": f"CREATE TEMPORARY TABLE IF NOT EXISTS {_PAIRS} "
    "(old_hash bytea NOT NULL, old_key_id text NOT NULL, new_hash bytea NOT NULL, "
    "new_key_id text NOT NULL)",
    "sqlite": f"CREATE TEMPORARY TABLE IF NOT EXISTS {_PAIRS} "
    "(old_hash BLOB NOT NULL, old_key_id TEXT NOT NULL, new_hash BLOB NOT NULL, "
    "new_key_id TEXT NOT NULL)",
}
# The same temporary table, for bulk inserts into it.
_pairs = Table(
    _PAIRS,
    MetaData(),
    Column("old_hash", LargeBinary),
    Column("old_key_id", String),
    Column("new_hash", LargeBinary),
    Column("new_key_id", String),
)
# The ledger's columns a copy keeps as they are.
_KEPT: Final = (
    "identity_kind", "kind", "scope", "reason", "source", "source_event", "evidence_ref",
    "occurred_at", "recorded_at", "actor",
)  # fmt: skip
_COPY_LEDGER: Final = (
    f"INSERT INTO ledger_entries ({', '.join(_KEPT)}, key_hash, key_id, origin_id, "
    f"origin_key_id) SELECT {', '.join('e.' + c for c in _KEPT)}, p.new_hash, p.new_key_id, "
    f"e.id, e.key_id FROM ledger_entries e JOIN {_PAIRS} p ON e.key_hash = p.old_hash "
    # "WHERE true": SQLite would read the upsert's ON CONFLICT as the join's.
    "WHERE true ON CONFLICT (key_hash, source, source_event) DO NOTHING"
)
_COPY_REGISTER: Final = (
    "INSERT INTO register_entries (snapshot_id, key_id, key_hash, identity_kind, "
    "reserved_phone, reserved_post) SELECT DISTINCT r.snapshot_id, p.new_key_id, p.new_hash, "
    f"r.identity_kind, r.reserved_phone, r.reserved_post FROM register_entries r JOIN {_PAIRS} p"
    " ON r.key_hash = p.old_hash JOIN register_snapshots s ON s.id = r.snapshot_id AND s.active"
    " WHERE NOT EXISTS (SELECT 1 FROM register_entries x WHERE x.key_hash = p.new_hash"
    " AND x.snapshot_id = r.snapshot_id)"
)
_KEEP_FORWARDS: Final = (
    "INSERT INTO key_forwards (old_hash, old_key_id, new_hash, new_key_id, created_at) "
    f"SELECT DISTINCT old_hash, old_key_id, new_hash, new_key_id, :now FROM {_PAIRS} "
    "WHERE true ON CONFLICT (old_hash) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Forward:
    """One identity's digest under the key it was stored under, and under the new key."""

    old: KeyedHash
    new: KeyedHash


@dataclass(slots=True)
class Copied:
    ledger_entries: int = 0
    register_entries: int = 0

    def __iadd__(self, other: Copied) -> Copied:
        self.ledger_entries += other.ledger_entries
        self.register_entries += other.register_entries
        return self


def copy_forward(conn: Connection, forwards: Iterable[Forward], now: datetime) -> Copied:
    """Copy under each new digest what the old one had in the ledger and the active
    register snapshot, and keep the pairs (within the caller's transaction)."""
    rows = [
        (f.old.digest, f.old.key_id, f.new.digest, f.new.key_id)
        for f in forwards
        if f.old.digest != f.new.digest
    ]
    if not rows:
        return Copied()
    conn.execute(text(_CREATE[conn.dialect.name]))
    conn.execute(text(f"DELETE FROM {_PAIRS}"))
    insert_rows(conn, _pairs, ("old_hash", "old_key_id", "new_hash", "new_key_id"), rows)
    copied = Copied(
        ledger_entries=conn.execute(text(_COPY_LEDGER)).rowcount,
        register_entries=conn.execute(text(_COPY_REGISTER)).rowcount,
    )
    conn.execute(text(_KEEP_FORWARDS), {"now": now})
    conn.execute(text(f"DELETE FROM {_PAIRS}"))
    return copied


def forwarded(conn: Connection, keyed: KeyedHash) -> list[KeyedHash]:
    """`keyed` and every digest it was re-keyed to since (a chain, if rekeyed twice)."""
    found = [keyed]
    seen = {keyed.digest}
    while True:
        row = conn.execute(
            select(key_forwards.c.new_hash, key_forwards.c.new_key_id).where(
                key_forwards.c.old_hash == found[-1].digest
            )
        ).first()
        if row is None or bytes(row[0]) in seen:
            return found
        found.append(KeyedHash(str(row[1]), bytes(row[0])))
        seen.add(bytes(row[0]))


def only_under(conn: Connection, key_id: str, others: Sequence[str]) -> int:
    """How many ledger entries exist only under `key_id`: made under it (not copies) and
    with no copy under any of `others`. A key is retired only when this is 0."""
    copies = ledger_entries.alias("copy")
    query = (
        select(ledger_entries.c.id)
        .where(
            ledger_entries.c.key_id == key_id,
            ledger_entries.c.origin_key_id.is_(None),
            ~select(copies.c.id)
            .where(copies.c.origin_id == ledger_entries.c.id, copies.c.key_id.in_(others))
            .exists(),
        )
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(query)).scalar_one())
