"""One-click unsubscribes (RFC 8058) under load, every one committed, against a baseline.

    python -m benchmarks.unsubscribe_load [--seconds 30] [--baseline-seconds 10]
        [--workers N] [--concurrency 16] [--rate 1000] [--connections 64]

Starts `outreach serve` as a real subprocess (uvicorn, N worker processes, default
one per core) on a throwaway PostgreSQL database, pre-issues distinct unsubscribe
tokens, and drives one-click POSTs (`List-Unsubscribe=One-Click`, each token once)
from a load generator in this process: an asyncio HTTP/1.1 client over keep-alive
connections. Two modes, each for the server under test and for the baseline:

- closed loop: `--concurrency` requests in flight, the next sent when an answer comes
  back; shows the rate the server sustains;
- open loop: `--rate` requests per second offered whatever the answers do (over up to
  `--connections` connections), latency counted from when each request was due; shows
  whether the server holds that rate and at what latency.

Each run prints requests/s, p50/p95/p99/max latency, errors, the CPU time per request
of the server, its PostgreSQL backends and the load generator (the machine may be
shared; CPU per request does not depend on that) and the machine's load average, then
checks that the ledger holds exactly one entry per distinct token posted (a 200 means
committed; nothing more, nothing less).

The baseline, in the same run and with the same load generator, is `outreach serve`
with one worker process (its default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import common

SECRET = "benchmark-only-secret-0123456789abcdef"
ONE_CLICK = b"List-Unsubscribe=One-Click"
TARGET_RPS = 1000.0
TARGET_P99_MS = 50.0


# --- the store and the tokens -----------------------------------------------------------


def issue_tokens(url: str, count: int, offset: int) -> list[str]:
    """`count` distinct tokens, one per synthetic address, issued in bulk."""
    from sqlalchemy import insert

    from suppression.keys import Hasher
    from suppression.schema import unsubscribe_tokens
    from suppression.tokens import encode, signer
    from worker import db

    hasher = Hasher(SECRET.encode())
    now = common.NOW
    rows = [
        {
            "key_hash": hasher.digest("email", f"bench.{offset + i}@example.com"),
            "key_id": hasher.key_id,
            "identity_kind": "email",
            "channel": "email",
            "campaign_id": None,
            "created_at": now,
        }
        for i in range(count)
    ]
    engine = db.engine_for(url)
    ids: list[int] = []
    with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            result = conn.execute(
                insert(unsubscribe_tokens).returning(
                    unsubscribe_tokens.c.id, sort_by_parameter_order=True
                ),
                rows[start : start + 10_000],
            )
            ids.extend(int(r[0]) for r in result)
        found = signer(conn, hasher)
    engine.dispose()
    return [encode(found, token_id) for token_id in ids]


def ledger_count(url: str) -> int:
    from sqlalchemy import text

    from worker import db

    engine = db.engine_for(url)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one())
    engine.dispose()
    return count


def truncate_ledger(url: str) -> None:
    from sqlalchemy import text

    from worker import db

    engine = db.engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE ledger_entries"))
    engine.dispose()


# --- CPU accounting (the machine may be shared: CPU per request does not depend on that) ---

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _backend_pids(url: str) -> list[int]:
    from sqlalchemy import text

    from worker import db

    name = url.rsplit("/", 1)[1]
    engine = db.engine_for(url)
    with engine.connect() as conn:
        pids = [
            int(pid)
            for (pid,) in conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :name "
                    "AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        ]
    engine.dispose()
    return pids


@dataclass
class CpuClock:
    """CPU seconds used by the server's processes, its PostgreSQL backends and this
    load generator, between start() and stop()."""

    server_pid: int
    url: str
    used: dict[str, float] = field(default_factory=dict)
    _start: dict[str, float] = field(default_factory=dict)
    _server: list[int] = field(default_factory=list)
    _backends: list[int] = field(default_factory=list)

    def _read(self) -> dict[str, float]:
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "server": sum(_cpu_seconds(p) for p in self._server),
            "postgres": sum(_cpu_seconds(p) for p in self._backends),
            "load generator": own.ru_utime + own.ru_stime,
        }

    def start(self) -> None:
        self._server = [self.server_pid, *_children(self.server_pid)]
        self._backends = _backend_pids(self.url)
        self._start = self._read()

    def stop(self) -> None:
        # Connections the pools opened during the run count from zero.
        started = set(self._backends)
        late = [pid for pid in _backend_pids(self.url) if pid not in started]
        end = self._read()
        late_cpu = sum(_cpu_seconds(pid) for pid in late)
        self.used = {k: end[k] - self._start[k] for k in end}
        self.used["postgres"] += late_cpu


# --- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`outreach serve` in a subprocess, as the Procfile runs it."""

    def __init__(self, url: str, workers: int) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "OUTREACH_SECRET_KEY": SECRET,
            "OUTREACH_LOG_LEVEL": "WARNING",
        }
        outreach = os.path.join(os.path.dirname(sys.executable), "outreach")
        self.process = subprocess.Popen(
            [
                outreach,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=env,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("outreach serve exited")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("outreach serve did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the load generator -------------------------------------------------------------------


@dataclass
class Run:
    label: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    posted: set[str] = field(default_factory=set)
    cpu: CpuClock | None = None
    load_before: float = 0.0
    load_after: float = 0.0

    def cpu_ms_per_request(self) -> dict[str, float]:
        if self.cpu is None or not self.ok:
            return {}
        return {k: round(v / self.ok * 1000, 3) for k, v in self.cpu.used.items()}

    @property
    def ok(self) -> int:
        return len(self.latencies)

    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, token: str
) -> int:
    writer.write(
        f"POST /u/{token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(ONE_CLICK)}\r\n\r\n".encode()
        + ONE_CLICK
    )
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _client(run: Run, port: int, tokens: list[str], cursor: list[int], until: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until and cursor[0] < len(tokens):
            token = tokens[cursor[0]]
            cursor[0] += 1
            run.posted.add(token)
            started = time.perf_counter()
            try:
                status = await _request(reader, writer, port, token)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                run.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            run.statuses[status] = run.statuses.get(status, 0) + 1
            if status == 200:
                run.latencies.append(time.perf_counter() - started)
            else:
                run.errors += 1
    finally:
        writer.close()


async def _paced(
    run: Run,
    port: int,
    tokens: list[str],
    cursor: list[int],
    until: float,
    rate: float,
    connections: int,
) -> None:
    """Open loop: a request is due every 1/rate seconds whatever the answers do, over a
    pool of keep-alive connections; latency counts from when the request was due, so a
    server that falls behind shows it (no coordinated omission)."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    async def one(token: str, due: float) -> None:
        reader, writer = await pool.get()
        try:
            status = await _request(reader, writer, port, token)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            run.errors += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        else:
            run.statuses[status] = run.statuses.get(status, 0) + 1
            if status == 200:
                run.latencies.append(time.perf_counter() - due)
            else:
                run.errors += 1
        pool.put_nowait((reader, writer))

    tasks: list[asyncio.Task[None]] = []
    due = time.perf_counter()
    while due < until and cursor[0] < len(tokens):
        now = time.perf_counter()
        if now < due:
            await asyncio.sleep(due - now)
        while due <= time.perf_counter() and due < until and cursor[0] < len(tokens):
            token = tokens[cursor[0]]
            cursor[0] += 1
            run.posted.add(token)
            tasks.append(asyncio.create_task(one(token, due)))
            due += 1.0 / rate
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()


async def _drive(
    run: Run,
    port: int,
    tokens: list[str],
    seconds: float,
    concurrency: int,
    clock: CpuClock,
    rate: float,
) -> None:
    cursor = [0]
    # A short warm-up opens the connections and the pools; it is not measured.
    warm = Run("warm-up")
    warm_tokens = tokens[: concurrency * 20]
    await asyncio.gather(
        *(
            _client(warm, port, warm_tokens, cursor, time.perf_counter() + 2)
            for _ in range(concurrency)
        )
    )
    run.posted |= warm.posted
    clock.start()
    started = time.perf_counter()
    until = started + seconds
    if rate > 0:
        await _paced(run, port, tokens, cursor, until, rate, concurrency)
    else:
        await asyncio.gather(
            *(_client(run, port, tokens, cursor, until) for _ in range(concurrency))
        )
    run.seconds = time.perf_counter() - started
    clock.stop()
    if cursor[0] >= len(tokens):
        print(f"  note: all {len(tokens)} tokens were used before the time was up", flush=True)


def measure(
    label: str,
    url: str,
    workers: int,
    tokens: list[str],
    seconds: float,
    concurrency: int,
    rate: float,
) -> tuple[Run, int]:
    truncate_ledger(url)
    server = Server(url, workers)
    try:
        run = Run(label)
        run.cpu = CpuClock(server.process.pid, url)
        run.load_before = os.getloadavg()[0]
        asyncio.run(_drive(run, server.port, tokens, seconds, concurrency, run.cpu, rate))
        run.load_after = os.getloadavg()[0]
    finally:
        server.stop()
    return run, ledger_count(url)


def report(run: Run, entries: int, workers: int, concurrency: int, mode: str) -> dict[str, Any]:
    distinct = len(run.posted)
    line = {
        "run": run.label,
        "mode": mode,
        "workers": workers,
        "concurrency": concurrency,
        "seconds": round(run.seconds, 1),
        "requests_ok": run.ok,
        "requests_per_s": round(run.rate(), 1),
        "p50_ms": round(run.percentile(50), 2),
        "p95_ms": round(run.percentile(95), 2),
        "p99_ms": round(run.percentile(99), 2),
        "max_ms": round(max(run.latencies) * 1000, 2) if run.latencies else None,
        "errors": run.errors,
        "statuses": run.statuses,
        "distinct_tokens_posted": distinct,
        "ledger_entries": entries,
        "every_post_committed_once": entries == distinct and run.errors == 0,
    }
    print(
        f"{run.label:>9} [{mode}]: {line['requests_per_s']:>7} req/s over {line['seconds']} s "
        f"({workers} worker(s), {concurrency} connections) | p50 {line['p50_ms']} ms, "
        f"p95 {line['p95_ms']} ms, p99 {line['p99_ms']} ms, max {line['max_ms']} ms | "
        f"errors {run.errors} | ledger entries {entries} for {distinct} distinct tokens posted "
        f"({'OK' if line['every_post_committed_once'] else 'MISMATCH'})",
        flush=True,
    )
    cost = run.cpu_ms_per_request()
    total = sum(cost.values())
    line["cpu_ms_per_request"] = cost
    print(
        f"{'':>9}  CPU per request: "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in cost.items())
        + f" = {total:.3f} ms, i.e. at most {1000 * (os.cpu_count() or 1) / total:.0f} req/s "
        f"on {os.cpu_count()} cores if nothing else ran | machine load average "
        f"{run.load_before:.1f} -> {run.load_after:.1f}",
        flush=True,
    )
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=max(2, (os.cpu_count() or 1)))
    parser.add_argument(
        "--concurrency", type=int, default=16, help="requests in flight in the closed loop"
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="connections available to the open loop"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=TARGET_RPS,
        help="requests/s offered in the open-loop runs (0: only the closed-loop runs)",
    )
    args = parser.parse_args(argv)

    from tests.services import throwaway_postgres
    from worker import db

    cores = os.cpu_count()
    print(
        f"one-click unsubscribe load: {cores} CPU cores shared by the server, PostgreSQL "
        "and the load generator; closed loop = as fast as the answers come back, "
        f"open loop = {args.rate:.0f} requests/s offered whatever the answers do"
    )
    plan = [("baseline", 1, args.baseline_seconds), ("outreach", args.workers, args.seconds)]
    modes = ["closed loop"] + ([f"open loop {args.rate:.0f}/s"] if args.rate > 0 else [])
    results: dict[tuple[str, str], tuple[Run, dict[str, Any]]] = {}
    issued = 0
    with throwaway_postgres("outreach_bench") as url:
        db.upgrade(url)
        for mode in modes:
            rate = 0.0 if mode == "closed loop" else args.rate
            for label, workers, seconds in plan:
                connections = args.connections if rate else args.concurrency
                count = int((rate or 4000) * seconds * 1.2 + connections * 40)
                tokens = issue_tokens(url, count, issued)
                issued += count
                run, entries = measure(label, url, workers, tokens, seconds, connections, rate)
                results[(label, mode)] = (
                    run,
                    report(run, entries, workers, connections, mode),
                )
    ok = all(line["every_post_committed_once"] for _, line in results.values())
    for mode in modes:
        base, _ = results[("baseline", mode)]
        run, line = results[("outreach", mode)]
        met = line["requests_per_s"] >= TARGET_RPS * 0.99 and line["p99_ms"] <= TARGET_P99_MS
        speedup = run.rate() / base.rate() if base.rate() else float("nan")
        print(
            f"[{mode}] target >= {TARGET_RPS:.0f} req/s with p99 <= {TARGET_P99_MS:.0f} ms "
            f"for {args.seconds:.0f} s: {'met' if met else 'NOT met'} "
            f"({line['requests_per_s']} req/s, p99 {line['p99_ms']} ms); "
            f"{speedup:.2f}x the baseline's rate",
            flush=True,
        )
    print(f"every POST answered 200 committed exactly one ledger entry: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
