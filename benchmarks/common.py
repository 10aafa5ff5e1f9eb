"""What the campaign benchmarks share: a throwaway store filled fast, Redis, worker processes.

Synthetic people only: person{n}@example.no, +47 4xxxxxxx mobile numbers that are made
up and never dialled, names and streets from Faker's Norwegian locale (a pool, reused).
Every row goes in with COPY (`suppression.bulk.insert_rows`); keyed hashes are the real
HMACs of those identities, so that the person-by-person baseline finds them.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from queue import Empty
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from faker import Faker
from sqlalchemy import Connection, Engine, text

from campaigns.schema import consent_records, contact_sources, contacts, customers
from suppression.bulk import insert_rows
from suppression.calendar import OSLO, is_public_holiday
from suppression.keys import Hasher
from suppression.register import name_address_key
from suppression.schema import ledger_entries, register_entries, register_snapshots
from worker.broker import SEND_QUEUE, make_broker
from worker.context import make_clock


def _working_morning() -> datetime:
    """10:00 Oslo on the latest working day up to today, in this month where there is one:
    the one instant every benchmark launches, sends and dates its data at, so that calling
    hours (TP-5), quiet hours (ES-6) and the register's month (TP-2) hold on any day."""
    today = make_clock(None)().astimezone(OSLO).date()
    day = today
    while day.weekday() >= 5 or is_public_holiday(day):
        day -= timedelta(days=1)
    if day.month != today.month:
        day = today
        while day.weekday() >= 5 or is_public_holiday(day):
            day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=OSLO).astimezone(UTC)


NOW = _working_morning()

SECRET = "benchmark-only-secret-key-0123456789"
# The key a rotation moves to (OUTREACH_SECRET_KEY after it; SECRET is then the previous key).
NEW_SECRET = "benchmark-only-rotated-key-9876543210"
ORG_NAME = "Trygg Hjem Alarm AS"
ORG_NUMBER = "999999999"
PARTNER = "Partner A"
# Db 12: the tests use 13 and 14 and the SMS benchmark 15; two runs sharing a db would
# take each other's messages.
REDIS_URL = os.environ.get("OUTREACH_CAMPAIGN_BENCH_REDIS", "redis://127.0.0.1:6379/12")
EMAIL_TEMPLATE = (
    "Subject: Nytt fra {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n\nVi har et tilbud på alarm til deg.\n{{ source_notice }}\n"
    "Avmeld: {{ unsubscribe_url }}\n"
)
# Every n-th person is a customer with an active contract (ES-2, TP-3).
CUSTOMER_EVERY = 10


def rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def email_of(n: int) -> str:
    return f"person{n}@example.no"


def phone_of(n: int) -> str:
    return f"+474{n:07d}"


def rotated_hasher() -> Hasher:
    """The keys after a rotation: NEW_SECRET current, SECRET the previous key."""
    return Hasher(NEW_SECRET.encode(), previous=[SECRET.encode()])


