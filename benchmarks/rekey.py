"""Re-keying after a rotation: contacts per second through `outreach keys rekey`, against
the plain rewrite of the same digests.

    python -m benchmarks.rekey [--contacts 1000000] [--ledger 2000000] [--register 3000000]
                               [--batch N] [--sqlite-contacts 100000] [--no-sqlite]

On a throwaway PostgreSQL database: N synthetic partner leads with consent (every tenth
also a customer) under the old key (benchmarks.common.SECRET), a ledger of L entries
under it (10 % of the people have a no: email unsubscribes, objections, SMS and phone
opt-outs, alarm contacts; the rest are identities we do not hold) and an active register
snapshot of R entries (30 % of the people's phones listed), all loaded with COPY. Then
OUTREACH_SECRET_KEY becomes NEW_SECRET with the old key as the previous one, and
`campaigns.rekeying.rekey_all` (what `outreach keys rekey` calls; --batch contacts a
transaction, by default its own: campaigns.rekeying.CHUNK on PostgreSQL, BATCH on SQLite)
moves every contact to the new key in a fresh process: its three digests re-hashed,
every ledger and register entry of theirs copied under the new digests, every (old, new)
pair kept in key_forwards. The figure is contacts per second (target on PostgreSQL:
>= 50,000/s), with the CPU this process and the PostgreSQL backend spent (from /proc),
which says where the time goes whatever else the machine does.

The ceiling, in the same run, on a second store holding the same contacts (and nothing
else): the same chunks read the same way (keyset on id, unlocked), the same three
HMAC-SHA256 digests computed in Python, and the new digests (id + three digests a
contact) written the cheapest way the server takes them, a binary COPY into a table
without an index, one transaction a chunk (SQLite: an executemany). That is the store's
own limit for writing what a rekey has to write, whatever the design; the ratio of the
two rates is printed, and what separates them is the rekey's own writes (new row
versions of the contacts and their index entries, the copies, key_forwards).

The run checks what it measured: no contact left under the old key, every contact's
digests those of the new key, one ledger copy per no, one register copy per listed
person, a key_forwards pair per digest, and a second run that finds nothing to do.
Then the same on SQLite with --sqlite-contacts people (the ledger and register scaled
alike; no target there).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HIT_SHARE = 0.10
LISTED_SHARE = 0.30
TARGET_RATE = 50_000
SAMPLE = 2_000  # contacts whose new digests are recomputed and compared


def _seed(url: str, contacts: int, ledger: int, register: int, full: bool, out: Any) -> None:
    """The store under the old key; `full`: with the ledger and the register too."""
    from benchmarks import common
    from suppression.keys import Hasher
    from worker import db

    hasher = Hasher(common.SECRET.encode())
    engine = db.engine_for(url)
    timer = common.Timer()
    with engine.begin() as conn:
        common.People(contacts, hasher).insert(conn)
    people_s = timer.lap()
    ledger_s = register_s = 0.0
    if full:
        with engine.begin() as conn:
            common.insert_ledger(conn, hasher, contacts, ledger, HIT_SHARE)
        ledger_s = timer.lap()
        with engine.begin() as conn:
            common.insert_register(conn, hasher, contacts, register, LISTED_SHARE)
        register_s = timer.lap()
    _analyze(engine)
    engine.dispose()
    out.put((people_s, ledger_s, register_s, timer.lap()))


def _analyze(engine: Any) -> None:
    from sqlalchemy import text

    from benchmarks import common

    if engine.dialect.name == "postgresql":
        common.analyze(engine)
    else:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))


class _Meter:
    """Wall time, this process's CPU and (PostgreSQL) the CPU of the engine's one pooled
    connection's backend: the work runs on that connection, one transaction after another."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import text

        self.backend: int | None = None
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                self.backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def __enter__(self) -> _Meter:
        from benchmarks import common

        self.pg = common.cpu_seconds([self.backend]) if self.backend else 0.0
        self.cpu = time.process_time()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        from benchmarks import common

        self.seconds = time.perf_counter() - self.started
        self.cpu = time.process_time() - self.cpu
        self.pg = (common.cpu_seconds([self.backend]) - self.pg) if self.backend else 0.0

    def figures(self) -> dict[str, Any]:
        from benchmarks import common

        return {
            "seconds": self.seconds,
            "cpu": self.cpu,
            "pg_cpu": self.pg,
            "rss_mb": common.rss_mb(),
        }


