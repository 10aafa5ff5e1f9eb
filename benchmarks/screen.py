"""Bulk screening: identities per second against the ledger and the register snapshot.

    python -m benchmarks.screen [--identities 1000000] [--ledger 2000000] [--register 3000000]
                                [--sample 20000] [--repeat 3] [--sqlite-scale 1.0]

Builds a throwaway PostgreSQL database (tests/services.py `throwaway_postgres`, migrated
with `worker.db.upgrade`) and a SQLite file, and fills both with synthetic keyed digests
through `suppression.bulk.insert_rows` (COPY on PostgreSQL): a ledger of --ledger entries
and an active register snapshot of --register entries. Digests are random 32-byte
strings, which is what HMAC-SHA256 outputs look like; the identities screened are
--identities of them, of which 5 % have ledger entries (a tenth of those two, an older
objection and a later opt-out), 10 % are in the register, 0.5 % in both; the other
entries belong to people not screened. Entries are written in random key order, as a
ledger grows over time.

Each figure comes from a fresh child process (so that ru_maxrss is that run's peak):
- bulk: `suppression.screening.screen` over a lazy stream of all identities, counting
  the hits; run --repeat times (the machine may be shared: every run is printed, the
  best and the median too);
- naive: one query per identity (the ledger by key hash, then the register), as
  `Ledger.status` and `register.lookup` do, on the first --sample identities only, and
  bulk on the same sample; their results (every digest, entry id and reservation flag)
  must be equal, and the bulk hit counts on all identities must be the expected ones,
  or the exit status is 1.

Peak memory is the child's peak resident size (VmHWM; ru_maxrss where /proc is
missing): the interpreter, SQLAlchemy, psycopg and the identities' digests themselves
(32 bytes each, held as one bytes object) included; the figure before screening is
printed beside it. So is the load average (1 min, the higher of before and after): on a
shared machine other processes take their share of the CPUs, and the rates with them. Targets (issue 2): >= 200k identities/s
on PostgreSQL, peak memory <= 500 MB. SQLite sizes are --sqlite-scale times the others
(printed); its fill goes through SQLAlchemy's executemany and takes minutes at full size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, select, text

from benchmarks import common
from suppression.bulk import insert_rows
from suppression.calendar import OSLO
from suppression.ledger import Entry, Status
from suppression.schema import ledger_entries, register_entries, register_snapshots
from suppression.screening import Hit, Reservation, screen

SEED = 2
TARGET_RATE = 200_000
TARGET_MB = 500
KEY_ID = "benchkey0000"


# -- the synthetic population ---------------------------------------------------------------


def identities(count: int) -> bytes:
    """The screened identities' digests, 32 bytes each, in one bytes object."""
    return random.Random(SEED).randbytes(32 * count)


def stream(blob: bytes, count: int) -> Iterator[bytes]:
    return (blob[32 * i : 32 * i + 32] for i in range(count))


def in_ledger(i: int) -> bool:
    return i % 20 == 0


def in_register(i: int) -> bool:
    return i % 10 == 1 or i % 200 == 0


def expected_counts(count: int) -> dict[str, int]:
    ledger = sum(1 for i in range(count) if in_ledger(i))
    register = sum(1 for i in range(count) if in_register(i))
    both = sum(1 for i in range(count) if in_ledger(i) and in_register(i))
    return {"hits": ledger + register - both, "ledger": ledger, "register": register}


LEDGER_COLUMNS = (
    "key_hash", "key_id", "identity_kind", "kind", "scope", "reason", "source",
    "source_event", "evidence_ref", "occurred_at", "recorded_at", "actor",
)  # fmt: skip
SCOPES = ("email", "email", "sms", "all", "phone", "post")


def _interleave(hits: list[Any], total: int, rng: random.Random) -> Iterator[Any | None]:
    """`total` slots with the hits at random places (None elsewhere), in O(1) extra memory:
    each slot is a hit with probability hits left / slots left."""
    left = len(hits)
    for slot in range(total):
        if left and rng.random() * (total - slot) < left:
            yield hits[len(hits) - left]
            left -= 1
        else:
            yield None