@dataclass
class People:
    """Synthetic contacts 0..count-1; contact id = n + 1. Under the hasher's current
    key, but the people in `old` under its previous key (a rotation under way: contacts
    not re-keyed yet)."""

    count: int
    hasher: Hasher
    now: datetime = NOW
    old: Collection[int] = frozenset()

    def _pool(self) -> list[tuple[str, str, str, str, str]]:
        fake = Faker("no_NO")  # Faker's Norwegian (bokmål) locale; it has no "nb_NO"
        fake.seed_instance(47)
        return [
            (
                fake.first_name(),
                fake.last_name(),
                fake.street_address(),
                fake.postcode(),
                fake.city(),
            )
            for _ in range(997)
        ]

    def contact_rows(self) -> Iterator[tuple[Any, ...]]:
        pool = self._pool()
        digest = self.hasher.digest
        current = self.hasher.key_id
        old, previous = self.old, key_of_old(self.hasher, self.old)
        for n in range(self.count):
            first, last, street, postal, city = pool[n % len(pool)]
            email, phone = email_of(n), phone_of(n)
            key_id = previous if n in old else current
            yield (
                n + 1, email, digest("email", email, key_id), phone, "mobile",
                digest("phone", phone, key_id), key_id, first, last, street, postal, city,
                digest("name_address", name_address_key(f"{first} {last}", street, postal), key_id),
                True, n % CUSTOMER_EVERY == 0, self.now, self.now,
            )  # fmt: skip

    def insert(self, conn: Connection) -> None:
        insert_rows(
            conn,
            contacts,
            (
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
            ),
            self.contact_rows(),
        )
        given = self.now - timedelta(days=20)
        insert_rows(
            conn,
            consent_records,
            (
                "contact_id",
                "source",
                "source_ref",
                "given_at",
                "channels",
                "wording_version",
                "captured_at",
                "company_named",
                "explicit_call_request",
                "multi_company_form",
                "from_partner",
                "recorded_at",
            ),
            (
                (
                    n + 1,
                    f"partner:{PARTNER}",
                    f"L{n}",
                    given - timedelta(minutes=n % 50_000),
                    "email,sms",
                    "v3",
                    "https://partner.example.no/skjema",
                    ORG_NAME,
                    False,
                    False,
                    True,
                    self.now,
                )
                for n in range(self.count)
            ),
        )
        insert_rows(
            conn,
            contact_sources,
            ("contact_id", "source", "source_ref", "imported_at"),
            ((n + 1, f"partner:{PARTNER}", f"L{n}", self.now) for n in range(self.count)),
        )
        insert_rows(
            conn,
            customers,
            (
                "contact_id",
                "customer_id",
                "contract_status",
                "contract_end",
                "product_categories",
                "email_source",
                "email_from_sale",
                "opt_out_offered",
                "imported_at",
            ),
            (
                (n + 1, f"C{n}", "active", date(2030, 1, 1), "alarm", "sale", True, True, self.now)
                for n in range(0, self.count, CUSTOMER_EVERY)
            ),
        )
        if conn.dialect.name == "postgresql":
            for table in ("contacts", "consent_records", "contact_sources", "customers"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )


def key_of_old(hasher: Hasher, old: Collection[int]) -> str:
    """The key id of what `old` names: the hasher's previous key (its current one when
    nothing is old)."""
    if not old:
        return hasher.key_id
    if not hasher.previous_key_ids:
        raise ValueError("people under a previous key need a hasher with one")
    return hasher.previous_key_ids[0]


def _hits(rng: random.Random, people: int, hit_share: float) -> list[int]:
    return rng.sample(range(people), int(people * hit_share))


def old_people(people: int, hit_share: float, old_every: int, seed: int = 7) -> frozenset[int]:
    """The people whose ledger entry `ledger_rows(..., old_every=...)` writes under the
    previous key (every `old_every`-th entry): their no was recorded before the rotation
    and not copied forward yet, so their contacts are still under that key too."""
    if not old_every:
        return frozenset()
    return frozenset(_hits(random.Random(seed), people, hit_share)[::old_every])