def _rekey(url: str, batch: int, out: Any) -> None:
    """`rekey_all` to the new key, then again (nothing left to do)."""
    from benchmarks import common
    from campaigns.rekeying import rekey_all
    from worker import db

    hasher = common.rotated_hasher()
    engine = db.engine_for(url, pool_size=1)
    meter = _Meter(engine)
    with meter:
        done = rekey_all(engine, hasher, lambda: common.NOW, batch=batch)
    again = rekey_all(engine, hasher, lambda: common.NOW, batch=batch)
    engine.dispose()
    out.put({**meter.figures(), "done": done.as_dict(), "again": again.as_dict()})


_CEILING_TABLE = "ceiling_digests"


def _ceiling(url: str, batch: int, out: Any) -> None:
    """The store's own limit for what the rekey writes: the same chunks read the same way
    (keyset on id, binary, unlocked: campaigns.rekeying.READ_CHUNK), the same three
    HMAC-SHA256 digests computed in Python (Hasher.digest), and the new digests (id and
    three digests a contact) written the cheapest way the server takes them: a binary
    COPY into a table without an index, one transaction a chunk. Nothing is updated,
    copied or forwarded: what is left of the rekey's time beyond this is the rekey's
    own writes (the contacts' new row versions and index entries, the ledger and register
    copies, key_forwards). SQLite (no COPY) inserts the same rows with an executemany."""
    from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, Table, select

    from benchmarks import common
    from campaigns.bulkcopy import copy_rows
    from campaigns.rekeying import READ_CHUNK, driver_cursor, name_address_of
    from campaigns.schema import contacts
    from worker import db

    hasher = common.rotated_hasher()
    digest, current = hasher.digest, hasher.key_id
    engine = db.engine_for(url, pool_size=1)
    written_to = Table(
        _CEILING_TABLE,
        MetaData(),
        Column("id", BigInteger),
        Column("email_hash", LargeBinary),
        Column("phone_hash", LargeBinary),
        Column("name_address_hash", LargeBinary),
    )
    written_to.create(engine)
    postgres = engine.dialect.name == "postgresql"
    read = (
        "id", "key_id", "email", "email_hash", "phone", "phone_hash", "first_name",
        "last_name", "street", "postal_code", "name_address_hash",
    )  # fmt: skip
    meter = _Meter(engine)
    written = 0
    with meter:
        after = 0
        while True:
            with engine.begin() as conn:
                rows: list[tuple[Any, ...]]
                if postgres:
                    with driver_cursor(conn) as cur:
                        cur.execute(READ_CHUNK, (current, after, batch), binary=True)
                        rows = cur.fetchall()
                else:
                    rows = [
                        tuple(r)
                        for r in conn.execute(
                            select(*(contacts.c[c] for c in read))
                            .where(contacts.c.key_id != current, contacts.c.id > after)
                            .order_by(contacts.c.id)
                            .limit(batch)
                        )
                    ]
                if not rows:
                    break
                digests = []
                for cid, _key, email, _e, phone, _p, first, last, street, postal, _a in rows:
                    key = name_address_of(first, last, street, postal)
                    digests.append(
                        (
                            cid,
                            digest("email", email),
                            digest("phone", phone),
                            digest("name_address", key) if key else None,
                        )
                    )
                copy_rows(conn, written_to, [c.name for c in written_to.c], digests)
            written += len(rows)
            after = int(rows[-1][0])
    engine.dispose()
    out.put({**meter.figures(), "written": written})