def ledger_rows(blob: bytes, count: int, total: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED + 1)
    now = common.NOW
    hits: list[tuple[bytes, str, str]] = []
    for n, i in enumerate(i for i in range(count) if in_ledger(i)):
        digest = blob[32 * i : 32 * i + 32]
        if n % 10 == 0:
            hits.append((digest, "all", "objection"))
        hits.append((digest, SCOPES[n % len(SCOPES)], "unsubscribe"))
    for n, hit in enumerate(_interleave(hits, total, rng)):
        digest, scope, reason = hit or (rng.randbytes(32), SCOPES[n % len(SCOPES)], "unsubscribe")
        kind = "phone" if scope in ("sms", "phone") else "email"
        when = now - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
        yield (
            digest, KEY_ID, kind, "suppression", scope, reason, "bench", f"event-{n}",
            "", when, now, "bench",
        )  # fmt: skip


def register_rows(
    blob: bytes, count: int, total: int, snapshot_id: int
) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED + 2)
    listed = [blob[32 * i : 32 * i + 32] for i in range(count) if in_register(i)]
    for digest in _interleave(listed, total, rng):
        reservation = rng.random()
        yield (
            snapshot_id, digest or rng.randbytes(32), "phone", reservation < 0.8, reservation > 0.6,
        )  # fmt: skip


# -- building the stores ---------------------------------------------------------------------


@contextmanager
def indexes_dropped(conn: Connection, table: str) -> Iterator[None]:
    """Build indexes once after a bulk load instead of row by row (as a restore does).
    SQLite's inline UNIQUE constraints cannot be dropped and stay."""
    found = inspect(conn)
    indexes = [i for i in found.get_indexes(table) if not i.get("duplicates_constraint")]
    uniques = found.get_unique_constraints(table) if conn.dialect.name == "postgresql" else []
    for index in indexes:
        conn.execute(text(f'DROP INDEX "{index["name"]}"'))
    for unique in uniques:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{unique["name"]}"'))
    yield
    for index in indexes:
        columns = ", ".join(str(c) for c in index["column_names"])
        conn.execute(text(f'CREATE INDEX "{index["name"]}" ON {table} ({columns})'))
    for unique in uniques:
        columns = ", ".join(unique["column_names"])
        conn.execute(
            text(f'ALTER TABLE {table} ADD CONSTRAINT "{unique["name"]}" UNIQUE ({columns})')
        )


def fill(engine: Engine, count: int, ledger: int, register: int) -> dict[str, float]:
    blob = identities(count)
    took: dict[str, float] = {}
    now = common.NOW
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("PRAGMA cache_size = -512000"))  # 512 MB for the index builds
        started = time.perf_counter()
        with indexes_dropped(conn, "ledger_entries"):
            insert_rows(conn, ledger_entries, LEDGER_COLUMNS, ledger_rows(blob, count, ledger))
        took["ledger"] = time.perf_counter() - started
        started = time.perf_counter()
        snapshot_id = conn.execute(
            register_snapshots.insert()
            .values(
                snapshot_date=common.NOW.astimezone(OSLO).date(), sha256="0" * 64, loaded_at=now, row_count=register,
                phone_reservations=0, post_reservations=0, key_id=KEY_ID, active=True,
            )
            .returning(register_snapshots.c.id)
        ).scalar_one()  # fmt: skip
        with indexes_dropped(conn, "register_entries"):
            insert_rows(
                conn,
                register_entries,
                ("snapshot_id", "key_hash", "identity_kind", "reserved_phone", "reserved_post"),
                register_rows(blob, count, register, snapshot_id),
            )
        took["register"] = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load: planner statistics, visibility map.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return took


# -- measuring, in a child process -------------------------------------------------------------