def ledger_rows(
    hasher: Hasher,
    people: int,
    total: int,
    hit_share: float,
    seed: int = 7,
    old_every: int = 0,
) -> Iterator[tuple[Any, ...]]:
    """`total` ledger entries: about `hit_share` of the people have one (email
    unsubscribes mostly, some objections, SMS and phone opt-outs, a few alarm contacts);
    the rest are identities we do not hold (random digests). Under the hasher's current
    key; with `old_every`, every `old_every`-th entry under its previous key only (made
    before the rotation: the people of `old_people`, and strangers)."""
    rng = random.Random(seed)
    now = NOW
    hits = _hits(rng, people, hit_share)
    current = hasher.key_id
    previous = hasher.previous_key_ids[0] if old_every else current

    def key_of(count: int) -> str:
        return previous if old_every and count % old_every == 0 else current

    kinds = (
        ("email", "email", "unsubscribe", 60),
        ("email", "all", "objection", 10),
        ("phone", "sms", "unsubscribe", 15),
        ("phone", "phone", "objection", 12),
        ("phone", "all", "alarm_contact", 3),
    )
    weights = [k[3] for k in kinds]
    count = 0
    for n in hits:
        kind, scope, reason, _ = rng.choices(kinds, weights)[0]
        value = email_of(n) if kind == "email" else phone_of(n)
        entry_kind = "exclusion" if reason == "alarm_contact" else "suppression"
        key_id = key_of(count)
        yield (
            hasher.digest(kind, value, key_id), key_id, kind, entry_kind, scope, reason, "bench",
            f"hit-{count}", "", now - timedelta(days=rng.randrange(700)), now, "bench",
        )  # fmt: skip
        count += 1
    while count < total:
        yield (
            rng.randbytes(32), key_of(count), "email", "suppression", "email", "unsubscribe",
            "bench", f"other-{count}", "", now - timedelta(days=rng.randrange(700)), now, "bench",
        )  # fmt: skip
        count += 1


LEDGER_COLUMNS = (
    "key_hash", "key_id", "identity_kind", "kind", "scope", "reason", "source", "source_event",
    "evidence_ref", "occurred_at", "recorded_at", "actor",
)  # fmt: skip


def insert_ledger(
    conn: Connection,
    hasher: Hasher,
    people: int,
    total: int,
    hits: float,
    old_every: int = 0,
) -> None:
    insert_rows(
        conn,
        ledger_entries,
        LEDGER_COLUMNS,
        ledger_rows(hasher, people, total, hits, old_every=old_every),
    )


def insert_register(
    conn: Connection,
    hasher: Hasher,
    people: int,
    total: int,
    listed_share: float,
    seed: int = 9,
    old: Collection[int] = frozenset(),
) -> None:
    """An active snapshot dated today (fresh for TP-2) of `total` entries: about
    `listed_share` of the people's phone numbers reserved against calls, the rest
    numbers and name+address keys of people we do not hold. A listed person is under
    the key their contact is stored under (`old`: the previous key), as a snapshot
    loaded before the rotation is once its contacts' digests are copied forward."""
    previous = key_of_old(hasher, old)
    rng = random.Random(seed)
    now = NOW
    snapshot_id = conn.execute(
        register_snapshots.insert()
        .values(
            snapshot_date=now.date(),
            sha256="0" * 64,
            loaded_at=now,
            row_count=total,
            phone_reservations=total,
            post_reservations=0,
            key_id=hasher.key_id,
            active=True,
        )
        .returning(register_snapshots.c.id)
    ).scalar_one()

    def rows() -> Iterator[tuple[Any, ...]]:
        listed = rng.sample(range(people), int(people * listed_share))
        current = hasher.key_id
        for n in listed:
            key_id = previous if n in old else current
            yield (
                snapshot_id,
                hasher.digest("phone", phone_of(n), key_id),
                key_id,
                "phone",
                True,
                rng.random() < 0.3,
            )
        for _ in range(total - len(listed)):
            kind = "phone" if rng.random() < 0.7 else "name_address"
            yield (
                snapshot_id, rng.randbytes(32), current, kind, kind == "phone", rng.random() < 0.5
            )  # fmt: skip

    insert_rows(
        conn,
        register_entries,
        ("snapshot_id", "key_hash", "key_id", "identity_kind", "reserved_phone", "reserved_post"),
        rows(),
    )


def analyze(engine: Engine) -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would give them later."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


class Timer:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        took, self.started = now - self.started, now
        return took


def run(target: Callable[..., None], *args: Any) -> Any:
    """Run `target(*args, queue)` in a fresh process (spawn: nothing inherited, so that its
    peak memory is its own) and return what it put on the queue."""
    (result,) = run_all([(target, *args)])
    return result