def _check(url: str, contacts_n: int, out: Any) -> None:
    """What the rekey left: [problem, ...] and the counts it compared."""
    from sqlalchemy import func, select

    from benchmarks import common
    from campaigns.rekeying import name_address_of
    from campaigns.schema import contacts
    from suppression.schema import key_forwards, ledger_entries, register_entries
    from worker import db

    hasher = common.rotated_hasher()
    engine = db.engine_for(url)
    problems: list[str] = []
    with engine.connect() as conn:

        def count(table: Any, *where: Any) -> int:
            return int(
                conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            )

        left = count(contacts, contacts.c.key_id != hasher.key_id)
        copies = count(ledger_entries, ledger_entries.c.origin_id.is_not(None))
        ledger_new = count(ledger_entries, ledger_entries.c.key_id == hasher.key_id)
        register_new = count(register_entries, register_entries.c.key_id == hasher.key_id)
        forwards = count(key_forwards)
        # People share a name+address key where the synthetic pool repeats (benchmarks.
        # common.People): one pair per distinct digest.
        addresses = int(
            conn.execute(
                select(func.count(func.distinct(contacts.c.name_address_hash)))
            ).scalar_one()
        )
        ids = random.Random(3).sample(range(1, contacts_n + 1), min(SAMPLE, contacts_n))
        sample = conn.execute(select(contacts).where(contacts.c.id.in_(ids))).all()
    engine.dispose()
    hits, listed = int(contacts_n * HIT_SHARE), int(contacts_n * LISTED_SHARE)
    if left:
        problems.append(f"{left:,} contacts still under the old key")
    if not (copies == ledger_new == hits):
        problems.append(f"ledger copies {copies:,} (under the new key {ledger_new:,}) != {hits:,}")
    if register_new != listed:
        problems.append(f"register copies {register_new:,} != {listed:,} listed people")
    if forwards != 2 * contacts_n + addresses:
        problems.append(
            f"key_forwards {forwards:,} != 2 x {contacts_n:,} + {addresses:,} name+address keys"
        )
    wrong = 0
    for row in sample:
        key = name_address_of(row.first_name, row.last_name, row.street, row.postal_code)
        wanted = (
            hasher.digest("email", row.email),
            hasher.digest("phone", row.phone),
            hasher.digest("name_address", key) if key else None,
        )
        got = tuple(
            bytes(d) if d is not None else None
            for d in (row.email_hash, row.phone_hash, row.name_address_hash)
        )
        wrong += got != wanted
    if wrong:
        problems.append(f"{wrong:,} of {len(sample):,} sampled contacts hold wrong digests")
    out.put(
        {
            "problems": problems,
            "ledger_copies": copies,
            "register_copies": register_new,
            "forwards": forwards,
            "sampled": len(sample),
        }
    )


