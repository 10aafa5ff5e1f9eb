"""SMS throughput: the campaign engine, two worker processes, the real Twilio SDK, the fake.

    python -m benchmarks.sms [--recipients 20000] [--rate-limit 600] [--fake-mps N]
                             [--threads 4] [--naive 2000] [--no-unlimited]

Everything is real except Twilio: a throwaway PostgreSQL database, Redis (db 15 by
default, OUTREACH_BENCH_REDIS), two `dramatiq worker.actors` processes (two batches
prefetched each, as `outreach worker` runs them) sending through `TwilioSmsChannel` to
`python -m tests.fakes.twilio` in a process of its own (every request checked against
Twilio's OpenAPI document with openapi-core, a messages-per-second limit answered with
429). The campaign (SMS, `--rate-limit` messages per second, batches of a second's worth:
twenty sub-batches of a twentieth of a second, none left over smaller) is launched here
and its batches are put on Redis once the workers have sent a small warm-up campaign to
other people, as long-running workers have (a new process's first sub-batch takes some
100 ms longer while it compiles its statements). The figures come from the fake's own
per-message timestamps:

* messages/s from the first to the last message the fake accepted;
* whether the configured limit held within 5 %: no wall-clock second (the first and
  last, partial, seconds left out) more than 5 % over it, and the busiest sliding second
  (what the fake's own limit counts) not over it; the mean per wall-clock second as a
  share of the limit (the throttle keeps at least 5 % under it, more while sub-batches
  are slow to go out: worker/rate_limit.py);
* 429s received and duplicates (a number sent more than once);
* CPU seconds per 1,000 messages of the fake, of the workers and of the PostgreSQL
  backends serving the benchmark's database: where the time goes (the machine's load
  average is printed too: other work on it slows every figure).

The same run measures two baselines: the engine without a rate limit against a fake
without one (`--no-unlimited` skips it), and a naive sender, one SDK call per message in
a single thread, no engine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import common

REPO = Path(__file__).resolve().parents[1]
ORG_NAME = "Trygg Hjem Alarm AS"
ORG_NUMBER = "999999999"
SECRET = "benchmark-only-secret-0123456789"
SERVICE_SID = "MG" + "1" * 32
PUBLIC_URL = "https://outreach.example.no"
REDIS_URL = os.environ.get("OUTREACH_BENCH_REDIS", "redis://127.0.0.1:6379/15")
TEMPLATE = "{{ organisation.name }}: 20 % på alarm i vinter! {{ source_notice }} Stopp: {{ unsubscribe_url }}"
WORKERS = 2
STALL_SECONDS = 90
TARGET = 500  # messages per second (issue 5: 50 times a default alphanumeric sender's 10)
WARM_UP = 1_000  # people of the warm-up campaign (postal code 9990; the measured ones 0155)


# -- processes --------------------------------------------------------------------------


def _ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK"))


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _ticks()
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            total += sum(process_cpu(int(c)) for c in children)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving one database (their process title
    names it), summed over every backend seen while sampling."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.seen: dict[int, float] = {}
        self.before: dict[int, float] = {}

    def start(self) -> None:
        """Count from now on (what the backends spent so far is left out)."""
        self.seen.clear()
        self.sample()
        self.before = dict(self.seen)

    def sample(self) -> None:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if title.startswith("postgres:") and f" {self.database} " in title:
                pid = int(proc.name)
                self.seen[pid] = max(self.seen.get(pid, 0.0), process_cpu(pid))

    @property
    def total(self) -> float:
        return sum(cpu - self.before.get(pid, 0.0) for pid, cpu in self.seen.items())


@contextmanager
def fake_twilio(mps: int | None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    args = [sys.executable, "-m", "tests.fakes.twilio", "--port", "0"]
    if mps:
        args += ["--mps", str(mps)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(10)


def admin(base_url: str, action: str, payload: dict[str, Any] | None = None) -> Any:
    if payload is None and action == "state":
        request = urllib.request.Request(f"{base_url}/_fake/state")
    else:
        request = urllib.request.Request(
            f"{base_url}/_fake/{action}",
            data=json.dumps(payload or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


# -- the store ------------------------------------------------------------------------------


def populate(url: str, count: int) -> None:
    """`count` partner leads with SMS consent (postal code 0155) and WARM_UP more for the
    warm-up campaigns (9990), written in bulk."""
    from sqlalchemy import create_engine

    from campaigns.schema import consent_records, contact_sources, contacts
    from suppression.bulk import insert_rows
    from suppression.identity import normalise_phone
    from suppression.keys import Hasher

    hasher = Hasher(SECRET.encode())
    now = common.NOW
    engine = create_engine(url)
    with engine.begin() as conn:
        insert_rows(
            conn, contacts,
            ("id", "phone", "phone_type", "phone_hash", "key_id", "first_name", "last_name",
             "postal_code", "is_partner_lead", "is_customer", "created_at", "updated_at"),
            (
                (n + 1, p.e164, p.number_type, hasher.digest("phone", p.e164), hasher.key_id,
                 f"Kari{n}", "Nordmann", "0155" if n < count else "9990", True, False, now, now)
                for n in range(count + WARM_UP)
                for p in (normalise_phone(f"4{n:07d}"),)
            ),
        )  # fmt: skip
        insert_rows(
            conn, contact_sources, ("contact_id", "source", "source_ref", "imported_at"),
            ((n + 1, "partner:Partner A", f"L{n}", now) for n in range(count + WARM_UP)),
        )  # fmt: skip
        insert_rows(
            conn, consent_records,
            ("contact_id", "source", "source_ref", "given_at", "channels", "wording_version",
             "captured_at", "company_named", "explicit_call_request", "multi_company_form",
             "from_partner", "recorded_at"),
            ((n + 1, "partner:Partner A", f"L{n}", now - timedelta(days=10), "sms", "v3",
              "https://partner.example.com/skjema", ORG_NAME, False, False, True, now)
             for n in range(count + WARM_UP)),
        )  # fmt: skip
    engine.dispose()


def sms_window_morning() -> datetime:
    """The next weekday 10:00 in Oslo inside the SMS window (ES-6), for the workers' clock."""
    from suppression.calendar import OSLO, may_send_sms

    day = common.NOW.astimezone(OSLO)
    while True:
        day += timedelta(days=1)
        if day.weekday() < 5 and may_send_sms(day):
            return day.astimezone(UTC)