def run_all(calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Each (target, *args) as `run` does, all at once; what each put, in order."""
    ctx = multiprocessing.get_context("spawn")
    started = []
    for target, *args in calls:
        queue = ctx.Queue()
        proc = ctx.Process(target=target, args=(*args, queue))
        proc.start()
        started.append((target, proc, queue))
    results = []
    for target, proc, queue in started:
        while True:
            try:
                results.append(queue.get(timeout=1))
                break
            except Empty:
                if not proc.is_alive():  # died before it answered
                    raise RuntimeError(
                        f"{target.__name__} failed with exit code {proc.exitcode}"
                    ) from None
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"{target.__name__} failed with exit code {proc.exitcode}")
    return results


# -- Redis and worker processes ------------------------------------------------------------


def flush_redis(url: str = REDIS_URL) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


class Enqueuer:
    """Raw `send_batch` messages on our own RedisBroker (what worker.actors.enqueue_batch
    sends), and no-op messages for the dramatiq baseline."""

    def __init__(self, url: str = REDIS_URL) -> None:
        broker = make_broker(url)
        assert isinstance(broker, RedisBroker)
        self.broker = broker

    def send_batch(self, campaign_id: int, batch_no: int) -> None:
        self.message(SEND_QUEUE, "send_batch", campaign_id, batch_no)

    def message(self, queue: str, actor: str, *args: Any) -> None:
        self.broker.enqueue(
            dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})
        )

    def join(self, queue: str, timeout_s: float) -> None:
        self.broker.join(queue, interval=20, timeout=int(timeout_s * 1000))

    def close(self) -> None:
        self.broker.close()


@dataclass
class WorkerProcesses:
    """`dramatiq worker.actors [more modules]` processes configured as `outreach worker`
    runs them (one message prefetched per process), each in its own process group."""

    env: dict[str, str]
    logs: Path
    modules: tuple[str, ...] = ("worker.actors",)
    threads: int = 4
    prefetch: int | None = 1  # None: dramatiq's default (2 per thread)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, count: int, ready_timeout: float = 60) -> None:
        env = dict(self.env)
        if self.prefetch is not None:
            env["dramatiq_queue_prefetch"] = str(self.prefetch)
        first = len(self.procs)
        for i in range(first, first + count):
            log = (self.logs / f"worker-{i}.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dramatiq", *self.modules,
                     "--processes", "1", "--threads", str(self.threads)],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            )  # fmt: skip
            log.close()
        deadline = time.monotonic() + ready_timeout
        while not all(
            b"ready for action" in (self.logs / f"worker-{i}.log").read_bytes()
            for i in range(first, first + count)
        ):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"workers did not start; see {self.logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()


def _tree(pid: int) -> list[int]:
    """A process and its descendants (Linux /proc)."""
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found.extend(_tree(int(child)))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class CpuMeter:
    """CPU spent by the worker processes and by this database's PostgreSQL backends between
    `start()` and `stop()`: what a run costs, whatever else the machine is doing."""

    def __init__(self, engine: Engine, workers: WorkerProcesses) -> None:
        self.engine = engine
        self.workers = workers
        self.before: dict[int, float] = {}

    def _backends(self) -> list[int]:
        with self.engine.connect() as conn:
            return [
                int(pid)
                for (pid,) in conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                )
            ]

    def _pids(self) -> dict[str, list[int]]:
        workers = [p for proc in self.workers.procs for p in _tree(proc.pid)]
        return {"workers": workers, "postgres": self._backends()}

    def start(self) -> None:
        self.before = {pid: cpu_seconds([pid]) for pids in self._pids().values() for pid in pids}

    def stop(self) -> dict[str, float]:
        return {
            kind: sum(cpu_seconds([pid]) - self.before.get(pid, 0.0) for pid in pids)
            for kind, pids in self._pids().items()
        }


def wait_until(condition: Callable[[], bool], timeout_s: float, tick: float = 0.02) -> float:
    """Seconds until `condition` held; raises TimeoutError after `timeout_s`."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"not within {timeout_s:.0f} s")
        time.sleep(tick)
    return time.perf_counter() - started
