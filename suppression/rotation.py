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

A batch's pairs are a few thousand, the ledger and the register millions of rows: on
PostgreSQL each pair probes their key_hash index (a LATERAL subquery the planner cannot
flatten, "OFFSET 0"), where a join would have let it hash the whole ledger and register
for every batch (a rekey of a million contacts in hours, not seconds). SQLite joins by
nested loops, and probes the index by itself.
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
# identity_kind: email, phone or name_address; NULL where the caller does not say.
_CREATE: Final = {
    "postgresql": f"CREATE TEMPORARY TABLE IF NOT EXISTS {_PAIRS} "
    "(old_hash bytea NOT NULL, old_key_id text NOT NULL, new_hash bytea NOT NULL, "
    "new_key_id text NOT NULL, identity_kind text)",
    "sqlite": f"CREATE TEMPORARY TABLE IF NOT EXISTS {_PAIRS} "
    "(old_hash BLOB NOT NULL, old_key_id TEXT NOT NULL, new_hash BLOB NOT NULL, "
    "new_key_id TEXT NOT NULL, identity_kind TEXT)",
}
_PAIR_COLUMNS: Final = ("old_hash", "old_key_id", "new_hash", "new_key_id", "identity_kind")
# The same temporary table, for bulk inserts into it.
_pairs = Table(
    _PAIRS,
    MetaData(),
    Column("old_hash", LargeBinary),
    Column("old_key_id", String),
    Column("new_hash", LargeBinary),
    Column("new_key_id", String),
    Column("identity_kind", String),
)
# The ledger's columns a copy keeps as they are (campaigns.rekeying copies them too).
LEDGER_KEPT: Final = (
    "identity_kind", "kind", "scope", "reason", "source", "source_event", "evidence_ref",
    "occurred_at", "recorded_at", "actor",
)  # fmt: skip
_INTO_LEDGER: Final = (
    f"INSERT INTO ledger_entries ({', '.join(LEDGER_KEPT)}, key_hash, key_id, origin_id, "
    f"origin_key_id) SELECT {', '.join('e.' + c for c in LEDGER_KEPT)}, p.new_hash, p.new_key_id, "
    "e.id, e.key_id "
)
# "WHERE true": SQLite would read the upsert's ON CONFLICT as the join's.
_LEDGER_CONFLICT: Final = "WHERE true ON CONFLICT (key_hash, source, source_event) DO NOTHING"
_COPY_LEDGER: Final = {
    "postgresql": _INTO_LEDGER
    + f"FROM {_PAIRS} p CROSS JOIN LATERAL (SELECT * FROM ledger_entries l"
    " WHERE l.key_hash = p.old_hash OFFSET 0) e " + _LEDGER_CONFLICT,
    "sqlite": _INTO_LEDGER
    + f"FROM ledger_entries e JOIN {_PAIRS} p ON e.key_hash = p.old_hash "
    + _LEDGER_CONFLICT,
}
_INTO_REGISTER: Final = (
    "INSERT INTO register_entries (snapshot_id, key_id, key_hash, identity_kind, "
    "reserved_phone, reserved_post) SELECT DISTINCT r.snapshot_id, p.new_key_id, p.new_hash, "
    "r.identity_kind, r.reserved_phone, r.reserved_post "
)
# The register holds phones and names+addresses, never an email: such a pair probes nothing.
_MAY_BE_LISTED: Final = "COALESCE(p.identity_kind, '') <> 'email'"
_COPY_REGISTER: Final = {
    # Per pair one probe of the key_hash index, and for a hit one more (NOT EXISTS).
    "postgresql": _INTO_REGISTER
    + f"FROM {_PAIRS} p CROSS JOIN LATERAL (SELECT l.* FROM register_entries l"
    " JOIN register_snapshots s ON s.id = l.snapshot_id AND s.active"
    " WHERE l.key_hash = p.old_hash AND NOT EXISTS (SELECT 1 FROM register_entries x"
    " WHERE x.key_hash = p.new_hash AND x.snapshot_id = l.snapshot_id) OFFSET 0) r"
    f" WHERE {_MAY_BE_LISTED}",
    "sqlite": _INTO_REGISTER + f"FROM register_entries r JOIN {_PAIRS} p ON r.key_hash = p.old_hash"
    " JOIN register_snapshots s ON s.id = r.snapshot_id AND s.active"
    f" WHERE {_MAY_BE_LISTED} AND NOT EXISTS (SELECT 1 FROM register_entries x"
    " WHERE x.key_hash = p.new_hash AND x.snapshot_id = r.snapshot_id)",
}
# The pairs of the call before, gone: TRUNCATE on PostgreSQL, where a DELETE would leave
# the temporary table (never vacuumed) a batch of dead rows longer every batch.
_CLEAR: Final = {"postgresql": f"TRUNCATE {_PAIRS}", "sqlite": f"DELETE FROM {_PAIRS}"}
_KEEP_FORWARDS: Final = (
    "INSERT INTO key_forwards (old_hash, old_key_id, new_hash, new_key_id, created_at) "
    # Each old digest is once in the table (copy_pairs).
    f"SELECT old_hash, old_key_id, new_hash, new_key_id, :now FROM {_PAIRS} "
    "WHERE true ON CONFLICT (old_hash) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Forward:
    """One identity's digest under the key it was stored under, and under the new key;
    `kind` the identity's (email, phone, name_address), None where not known."""

    old: KeyedHash
    new: KeyedHash
    kind: str | None = None


@dataclass(slots=True)
class Copied:
    ledger_entries: int = 0
    register_entries: int = 0

    def __iadd__(self, other: Copied) -> Copied:
        self.ledger_entries += other.ledger_entries
        self.register_entries += other.register_entries
        return self


# (old digest, its key id, new digest, its key id, identity kind or None): a Forward, flat.
Pair = tuple[bytes, str, bytes, str, str | None]


def copy_forward(conn: Connection, forwards: Iterable[Forward], now: datetime) -> Copied:
    """Copy under each new digest what the old one had in the ledger and the active
    register snapshot, and keep the pairs (within the caller's transaction)."""
    return copy_pairs(
        conn,
        ((f.old.digest, f.old.key_id, f.new.digest, f.new.key_id, f.kind) for f in forwards),
        now,
    )


def copy_pairs(conn: Connection, pairs: Iterable[Pair], now: datetime) -> Copied:
    """`copy_forward` of flat pairs, as a rekey of many contacts makes them."""
    # Each old digest once (people who share a name and address share its digest), so
    # that no statement below meets one twice (and key_forwards' key is the old digest).
    rows = list({p[0]: p for p in pairs if p[0] != p[2]}.values())
    if not rows:
        return Copied()
    dialect = conn.dialect.name
    conn.execute(text(_CREATE[dialect]))
    conn.execute(text(_CLEAR[dialect]))
    insert_rows(conn, _pairs, _PAIR_COLUMNS, rows)
    copied = Copied(
        ledger_entries=conn.execute(text(_COPY_LEDGER[dialect])).rowcount,
        register_entries=conn.execute(text(_COPY_REGISTER[dialect])).rowcount,
    )
    conn.execute(text(_KEEP_FORWARDS), {"now": now})
    conn.execute(text(_CLEAR[dialect]))
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