def fingerprint(hits: Iterator[tuple[bytes, Hit]]) -> tuple[str, dict[str, int]]:
    """A checksum over every hit (digest, ledger entry ids in order, reservation flags),
    independent of the order of hits, and counts."""
    total = 0
    counts = {"hits": 0, "ledger": 0, "register": 0, "entries": 0}
    for digest, hit in hits:
        ids = [e.id for e in hit.ledger.entries]
        flags = (hit.register.reserved_phone, hit.register.reserved_post) if hit.register else None
        one = hashlib.sha256(digest + repr((ids, flags)).encode()).digest()
        total = (total + int.from_bytes(one, "big")) % 2**256
        counts["hits"] += 1
        counts["ledger"] += bool(ids)
        counts["register"] += hit.register is not None
        counts["entries"] += len(ids)
    return f"{total:064x}", counts


def naive(conn: Connection, digests: Iterator[bytes]) -> Iterator[tuple[bytes, Hit]]:
    """One query per identity: its ledger entries (as `Ledger.status` asks), then its
    register reservations (as `register.lookup` asks)."""
    snapshot_id = conn.execute(
        select(register_snapshots.c.id).where(register_snapshots.c.active.is_(True))
    ).scalar_one()
    for digest in digests:
        rows = conn.execute(
            select(ledger_entries)
            .where(ledger_entries.c.key_hash == digest)
            .order_by(ledger_entries.c.occurred_at, ledger_entries.c.id)
        ).all()
        flags = conn.execute(
            select(register_entries.c.reserved_phone, register_entries.c.reserved_post).where(
                register_entries.c.snapshot_id + 0 == snapshot_id,
                register_entries.c.key_hash == digest,
            )
        ).all()
        if not rows and not flags:
            continue
        entries = [
            Entry(
                id=r.id, key_hash=bytes(r.key_hash), kind=r.kind, scope=r.scope, reason=r.reason,
                source=r.source, evidence_ref=r.evidence_ref, actor=r.actor,
                occurred_at=r.occurred_at if r.occurred_at.tzinfo else r.occurred_at.replace(tzinfo=UTC),
            )
            for r in rows
        ]  # fmt: skip
        register = (
            Reservation(any(f[0] for f in flags), any(f[1] for f in flags)) if flags else None
        )
        yield digest, Hit(Status(entries), register)


def peak_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux a child's
    ru_maxrss starts at its parent's resident size when it forked."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, mode: str, count: int) -> dict[str, Any]:
    from worker import db

    engine = db.engine_for(url)
    blob = identities(count)
    with engine.connect() as conn:  # connect and warm up outside the timed part
        conn.execute(text("SELECT 1"))
    rss_before = peak_mb()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with engine.begin() as conn:
        hits = (
            screen(conn, stream(blob, count))
            if mode == "bulk"
            else naive(conn, stream(blob, count))
        )
        print_, counts = fingerprint(hits)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "mode": mode,
        "identities": count,
        "seconds": seconds,
        "rate": count / seconds,
        "rss_before_mb": rss_before,
        "peak_mb": peak_mb(),
        "load": max(load_before, os.getloadavg()[0]),
        "fingerprint": print_,
        "counts": counts,
    }


