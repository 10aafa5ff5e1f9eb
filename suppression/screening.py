"""Bulk screening: which of many identities does the ledger or the register snapshot hold?

A campaign launch or an audience preview asks this for a million identities at once;
one query per identity would take minutes. Here the caller streams keyed digests in
and gets back only the hits, in bounded memory on both sides:

- PostgreSQL: the digests are COPYed in chunks into a TEMP table (dropped at commit)
  and matched against `ledger_entries` and the active snapshot's `register_entries`
  in one set-based query per round, whose hits stream back, sorted by digest,
  through a server-side cursor. The planner picks a hash join for big rounds and
  index probes for small ones.
- SQLite (and small inputs on PostgreSQL): chunked `IN (...)` queries on the
  indexed key hashes.

Digests are matched as given: to match entries written under an older key, pass the
digests under every key (`Hasher.all_digests`). A digest given twice in one round is
reported once.
"""

from __future__ import annotations

import sqlite3
import struct
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice
from typing import Any, Final

from sqlalchemy import Connection, select

from suppression.ledger import Entry, Status, entry_from_values
from suppression.schema import register_snapshots

# Digests per COPY write on PostgreSQL: what the client holds at once.
COPY_CHUNK: Final = 200_000
# Digests per set-based query on PostgreSQL: what the server hashes at once (~75 MB per
# million, see ROUND_SETTINGS). Each round scans the ledger and the register once.
ROUND: Final = 1_000_000
ROUND_SETTINGS: Final = {
    # Room to hash a round's digests in memory (~75 MB per million) instead of in batches.
    "work_mem": "256MB",
    # A server-side cursor is otherwise planned for its first rows (index probes per
    # digest); we read every row.
    "cursor_tuple_fraction": "1",
    # The row estimates of a semi-join are far too high and would trigger JIT
    # compilation that costs more than the whole query.
    "jit": "off",
}
# Digests per IN (...) query: big lists make SQLite's index probes more local; its
# limit on parameters (32766 by default since 3.32) is read from the connection.
IN_CHUNK: Final = 30_000
# Below this many digests, PostgreSQL screening uses IN (...) too: a temp table and a
# COPY cost more than they save.
SMALL: Final = 2_000
FETCH: Final = 10_000


@dataclass(frozen=True, slots=True)
class Reservation:
    """This identity's reservations in the active register snapshot (TP-1)."""

    reserved_phone: bool
    reserved_post: bool


@dataclass(slots=True)
class Hit:
    """What screening found for one digest: ledger entries (oldest first; empty when only
    the register holds it) and register reservations (None when not in the snapshot)."""

    ledger: Status = field(default_factory=Status)
    register: Reservation | None = None


def screen(
    conn: Connection,
    digests: Iterable[bytes],
    *,
    register: bool = True,
    copy_chunk: int = COPY_CHUNK,
    round_size: int = ROUND,
) -> Iterator[tuple[bytes, Hit]]:
    """Stream (digest, Hit) for every digest the ledger or the active register snapshot
    holds; digests found in neither are not yielded. `register=False` screens the
    ledger only. Runs inside `conn`'s transaction; the input is consumed lazily."""
    snapshot_id = _active_snapshot_id(conn) if register else None
    if conn.dialect.name != "postgresql":
        yield from _screen_in_lists(conn, iter(digests), snapshot_id)
        return
    source = iter(digests)
    first = list(islice(source, SMALL))
    if len(first) < SMALL:
        yield from _screen_in_lists(conn, iter(first), snapshot_id)
        return
    yield from _screen_copy(conn, chain(first, source), snapshot_id, copy_chunk, round_size)


def screen_ledger(conn: Connection, digests: Iterable[bytes]) -> Iterator[tuple[bytes, Status]]:
    """Stream (digest, Status) for the digests that have ledger entries."""
    for digest, hit in screen(conn, digests, register=False):
        yield digest, hit.ledger


def _active_snapshot_id(conn: Connection) -> int | None:
    found = conn.execute(
        select(register_snapshots.c.id).where(register_snapshots.c.active.is_(True))
    ).scalar()
    return None if found is None else int(found)


# --- IN (...) lists: SQLite, and small inputs -------------------------------------------

# Plain SQL with positional parameters: SQLAlchemy's per-parameter processing of
# expanding IN lists costs more than the queries themselves.
_LEDGER_IN = """
SELECT key_hash, id, kind, scope, reason, source, evidence_ref, occurred_at, actor
  FROM ledger_entries
 WHERE key_hash IN ({marks})
 ORDER BY key_hash, occurred_at, id
"""
# "+ 0": SQLite would otherwise probe the snapshot_id index, which matches every row
# of the snapshot, instead of the key_hash index.
_REGISTER_IN = """
SELECT key_hash, max(CAST(reserved_phone AS INTEGER)), max(CAST(reserved_post AS INTEGER))
  FROM register_entries
 WHERE snapshot_id + 0 = {mark} AND key_hash IN ({marks})
 GROUP BY key_hash
"""


