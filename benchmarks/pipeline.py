"""The send path: recipients per second through two worker processes on Redis and PostgreSQL.

    python -m benchmarks.pipeline [--recipients 100000] [--batch-size 500] [--threads 4]
                                  [--prefetch 2] [--skip-baseline] [--baseline-sample 5000]

On a throwaway PostgreSQL database, N synthetic partner leads with consent are loaded
(COPY) with a ledger of 10 N entries (2 % of the people in it), an email campaign is
launched, and 1 % of the recipients opt out after the launch (they must be stopped by
the send-time check). Two `dramatiq worker.actors` processes (prefetch 2, as `outreach
worker` runs them; --prefetch to try others) on Redis db 12 then send it through the
outbox channel: the figure is recipients per second from the first enqueue to the
campaign being `done`, i.e. the whole send path per recipient: claim (queued ->
sending), render, the send-time re-check of the ledger and the frequency cap, the
outbox write (fsynced), the outcome and the contact's last-contacted time. Beside it,
the CPU the worker processes and the database's PostgreSQL backends spent per
recipient (from /proc): a figure that holds whatever else the machine is doing.

Baseline in the same run: dramatiq's own rate for one message per recipient, a no-op
actor (`bench_noop` below, imported by the workers), from the first enqueue to the
last acknowledgement: the ceiling of a design that sends one message per recipient,
before any work is done. Measured on the same two processes (prefetch 1, on a sample
of --baseline-sample messages: it is slow there), then on two fresh processes with
dramatiq's default prefetch (all N messages).

The run checks what it measured: every eligible recipient ends sent or excluded at
send, the outbox holds exactly one message per sent recipient, and every late opt-out
was stopped.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import dramatiq
from sqlalchemy import func, select

from worker import actors as _actors  # noqa: F401  (this process's broker, before the actor)
from worker.commands.processes import PREFETCH

NOOP_QUEUE = "bench_noop"


@dramatiq.actor(actor_name="bench_noop", queue_name=NOOP_QUEUE, max_retries=0)
def bench_noop(n: int) -> None:
    """One message per recipient, doing nothing: dramatiq's own cost per message."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--prefetch",
        type=int,
        default=PREFETCH,
        help=f"messages per process ({PREFETCH}: as `outreach worker`)",
    )
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--baseline-sample", type=int, default=5_000)
    args = parser.parse_args(argv)

    from benchmarks import common
    from campaigns import campaign as campaign_mod
    from campaigns import launch as launch_mod
    from campaigns.campaign_schema import campaigns, recipients
    from campaigns.channels.outbox import OutboxChannel
    from suppression.keys import Hasher, KeyedHash
    from suppression.ledger import Ledger
    from suppression.policy import PolicyConfig
    from tests.services import throwaway_postgres
    from worker import db

    n = args.recipients
    hasher = Hasher(common.SECRET.encode())
    policy = PolicyConfig(organisation_name=common.ORG_NAME, organisation_number=common.ORG_NUMBER)
    with throwaway_postgres("outreach_bench") as url, tempfile.TemporaryDirectory() as tmp:
        db.upgrade(url)
        engine = db.engine_for(url)
        timer = common.Timer()
        with engine.begin() as conn:
            common.People(n, hasher).insert(conn)
            common.insert_ledger(conn, hasher, n, 10 * n, 0.02)
        common.analyze(engine)
        print(f"store: {n:,} people, {10 * n:,} ledger entries loaded in {timer.lap():.1f} s")

        with engine.begin() as conn:
            camp = campaign_mod.create(
                conn, name="Vårkampanje", channel="email", purpose="alarm",
                template_text=common.EMAIL_TEMPLATE, organisation_name=common.ORG_NAME,
                batch_size=args.batch_size, now=common.NOW,
            )  # fmt: skip
            summary = launch_mod.launch(conn, hasher, policy, camp.id, now=common.NOW)
            numbers = launch_mod.batches_to_enqueue(conn, camp.id)
        launch_s = timer.lap()
        rng = random.Random(11)
        with engine.connect() as conn:
            queued = conn.execute(
                select(recipients.c.id, recipients.c.key_hash).where(
                    recipients.c.campaign_id == camp.id, recipients.c.state == "queued"
                )
            ).all()
        late = rng.sample(queued, len(queued) // 100)
        with engine.begin() as conn:
            ledger = Ledger(conn, hasher)
            for rid, digest in late:
                ledger.add(
                    KeyedHash(hasher.key_id, bytes(digest)), "email", scope="email",
                    reason="unsubscribe", source="bench", source_event=f"late-{rid}",
                    now=common.NOW,
                )  # fmt: skip
        common.analyze(engine)
        print(
            f"campaign {camp.id}: {summary.audience:,} audience, {summary.eligible:,} eligible "
            f"in {len(numbers)} batches of {args.batch_size} (launch {launch_s:.1f} s); "
            f"{len(late):,} opt-outs committed after the launch"
        )

        common.flush_redis()
        outbox = Path(tmp) / "outbox"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")},
            "DATABASE_URL": url,
            "REDIS_URL": common.REDIS_URL,
            "OUTREACH_SECRET_KEY": common.SECRET,
            "OUTREACH_ORGANISATION_NAME": common.ORG_NAME,
            "OUTREACH_ORGANISATION_NUMBER": common.ORG_NUMBER,
            "OUTREACH_OUTBOX_DIR": str(outbox),
            "OUTREACH_LOG_LEVEL": "WARNING",
        }
        workers = common.WorkerProcesses(
            env,
            Path(tmp),
            modules=("worker.actors", "benchmarks.pipeline"),
            threads=args.threads,
            prefetch=args.prefetch,
        )
        enqueuer = common.Enqueuer()
        try:
            workers.start(args.processes)
            print(
                f"{args.processes} worker processes x {args.threads} threads, prefetch "
                f"{args.prefetch}{' (as `outreach worker` runs them)' if args.prefetch == PREFETCH else ''}"
                ", Redis and PostgreSQL on this machine"
            )

            def done() -> bool:
                with engine.connect() as conn:
                    state = conn.execute(
                        select(campaigns.c.state).where(campaigns.c.id == camp.id)
                    ).scalar_one()
                return bool(state == "done")

            meter = common.CpuMeter(engine, workers)
            meter.start()
            started = time.perf_counter()
            for batch_no in numbers:
                enqueuer.send_batch(camp.id, batch_no)
            common.wait_until(done, timeout_s=max(600, n / 100))
            took = time.perf_counter() - started
            cpu = meter.stop()

            with engine.connect() as conn:
                states = Counter(
                    {
                        s: int(c)
                        for s, c in conn.execute(
                            select(recipients.c.state, func.count())
                            .where(recipients.c.campaign_id == camp.id)
                            .group_by(recipients.c.state)
                        )
                    }
                )
                stopped_late = conn.execute(
                    select(func.count()).where(
                        recipients.c.id.in_([rid for rid, _ in late]),
                        recipients.c.state == "excluded_at_send",
                    )
                ).scalar_one()
            messages = OutboxChannel(outbox, "email").messages(camp.id)
            per_recipient = Counter(int(m["recipient_id"]) for m in messages)
            ok = (
                states["sent"] + states["excluded_at_send"] == summary.eligible
                and len(per_recipient) == len(messages) == states["sent"]
                and stopped_late == len(late)
            )
            rate = summary.eligible / took
            print(
                f"send path: {summary.eligible:,} recipients in {took:.2f} s from the first "
                f"enqueue to campaign done: {rate:,.0f} recipients/s, "
                f"{1e6 / rate:.0f} us per recipient (target >= 10,000/s, <= 100 us)"
            )
            per = {k: v / summary.eligible * 1e6 for k, v in cpu.items()}
            cores = os.cpu_count() or 1
            print(
                f"  CPU per recipient: worker processes {per['workers']:.0f} us, PostgreSQL "
                f"backends {per['postgres']:.0f} us; with {cores} cores to themselves "
                f"they would allow {cores * 1e6 / sum(per.values()):,.0f} recipients/s "
                f"(load average at the end: {os.getloadavg()[0]:.1f})"
            )
            print(
                f"  states {dict(states)}; outbox {len(messages):,} messages, "
                f"{len(per_recipient):,} recipients; late opt-outs stopped "
                f"{stopped_late}/{len(late)}; checks {'OK' if ok else 'FAILED'}"
            )

            if not args.skip_baseline:
                # On the same processes (low prefetch) dramatiq fetches the next message only
                # after a backoff sleep: a few ms per message, so a sample is enough.
                sample = min(n, args.baseline_sample)
                same = _baseline(enqueuer, sample)
                print(
                    f"dramatiq baseline, one no-op message per recipient on the same two "
                    f"processes (prefetch {args.prefetch}): {same:,.0f} messages/s "
                    f"({sample:,} messages); "
                    f"the batched send path is {rate / same:,.0f}x that"
                )
                workers.stop()
                workers.prefetch = None
                workers.start(args.processes)
                default = _baseline(enqueuer, n)
                print(
                    f"dramatiq baseline with its default prefetch ({2 * args.threads} per "
                    f"process, two fresh processes): {default:,.0f} messages/s ({n:,} "
                    f"messages); the batched send path is {rate / default:.1f}x that"
                )
        finally:
            workers.stop()
            enqueuer.close()
            engine.dispose()
    return 0 if ok else 1


def _baseline(enqueuer: object, count: int) -> float:
    """Messages per second from the first enqueue to the last ack, enqueued from 4 threads
    (one thread enqueues slower than the workers consume)."""
    from benchmarks.common import Enqueuer

    assert isinstance(enqueuer, Enqueuer)
    threads = 4
    started = time.perf_counter()

    def put(part: int) -> None:
        for i in range(part, count, threads):
            enqueuer.message(NOOP_QUEUE, "bench_noop", i)

    pool = [threading.Thread(target=put, args=(p,)) for p in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    enqueued = time.perf_counter() - started
    enqueuer.join(NOOP_QUEUE, timeout_s=max(600, count / 100))
    took = time.perf_counter() - started
    print(f"  (no-op messages enqueued in {enqueued:.1f} s, all acknowledged at {took:.1f} s)")
    return count / took


if __name__ == "__main__":
    sys.exit(main())