def child(url: str, mode: str, count: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.screen", "--measure", url, mode, str(count)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- the run -------------------------------------------------------------------------------------


def run_store(
    name: str, url: str, count: int, ledger: int, register: int, sample: int, repeat: int
) -> tuple[list[str], list[dict[str, Any]]]:
    from worker import db

    problems: list[str] = []
    db.upgrade(url)
    engine = db.engine_for(url)
    print(f"\n{name}: ledger {ledger:,} entries, register {register:,} entries, "
          f"screening {count:,} identities")  # fmt: skip
    took = fill(engine, count, ledger, register)
    engine.dispose()
    print(f"  fill: ledger {took['ledger']:.1f} s, register {took['register']:.1f} s "
          f"(indexes built after the load)")  # fmt: skip
    runs = [child(url, "bulk", count) for _ in range(repeat)]
    for run in runs:
        print(f"  bulk  {run['identities']:>9,} identities in {run['seconds']:6.2f} s = "
              f"{run['rate']:>9,.0f} identities/s, peak {run['peak_mb']:.0f} MB "
              f"(before screening {run['rss_before_mb']:.0f} MB), load {run['load']:.1f}")  # fmt: skip
    rates = [r["rate"] for r in runs]
    print(f"  bulk  best {max(rates):,.0f} /s, median {statistics.median(rates):,.0f} /s, "
          f"peak memory at most {max(r['peak_mb'] for r in runs):.0f} MB")  # fmt: skip
    expected = expected_counts(count)
    got = {k: runs[0]["counts"][k] for k in expected}
    if got != expected:
        problems.append(f"{name}: bulk hit counts {got} != expected {expected}")
    if len({r["fingerprint"] for r in runs}) != 1:
        problems.append(f"{name}: bulk runs disagree")
    sample = min(sample, count)
    slow = child(url, "naive", sample)
    quick = child(url, "bulk", sample)
    print(f"  naive {sample:>9,} identities (a sample) in {slow['seconds']:6.2f} s = "
          f"{slow['rate']:>9,.0f} identities/s, peak {slow['peak_mb']:.0f} MB, "
          f"load {slow['load']:.1f}")  # fmt: skip
    print(f"  bulk  {sample:>9,} identities (same sample) = {quick['rate']:>9,.0f} identities/s; "
          f"bulk on all vs naive on the sample: x{statistics.median(rates) / slow['rate']:.0f}")  # fmt: skip
    if slow["fingerprint"] != quick["fingerprint"] or slow["counts"] != quick["counts"]:
        problems.append(f"{name}: bulk and naive results differ on the sample")
    else:
        print(f"  bulk == naive on the sample: {quick['counts']['hits']:,} hits, "
              f"{quick['counts']['entries']:,} ledger entries, same digests, ids and flags")  # fmt: skip
    return problems, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=1_000_000)
    parser.add_argument("--ledger", type=int, default=2_000_000)
    parser.add_argument("--register", type=int, default=3_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="identities for the naive path")
    parser.add_argument("--repeat", type=int, default=3, help="bulk runs per store")
    parser.add_argument("--sqlite-scale", type=float, default=1.0, help="SQLite sizes x this")
    parser.add_argument(
        "--measure", nargs=3, metavar=("URL", "MODE", "COUNT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.measure:
        url, mode, count = args.measure
        print(json.dumps(measure(url, mode, int(count))))
        return 0
    if (
        args.ledger < expected_counts(args.identities)["ledger"] * 1.1
        or args.register < expected_counts(args.identities)["register"]
    ):
        parser.error("--ledger and --register must hold the hits (5 % and 10.5 % of --identities)")

    from tests.services import throwaway_postgres

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    problems: list[str] = []
    with throwaway_postgres("outreach_bench_screen") as url:
        found, pg_runs = run_store(
            "PostgreSQL", url, args.identities, args.ledger, args.register, args.sample, args.repeat
        )
        problems += found
    scale = args.sqlite_scale
    with tempfile.TemporaryDirectory() as tmp:
        found, _ = run_store(
            "SQLite" + (f" (sizes x {scale})" if scale != 1 else ""),
            f"sqlite:///{Path(tmp) / 'screen.db'}",
            int(args.identities * scale),
            int(args.ledger * scale),
            int(args.register * scale),
            args.sample,
            args.repeat,
        )
        problems += found
    best = max(r["rate"] for r in pg_runs)
    median = statistics.median(r["rate"] for r in pg_runs)
    peak = max(r["peak_mb"] for r in pg_runs)
    print(f"\ntarget on PostgreSQL: >= {TARGET_RATE:,} identities/s: median {median:,.0f}, "
          f"best {best:,.0f} -> {'met' if median >= TARGET_RATE else 'NOT met'}; "
          f"peak memory <= {TARGET_MB} MB: {peak:.0f} MB -> {'met' if peak <= TARGET_MB else 'NOT met'}")  # fmt: skip
    for problem in problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