def launch(
    url: str, rate_limit: int | None, now: datetime, name: str, postal_prefix: str
) -> tuple[int, list[int]]:
    # A second's worth per batch when throttled: twenty sub-batches of a twentieth of a
    # second each (campaigns.sending), none left over smaller, so that every window of the
    # throttle can hold its limit's worth of sub-batches.
    batch_size = rate_limit // 20 * 20 if rate_limit and rate_limit >= 100 else 500
    from sqlalchemy import create_engine

    from campaigns import campaign as campaign_mod
    from campaigns import launch as launch_mod
    from suppression.keys import Hasher
    from suppression.policy import PolicyConfig

    engine = create_engine(url)
    with engine.begin() as conn:
        camp = campaign_mod.create(
            conn, name=name, channel="sms", purpose="alarm", template_text=TEMPLATE,
            organisation_name=ORG_NAME, rate_limit=rate_limit, batch_size=batch_size,
            audience=campaign_mod.Audience(postal_prefixes=(postal_prefix,)), now=now,
        )  # fmt: skip
        launch_mod.launch(
            conn, Hasher(SECRET.encode()), PolicyConfig(ORG_NAME, ORG_NUMBER), camp.id, now=now
        )
        numbers = launch_mod.batches_to_enqueue(conn, camp.id)
    engine.dispose()
    return camp.id, numbers


def unfinished(url: str, campaign_id: int) -> int:
    from sqlalchemy import create_engine, func, select

    from campaigns.campaign_schema import recipients

    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count()).where(
                recipients.c.campaign_id == campaign_id,
                recipients.c.state.in_(("queued", "sending", "staged")),
            )
        ).scalar_one()
    engine.dispose()
    return int(n)


def final_states(url: str, campaign_id: int) -> dict[str, int]:
    from sqlalchemy import create_engine

    from campaigns.report import counts

    engine = create_engine(url)
    with engine.connect() as conn:
        found = {s: n for s, n in counts(conn, campaign_id).items() if n}
    engine.dispose()
    return found


# -- one engine run ---------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    rate_limit: int | None
    messages: int
    seconds: float
    rate: float
    windows: list[int]  # messages per wall-clock second, the partial first and last left out
    busiest: int  # the most messages in any sliding second (what the fake's limit counts)
    rate_limited: int
    duplicates: int
    states: dict[str, int]
    cpu_fake: float
    cpu_workers: float
    cpu_postgres: float
    load: tuple[float, float]  # the machine's 1-minute load average at start and end

    @property
    def held(self) -> bool:
        """No wall-clock second more than 5 % over the limit, no sliding second over it."""
        if not self.rate_limit or not self.windows:
            return False
        return max(self.windows) <= 1.05 * self.rate_limit and self.busiest <= self.rate_limit


