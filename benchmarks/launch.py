"""Launching a campaign: seconds from `launch` to every recipient decided and every batch
enqueued, and peak memory, against a naive person-by-person baseline.

    python -m benchmarks.launch [--contacts 1000000 --ledger 2000000 --register 3000000]
                                [--sample 2000] [--no-call] [--tracemalloc] [--history N]

On a throwaway PostgreSQL database: N synthetic partner leads with consent (every tenth
also a customer with an active contract), a ledger of L entries (5 % of the people have
one: email unsubscribes, objections, SMS and phone opt-outs, alarm contacts; the rest are
identities we do not hold) and an active register snapshot of R entries dated today (30 %
of the people's phone numbers reserved against calls; the rest numbers and name+address
keys of strangers), all loaded with COPY. Then, each in a fresh process so that its peak
memory is its own:

* an email campaign over everyone is launched with `campaigns.launch.launch` (one
  transaction: every decision, every recipient row and unsubscribe token) and its
  batches are enqueued on Redis (db 12, a RedisBroker, raw `send_batch` messages as
  `worker.actors.enqueue_batch` sends them); the figure is the wall time of both and
  the process's peak RSS (ru_maxrss);
* the same for a call campaign (it also reads the register), unless --no-call;
* the naive baseline decides a random sample of the audience person by person, as
  `outreach explain` does (`campaigns.people.find` + `facts` + `suppression.policy.decide`,
  a few queries per person), and extrapolates its rate to N; every sampled decision
  must equal the launch's (decision, rule, basis and evidence).

With --history N, the store also holds N earlier email campaigns to everyone that finished
60 days ago (a recipient row per contact each, as months of campaigns leave behind): the
launch's figures should not grow with them.

With --tracemalloc, one more email campaign is launched under tracemalloc for the
Python heap's peak (slower; its time is not a figure).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
import tracemalloc
from typing import Any

TEMPLATES = {
    "email": None,  # benchmarks.common.EMAIL_TEMPLATE
    "call": "Samtale fra {{ organisation.name }}. {{ source_notice }} {{ unsubscribe_url }}",
}


def _seed(url: str, contacts: int, ledger: int, register: int, out: Any) -> None:
    from benchmarks import common
    from suppression.keys import Hasher
    from worker import db

    hasher = Hasher(common.SECRET.encode())
    engine = db.engine_for(url)
    timer = common.Timer()
    with engine.begin() as conn:
        common.People(contacts, hasher).insert(conn)
    people_s = timer.lap()
    with engine.begin() as conn:
        common.insert_ledger(conn, hasher, contacts, ledger, 0.05)
    ledger_s = timer.lap()
    with engine.begin() as conn:
        common.insert_register(conn, hasher, contacts, register, 0.30)
    register_s = timer.lap()
    common.analyze(engine)
    engine.dispose()
    out.put((people_s, ledger_s, register_s, timer.lap()))


def _history(url: str, campaigns: int, days_ago: int, out: Any) -> None:
    """`campaigns` earlier email campaigns to everyone, finished `days_ago` days ago, each
    with a `sent` recipient row per contact (INSERT ... SELECT on the server): the rows a
    store holds after months of campaigns, which the frequency cap (ALL-8) must not read."""
    from datetime import timedelta

    from sqlalchemy import text

    from benchmarks import common
    from campaigns import campaign as campaign_mod
    from worker import db

    engine = db.engine_for(url)
    timer = common.Timer()
    when = common.NOW - timedelta(days=days_ago)
    for n in range(campaigns):
        with engine.begin() as conn:
            camp = campaign_mod.create(
                conn, name=f"Earlier {n + 1}", channel="email", purpose="alarm",
                template_text=common.EMAIL_TEMPLATE, organisation_name=common.ORG_NAME,
                sender=campaign_mod.Sender(from_name=common.ORG_NAME), now=when,
            )  # fmt: skip
            conn.execute(
                text(
                    "UPDATE campaigns SET state = 'done', launched_at = :at, finished_at = :at "
                    "WHERE id = :id"
                ),
                {"id": camp.id, "at": when},
            )
            conn.execute(
                text(
                    "INSERT INTO recipients (campaign_id, contact_id, key_hash, decision, rule,"
                    " basis, evidence, state, batch_no, sent_at, updated_at)"
                    " SELECT :id, c.id, c.email_hash, 'send', 'ES-1', 'consent', '', 'sent',"
                    " (row_number() OVER (ORDER BY c.id) - 1) / 500, :at, :at"
                    " FROM contacts c WHERE c.email_hash IS NOT NULL"
                ),
                {"id": camp.id, "at": when},
            )
    common.analyze(engine)
    engine.dispose()
    out.put(timer.lap())


def _launch(url: str, channel: str, trace: bool, out: Any) -> None:
    """One launch in this (fresh) process: (seconds, summary, peak RSS MB, heap peak MB)."""
    from benchmarks import common
    from campaigns import campaign as campaign_mod
    from campaigns import launch as launch_mod
    from suppression.keys import Hasher
    from suppression.policy import PolicyConfig
    from worker import db

    hasher = Hasher(common.SECRET.encode())
    policy = PolicyConfig(organisation_name=common.ORG_NAME, organisation_number=common.ORG_NUMBER)
    engine = db.engine_for(url)
    enqueuer = common.Enqueuer()
    template = TEMPLATES[channel] or common.EMAIL_TEMPLATE
    with engine.begin() as conn:
        camp = campaign_mod.create(
            conn, name=f"Benchmark ({channel})", channel=channel, purpose="alarm",
            template_text=template, organisation_name=common.ORG_NAME,
            sender=campaign_mod.Sender(from_name=common.ORG_NAME, caller_id="22334455"),
            now=common.NOW,
        )  # fmt: skip
    rss_before = common.rss_mb()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    cpu = time.process_time()
    with engine.begin() as conn:
        summary = launch_mod.launch(conn, hasher, policy, camp.id, now=common.NOW)
    decided = time.perf_counter() - started
    cpu = time.process_time() - cpu
    with engine.connect() as conn:
        numbers = launch_mod.batches_to_enqueue(conn, camp.id)
    for n in numbers:
        enqueuer.send_batch(camp.id, n)
    took = time.perf_counter() - started
    heap = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if trace:
        tracemalloc.stop()
    enqueuer.close()
    engine.dispose()
    out.put(
        {
            "campaign_id": camp.id,
            "seconds": took,
            "decided_seconds": decided,
            "cpu_seconds": cpu,
            "audience": summary.audience,
            "eligible": summary.eligible,
            "batches": len(numbers),
            "decisions": sorted(summary.by_decision.items(), key=lambda kv: -kv[1]),
            "rss_mb": common.rss_mb(),
            "rss_before_mb": rss_before,
            "heap_mb": heap,
        }
    )


def _naive(url: str, channel: str, campaign_id: int, sample: int, out: Any) -> None:
    """Person by person on a random sample: (seconds per person, mismatches, checked)."""
    from sqlalchemy import select

    from benchmarks import common
    from campaigns import people
    from campaigns.campaign_schema import recipients
    from campaigns.schema import contacts
    from suppression.identity import email_identity, phone_identity
    from suppression.keys import Hasher
    from suppression.policy import PolicyConfig, decide
    from worker import db

    hasher = Hasher(common.SECRET.encode())
    policy = PolicyConfig(organisation_name=common.ORG_NAME, organisation_number=common.ORG_NUMBER)
    engine = db.engine_for(url)
    with engine.connect() as conn:
        launched = conn.execute(
            select(
                recipients.c.contact_id, recipients.c.decision, recipients.c.rule,
                recipients.c.basis, recipients.c.evidence, contacts.c.email, contacts.c.phone,
            )
            .join(contacts, contacts.c.id == recipients.c.contact_id)
            .where(recipients.c.campaign_id == campaign_id)
        ).all()  # fmt: skip
        rows = random.Random(5).sample(launched, min(sample, len(launched)))
        del launched
        now = common.NOW
        mismatches = []
        started = time.perf_counter()
        naive = []
        for row in rows:
            ident = email_identity(row.email) if channel == "email" else phone_identity(row.phone)
            person = people.find(conn, hasher, ident)
            person_facts, register = people.facts(conn, hasher, person, channel)
            naive.append(decide(channel, "alarm", person_facts, register, policy, now))
        per_person = (time.perf_counter() - started) / len(rows)
    for row, decision in zip(rows, naive, strict=True):
        bulk = (row.decision, row.rule, row.basis, row.evidence)
        one = (decision.decision, decision.rule, decision.basis, " ".join(decision.evidence))
        if bulk != one:
            mismatches.append((int(row.contact_id), bulk, one))
    engine.dispose()
    out.put((per_person, mismatches[:5], len(mismatches), len(rows)))


def _run(target: Any, *args: Any) -> Any:
    """Run `target` in a fresh process (spawn: nothing inherited) and return what it put."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed with exit code {proc.exitcode}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--ledger", type=int, default=2_000_000)
    parser.add_argument("--register", type=int, default=3_000_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--no-call", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="earlier campaigns to everyone, finished 60 days ago, in the store",
    )
    args = parser.parse_args(argv)

    from benchmarks import common
    from tests.services import throwaway_postgres
    from worker import db

    ok = True
    with throwaway_postgres("outreach_bench_launch") as url:
        db.upgrade(url)
        common.flush_redis()
        people_s, ledger_s, register_s, analyze_s = _run(
            _seed, url, args.contacts, args.ledger, args.register
        )
        print(
            f"store: {args.contacts:,} contacts with consent in {people_s:.1f} s, "
            f"{args.ledger:,} ledger entries in {ledger_s:.1f} s, "
            f"{args.register:,}-entry register snapshot in {register_s:.1f} s, "
            f"VACUUM ANALYZE {analyze_s:.1f} s (PostgreSQL, COPY)"
        )
        if args.history:
            took = _run(_history, url, args.history, 60)
            print(
                f"history: {args.history} earlier email campaigns to everyone, finished 60 days "
                f"ago ({args.history * args.contacts:,} recipient rows) in {took:.1f} s"
            )
        channels = ["email"] if args.no_call else ["email", "call"]
        for channel in channels:
            got = _run(_launch, url, channel, False)
            rate = got["audience"] / got["seconds"]
            print(
                f"launch ({channel}): {got['seconds']:.1f} s for {got['audience']:,} contacts "
                f"({rate:,.0f}/s): decided and stored in {got['decided_seconds']:.1f} s "
                f"(this process's CPU {got['cpu_seconds']:.1f} s), "
                f"{got['batches']:,} batches enqueued on Redis; peak RSS {got['rss_mb']:.0f} MB "
                f"({got['rss_before_mb']:.0f} MB before the launch) "
                f"[target <= 10 s, <= 500 MB]"
            )
            shown = ", ".join(f"{d} {r} {n:,}" for (d, r), n in got["decisions"])
            print(f"  eligible {got['eligible']:,}; {shown}")
            per_person, examples, bad, checked = _run(
                _naive, url, channel, got["campaign_id"], args.sample
            )
            estimate = per_person * got["audience"]
            print(
                f"  naive baseline ({channel}), person by person on a random sample of "
                f"{checked:,}: {per_person * 1e3:.2f} ms per person, extrapolated to "
                f"{got['audience']:,}: {estimate:,.0f} s ({estimate / got['seconds']:.0f}x the "
                f"launch); decisions equal to the launch's: {checked - bad:,}/{checked:,}"
            )
            if bad:
                ok = False
                print(f"  MISMATCHES (contact, launch, naive): {examples}")
        if args.tracemalloc:
            got = _run(_launch, url, "email", True)
            print(
                f"under tracemalloc (one more email launch, {got['seconds']:.1f} s, not a "
                f"timing figure): Python heap peak {got['heap_mb']:.0f} MB, peak RSS "
                f"{got['rss_mb']:.0f} MB"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