def _screen_in_lists(
    conn: Connection, digests: Iterator[bytes], snapshot_id: int | None
) -> Iterator[tuple[bytes, Hit]]:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    size = IN_CHUNK
    raw = conn.connection.driver_connection
    if isinstance(raw, sqlite3.Connection):
        size = min(size, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1)
    while chunk := tuple(set(islice(digests, size))):
        _check_sizes(chunk)
        marks = ", ".join([mark] * len(chunk))
        hits: dict[bytes, Hit] = {}
        for key_hash, *fields in conn.exec_driver_sql(_LEDGER_IN.format(marks=marks), chunk):
            digest = bytes(key_hash)
            hits.setdefault(digest, Hit()).ledger.entries.append(_entry(digest, *fields))
        if snapshot_id is not None:
            query = _REGISTER_IN.format(mark=mark, marks=marks)
            for key_hash, phone, post in conn.exec_driver_sql(query, (snapshot_id, *chunk)):
                hits.setdefault(bytes(key_hash), Hit()).register = Reservation(
                    bool(phone), bool(post)
                )
        for digest in sorted(hits):
            yield digest, hits[digest]


# --- COPY into a temp table, one set-based query per round: PostgreSQL ------------------

_PGCOPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_PGCOPY_FIELD: Final = struct.pack("!hi", 1, 32)  # one field of 32 bytes
_PGCOPY_TRAILER: Final = struct.pack("!h", -1)

# Ledger rows and register rows of the round's digests, in one stream sorted by digest
# (ledger rows oldest first, then the register row), so that each digest's hit is
# complete when the next digest starts. The semi-joins report a repeated digest once.
_LEDGER_ROUND = """
SELECT l.key_hash, l.id, l.kind, l.scope, l.reason, l.source, l.evidence_ref,
       l.occurred_at, l.actor, NULL::boolean, NULL::boolean
  FROM ledger_entries l
 WHERE l.key_hash IN (SELECT digest FROM {table})
"""
_REGISTER_ROUND = """
UNION ALL
SELECT r.key_hash, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       bool_or(r.reserved_phone), bool_or(r.reserved_post)
  FROM register_entries r
 WHERE r.snapshot_id = %(snapshot_id)s AND r.key_hash IN (SELECT digest FROM {table})
 GROUP BY r.key_hash
"""
_ORDER = "ORDER BY 1, 8, 2"


def _screen_copy(
    conn: Connection,
    digests: Iterator[bytes],
    snapshot_id: int | None,
    copy_chunk: int,
    round_size: int,
) -> Iterator[tuple[bytes, Hit]]:
    # A name of its own: two screenings may be open in one transaction.
    table = f"screen_input_{uuid.uuid4().hex[:12]}"
    conn.exec_driver_sql(f"CREATE TEMP TABLE {table} (digest bytea NOT NULL) ON COMMIT DROP")
    previous = _set_local(conn, ROUND_SETTINGS)
    query = _LEDGER_ROUND + (_REGISTER_ROUND if snapshot_id is not None else "") + _ORDER
    query = query.format(table=table)
    while True:
        copied = _copy_round(conn, table, digests, copy_chunk, round_size)
        if copied == 0:
            break
        conn.exec_driver_sql(f"ANALYZE {table}")
        rows = conn.exec_driver_sql(
            query, {"snapshot_id": snapshot_id}, execution_options={"yield_per": FETCH}
        )
        yield from _group(rows)
        conn.exec_driver_sql(f"TRUNCATE {table}")
        if copied < round_size:
            break
    _set_local(conn, previous)


def _set_local(conn: Connection, settings: dict[str, str]) -> dict[str, str]:
    """Set planner settings for the rest of the transaction; returns the previous values."""
    previous = {}
    for name, value in settings.items():
        previous[name] = str(conn.exec_driver_sql(f"SELECT current_setting('{name}')").scalar())
        conn.exec_driver_sql("SELECT set_config(%(n)s, %(v)s, true)", {"n": name, "v": value})
    return previous


def _copy_round(
    conn: Connection, table: str, digests: Iterator[bytes], copy_chunk: int, round_size: int
) -> int:
    """COPY up to `round_size` digests in binary, `copy_chunk` at a time; returns how many."""
    copied = 0
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f"COPY {table} (digest) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_PGCOPY_HEADER)
        while copied < round_size:
            chunk = list(islice(digests, min(copy_chunk, round_size - copied)))
            if not chunk:
                break
            _check_sizes(chunk)  # a binary COPY row has a fixed size here
            copy.write(b"".join(_PGCOPY_FIELD + d for d in chunk))
            copied += len(chunk)
        copy.write(_PGCOPY_TRAILER)
    return copied


def _check_sizes(chunk: Iterable[bytes]) -> None:
    if set(map(len, chunk)) != {32}:
        raise ValueError("screening takes 32-byte keyed digests")


def _group(rows: Iterable[Any]) -> Iterator[tuple[bytes, Hit]]:
    """Fold the sorted round stream into one Hit per digest."""
    current: bytes | None = None
    hit = Hit()
    for digest, entry_id, kind, scope, reason, source, ref, at, actor, phone, post in rows:
        digest = bytes(digest)
        if digest != current:
            if current is not None:
                yield current, hit
            current, hit = digest, Hit()
        if entry_id is None:
            hit.register = Reservation(bool(phone), bool(post))
        else:
            hit.ledger.entries.append(
                _entry(digest, entry_id, kind, scope, reason, source, ref, at, actor)
            )
    if current is not None:
        yield current, hit


def _entry(
    key_hash: bytes,
    entry_id: int,
    kind: str,
    scope: str,
    reason: str,
    source: str,
    evidence_ref: str,
    occurred_at: datetime | str,
    actor: str,
) -> Entry:
    if isinstance(occurred_at, str):  # SQLite, read without SQLAlchemy's type processing
        occurred_at = datetime.fromisoformat(occurred_at)
    return entry_from_values(
        entry_id, key_hash, kind, scope, reason, source, evidence_ref, occurred_at, actor
    )