def busiest_second(times: list[float]) -> int:
    """The most of `times` (sorted) in any half-open window of one second."""
    busiest, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= 1.0:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


def wait_done(
    url: str, campaign_id: int, label: str, logs: Path, sample: Any = lambda: None
) -> None:  # fmt: skip
    progress_at, left_before = time.monotonic(), -1
    while left := unfinished(url, campaign_id):
        if left != left_before:
            progress_at, left_before = time.monotonic(), left
        elif time.monotonic() - progress_at > STALL_SECONDS:
            raise SystemExit(
                f"{label}: no progress for {STALL_SECONDS} s ({left} left); logs in {logs}"
            )
        sample()
        time.sleep(0.5)
    sample()


def enqueue(broker: Any, campaign_id: int, numbers: list[int]) -> None:
    import dramatiq

    from worker.broker import SEND_QUEUE

    for n in numbers:
        broker.enqueue(
            dramatiq.Message(
                queue_name=SEND_QUEUE, actor_name="send_batch", args=(campaign_id, n),
                kwargs={}, options={},
            )
        )  # fmt: skip


def engine_run(
    url: str, base_url: str, fake: subprocess.Popen[str], args: argparse.Namespace,
    rate_limit: int | None, label: str, logs: Path,
) -> Run:  # fmt: skip
    import redis

    from worker.broker import make_broker
    from worker.commands.processes import PREFETCH

    redis.Redis.from_url(REDIS_URL).flushdb()
    now = sms_window_morning()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "REDIS", "TWILIO_"))},
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "OUTREACH_SECRET_KEY": SECRET,
        "OUTREACH_ORGANISATION_NAME": ORG_NAME,
        "OUTREACH_ORGANISATION_NUMBER": ORG_NUMBER,
        "OUTREACH_PUBLIC_URL": PUBLIC_URL,
        "OUTREACH_DEMO_NOW": now.isoformat(),
        "OUTREACH_LOG_LEVEL": "WARNING",
        "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
        "TWILIO_AUTH_TOKEN": "fake-twilio-auth-token",
        "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "TWILIO_BASE_URL": base_url,
        "dramatiq_queue_prefetch": str(PREFETCH),  # as `outreach worker` runs them
    }  # fmt: skip
    broker = make_broker(REDIS_URL)
    workers = []
    for i in range(WORKERS):
        log = (logs / f"{label}-worker-{i}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "worker.actors", "--processes", "1",
                 "--threads", str(args.threads)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
        log.close()
    cpu_workers = 0.0
    try:
        warm_up, numbers = launch(url, rate_limit, now, f"{label} warm-up", "99")
        enqueue(broker, warm_up, numbers)
        wait_done(url, warm_up, f"{label} warm-up", logs)
        admin(base_url, "reset")
        campaign_id, numbers = launch(url, rate_limit, now, label, "01")
        postgres = BackendCpu(url.rsplit("/", 1)[1])
        postgres.start()
        cpu_fake0, load0 = process_cpu(fake.pid), os.getloadavg()[0]
        cpu_workers0 = sum(process_cpu(w.pid) for w in workers)
        enqueue(broker, campaign_id, numbers)

        def sample() -> None:
            nonlocal cpu_workers
            cpu_workers = max(cpu_workers, sum(process_cpu(w.pid) for w in workers))
            postgres.sample()

        wait_done(url, campaign_id, label, logs, sample)
        cpu_workers -= cpu_workers0
        cpu_fake = process_cpu(fake.pid) - cpu_fake0
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(60)
        broker.close()
    state = admin(base_url, "state")
    sent = state["messages"]
    times = sorted(m["t_monotonic"] for m in sent)
    seconds = times[-1] - times[0] if len(times) > 1 else 0.0
    per_second = Counter(int(m["t_wall"]) for m in sent)
    full = sorted(per_second)[1:-1]
    return Run(
        label=label,
        rate_limit=rate_limit,
        messages=len(sent),
        seconds=seconds,
        rate=(len(sent) - 1) / seconds if seconds else 0.0,
        windows=[per_second[s] for s in full],
        busiest=busiest_second(times),
        rate_limited=int(state["rate_limited"]),
        duplicates=sum(n - 1 for n in Counter(m["to"] for m in sent).values() if n > 1),
        states=final_states(url, campaign_id),
        cpu_fake=cpu_fake,
        cpu_workers=cpu_workers,
        cpu_postgres=postgres.total,
        load=(load0, os.getloadavg()[0]),
    )


def naive(base_url: str, count: int) -> float:
    """One SDK call per message in one thread, no engine: messages per second."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    admin(base_url, "reset")
    client = Client(
        "AC" + "0123456789abcdef" * 2, "fake-twilio-auth-token",
        http_client=TwilioHttpClient(timeout=10),
    )  # fmt: skip
    client.api.base_url = base_url
    body = (
        f"{ORG_NAME}: 20 % på alarm i vinter! Vi fikk kontaktinformasjonen din fra Partner A. "
        f"Stopp: {PUBLIC_URL}/u/AQFZXYZabcdefghijkl"
    )
    started = time.perf_counter()
    for n in range(count):
        client.messages.create(
            to=f"+474{n:07d}", body=body, messaging_service_sid=SERVICE_SID,
            status_callback=f"{PUBLIC_URL}/webhooks/twilio/status",
        )  # fmt: skip
    return count / (time.perf_counter() - started)


def report(run: Run) -> None:
    per_k = 1000 / max(run.messages, 1)
    print(f"\n{run.label}: rate limit {run.rate_limit or 'none'}/s")
    print(f"  messages accepted by the fake   {run.messages:,}")
    print(f"  messages/s (first to last)      {run.rate:,.1f}  over {run.seconds:,.1f} s")
    if run.windows:
        avg = sum(run.windows) / len(run.windows)
        print(
            f"  per wall-clock second           min {min(run.windows)}, mean {avg:,.1f}, max {max(run.windows)}"
        )
    print(f"  busiest sliding second          {run.busiest}")
    if run.rate_limit and run.windows:
        avg = sum(run.windows) / len(run.windows)
        print(
            f"  limit held within 5 %           {'yes' if run.held else 'NO'} (mean "
            f"{100 * avg / run.rate_limit:.1f} %, max {100 * max(run.windows) / run.rate_limit:.1f} %, "
            f"busiest sliding second {100 * run.busiest / run.rate_limit:.1f} % of {run.rate_limit})"
        )
    print(f"  429s received                   {run.rate_limited}")
    print(f"  duplicates                      {run.duplicates}")
    print(f"  recipient states                {run.states}")
    print(
        f"  CPU s per 1,000 messages        fake {run.cpu_fake * per_k:.2f}, workers "
        f"{run.cpu_workers * per_k:.2f}, PostgreSQL {run.cpu_postgres * per_k:.2f}"
    )
    print(f"  machine load (1 min) start/end  {run.load[0]:.1f} / {run.load[1]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument(
        "--rate-limit", type=int, default=600,
        help="the campaign's messages per second (the throttle keeps under it: see above)",
    )  # fmt: skip
    parser.add_argument("--fake-mps", type=int, default=None, help="default: the rate limit")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument("--naive", type=int, default=2_000, help="messages of the naive baseline")
    parser.add_argument("--no-unlimited", action="store_true", help="skip the unthrottled run")
    parser.add_argument("--logs", type=Path, default=None, help="keep the workers' logs here")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.services import reachable, throwaway_postgres
    from worker import db

    if not reachable("127.0.0.1", 6379):
        raise SystemExit("Redis is not reachable on 127.0.0.1:6379")
    print(f"{os.cpu_count()} CPUs; {args.recipients:,} recipients; {WORKERS} worker processes "
          f"x {args.threads} threads; fake Twilio limit {args.fake_mps or args.rate_limit}/s")  # fmt: skip
    with (
        throwaway_postgres("outreach_bench_sms") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        db.upgrade(url)
        populate(url, args.recipients)
        with fake_twilio(args.fake_mps or args.rate_limit) as (base_url, fake):
            run = engine_run(url, base_url, fake, args, args.rate_limit, "engine", logs)
        report(run)
        if not args.no_unlimited:
            # A second campaign to the same people (the frequency cap, 4 in 30 days, allows
            # it), to a fake without a limit: how fast the engine goes when nothing holds it.
            with fake_twilio(None) as (base_url, fake):
                unlimited = engine_run(url, base_url, fake, args, None, "engine-unlimited", logs)
            report(unlimited)
    with fake_twilio(None) as (base_url, _):
        rate = naive(base_url, args.naive)
    print(
        f"\nnaive baseline: one SDK call per message, one thread, no engine: {rate:,.1f} messages/s"
    )
    met = (
        run.rate >= TARGET and run.held and run.rate_limited == 0 and run.duplicates == 0
        and run.states == {"sent": args.recipients}
    )  # fmt: skip
    print(
        f"\ntarget (>= {TARGET} messages/s, the limit held within 5 %, no 429, no duplicate, "
        f"everyone sent): {'met' if met else 'NOT met'} ({run.rate:,.1f} messages/s)"
    )


if __name__ == "__main__":
    main()