def run_store(name: str, url: str, ceiling_url: str, n: int, args: Any) -> tuple[float, list[str]]:
    """Seed, rekey, ceiling and checks on one kind of store; (rekey rate, problems)."""
    from benchmarks import common
    from worker import db

    scale = n / args.contacts
    ledger, register = int(args.ledger * scale), int(args.register * scale)
    for u in (url, ceiling_url):
        db.upgrade(u)
    (people_s, ledger_s, register_s, analyze_s), (ceiling_people_s, *_) = common.run_all(
        [(_seed, url, n, ledger, register, True), (_seed, ceiling_url, n, ledger, register, False)]
    )
    print(
        f"{name}: {n:,} contacts with consent under the old key in {people_s:.1f} s, "
        f"{ledger:,} ledger entries ({int(n * HIT_SHARE):,} of them the people's no's) in "
        f"{ledger_s:.1f} s, a {register:,}-entry register snapshot "
        f"({int(n * LISTED_SHARE):,} of the people listed) in {register_s:.1f} s, "
        f"ANALYZE {analyze_s:.1f} s; the ceiling's store (the same contacts) in "
        f"{ceiling_people_s:.1f} s (both at once)",
        flush=True,
    )
    from campaigns.rekeying import BATCH, CHUNK

    size = args.batch or (CHUNK if url.startswith("postgresql") else BATCH)
    got = common.run(_rekey, url, size)
    done = got["done"]
    rate = done["contacts_rekeyed"] / got["seconds"]
    print(
        f"  rekey_all: {done['contacts_rekeyed']:,} contacts in {got['seconds']:.1f} s = "
        f"{rate:,.0f} contacts/s (chunks of {size:,}); "
        f"{done['ledger_entries_copied']:,} ledger and {done['register_entries_copied']:,} "
        f"register entries copied, {done['contacts_kept']:,} kept, "
        f"{len(done['conflicts']):,} conflicts; peak RSS {got['rss_mb']:.0f} MB",
        flush=True,
    )
    if got["pg_cpu"]:
        print(
            f"  where the time goes (CPU): this process {got['cpu'] / n * 1e6:.1f} us/contact "
            f"({got['cpu']:.1f} s), the PostgreSQL backend {got['pg_cpu'] / n * 1e6:.1f} "
            f"us/contact ({got['pg_cpu']:.1f} s)",
            flush=True,
        )
    else:
        print(f"  CPU: this process (SQLite within it) {got['cpu'] / n * 1e6:.1f} us/contact")
    ceiling = common.run(_ceiling, ceiling_url, size)
    ceiling_rate = ceiling["written"] / ceiling["seconds"]
    pg = (
        f", the PostgreSQL backend {ceiling['pg_cpu'] / n * 1e6:.1f} us/contact"
        if ceiling["pg_cpu"]
        else ""
    )
    how = "a binary COPY" if ceiling["pg_cpu"] else "an executemany"
    print(
        f"  ceiling, the same chunks read and hashed and the new digests written by {how} "
        f"into a table without an index, nothing else: {ceiling['written']:,} contacts in "
        f"{ceiling['seconds']:.1f} s = {ceiling_rate:,.0f} contacts/s (CPU: this process "
        f"{ceiling['cpu'] / n * 1e6:.1f} us/contact{pg}); rekey / ceiling = "
        f"{rate / ceiling_rate:.2f}",
        flush=True,
    )
    checked = common.run(_check, url, n)
    problems = [f"{name}: {p}" for p in checked["problems"]]
    again = got["again"]
    if again["contacts_rekeyed"] or again["ledger_entries_copied"]:
        problems.append(f"{name}: a second rekey did something: {again}")
    if done["contacts_rekeyed"] != n:
        problems.append(f"{name}: {done['contacts_rekeyed']:,} contacts rekeyed of {n:,}")
    if not problems:
        print(
            f"  checked: every contact under the new key ({checked['sampled']:,} sampled "
            f"digests recomputed), {checked['ledger_copies']:,} ledger copies (one per no), "
            f"{checked['register_copies']:,} register copies (one per listed person), "
            f"{checked['forwards']:,} key_forwards pairs; a second rekey found nothing to do",
            flush=True,
        )
    return rate, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--ledger", type=int, default=2_000_000)
    parser.add_argument("--register", type=int, default=3_000_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="contacts per transaction (default: rekey_all's, CHUNK on PostgreSQL, BATCH on SQLite)",
    )
    parser.add_argument("--sqlite-contacts", type=int, default=100_000)
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args(argv)
    if args.ledger < args.contacts * HIT_SHARE or args.register < args.contacts * LISTED_SHARE:
        parser.error("--ledger and --register must hold the hits (10 % and 30 % of --contacts)")

    from tests.services import throwaway_postgres

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    problems: list[str] = []
    with (
        throwaway_postgres("outreach_bench_rekey") as url,
        throwaway_postgres("outreach_bench_rekey_ceiling") as ceiling_url,
    ):
        rate, found = run_store("PostgreSQL", url, ceiling_url, args.contacts, args)
        problems += found
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            _, found = run_store(
                "SQLite",
                f"sqlite:///{Path(tmp) / 'rekey.db'}",
                f"sqlite:///{Path(tmp) / 'ceiling.db'}",
                args.sqlite_contacts,
                args,
            )
            problems += found
    print(
        f"\ntarget on PostgreSQL: >= {TARGET_RATE:,} contacts/s: {rate:,.0f} -> "
        f"{'target met' if rate >= TARGET_RATE else 'target missed'}; load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    for problem in problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
