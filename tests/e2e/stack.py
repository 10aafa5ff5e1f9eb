"""The whole installation as an operator runs it, on loopback, for the end-to-end tests.

`outreach serve`, two `outreach worker` and `outreach clock` run as subprocesses, each
configured only by environment variables, against a redis-server of the test's own (so
that it can be stopped and started again without touching the machine's shared Redis),
a throwaway PostgreSQL database, the Twilio and Mailchimp fakes in processes of their
own, and an SFTP server on loopback where the partner's file arrives. The web process
reaches PostgreSQL through a TCP proxy the test can cut. Every subprocess runs in its
own process group (a SIGKILL takes a dramatiq worker and its children at once) and
writes its stdout and stderr to a log file of the run, which the log test searches.

Quiet hours (ES-6) would hold an SMS campaign at night, so every process gets
OUTREACH_DEMO_NOW: a working day's 10:00 in Oslo at or after the suite's instant
(tests.clock.working_morning), and OUTREACH_DEMO_NOW_AT, the machine's monotonic clock
at which that held (the start of the run). Their clocks then run together, however long after
the start a process was started and however long its start-up took: a replacement
worker started a minute into the run, whose imports took half a minute on a loaded
machine, does not see the lease of a killed worker's batch as held for that long more
(its clock used to start at its first use). Times the test compares across processes
are still read from the fakes' logs and this process's clock.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paramiko
import pytest
import redis
from sqlalchemy import Engine, create_engine, func, select

from campaigns.campaign_schema import campaigns, recipients
from campaigns.schema import contacts
from suppression import tokens
from suppression.keys import Hasher
from tests.clock import working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER
from tests.fakes.mailchimp import DEFAULT_API_KEY, DEFAULT_LIST_ID
from tests.fakes.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from tests.services import IN_CI
from tests.sftp_server import SftpServer
from tests.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parents[2]
OUTREACH = str(Path(sys.executable).with_name("outreach"))
SECRET = "e2e-only-secret-key-0123456789abcdef"
SERVICE_SID = "MG" + "e2e0" * 8
PARTNER = "boligpartner"
PG_HOST, PG_PORT = "127.0.0.1", 5432
# Recovery in seconds, short for the tests (production: 30, 120 and 300). A batch waits
# in Redis for at most a few seconds here, so 15 s queued means its message was lost.
RECONCILE_SECONDS = 2
STUCK_QUEUED_SECONDS = 15
STUCK_SENDING_SECONDS = 60
# Variables of ours (and dramatiq's) that must come from the stack, never from the caller.
_FOREIGN = ("OUTREACH_", "DATABASE_URL", "REDIS", "TWILIO_", "MAILCHIMP_", "IMAP_", "dramatiq_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need_redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server is not installed (the end-to-end tests run their own)"
        if IN_CI:
            pytest.fail(message + " (CI=true: integration tests must not be skipped)")
        pytest.skip(message)
    return found


@dataclass
class Proc:
    """One subprocess of the run, the leader of its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> bytes:
        return self.log.read_bytes() if self.log.exists() else b""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output().decode(errors="replace").splitlines()[-lines:])


@dataclass
class Processes:
    """Every subprocess of the run; each writes its stdout and stderr to `logs/<name>.log`."""

    logs: Path
    started: list[Proc] = field(default_factory=list)
    _names: Counter[str] = field(default_factory=Counter)

    def _log(self, name: str) -> Path:
        self._names[name] += 1
        return self.logs / f"{name}-{self._names[name]}.log"

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> Proc:
        log = self._log(name)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        proc = Proc(log.stem, popen, log)
        self.started.append(proc)
        return proc

    def run(
        self, name: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """A command to its end; its output is returned and kept in the run's logs."""
        log = self._log(name)
        done = subprocess.run(
            args, env=env, cwd=cwd, capture_output=True, timeout=timeout, check=False
        )
        log.write_bytes(done.stdout + b"\n--- stderr\n" + done.stderr)
        return done

    @staticmethod
    def signal(proc: Proc, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)

    def kill(self, proc: Proc) -> None:
        """SIGKILL to the whole group, as a lost machine would: nothing runs its cleanup."""
        self.signal(proc, signal.SIGKILL)
        proc.popen.wait(15)

    def stop_all(self) -> None:
        """SIGTERM to the group of every process still running (it stops cleanly: in-flight
        batches finish or go back to the queue), then SIGKILL to the groups left."""
        running = [p for p in self.started if p.alive()]
        for proc in running:
            self.signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in running:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal(proc, signal.SIGKILL)
                proc.popen.wait(10)


def _get_json(url: str, timeout: float = 60) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


class Stack:
    """The services and processes of one run, and what the tests ask of them."""

    def __init__(self, root: Path, database_url: str, sftp: SftpServer, proxy: TcpProxy) -> None:
        self.root = root
        self.logs = root / "logs"
        self.work = root / "work"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.procs = Processes(self.logs)
        self.database_url = database_url
        self.engine: Engine = create_engine(database_url, pool_size=2)
        self.hasher = Hasher(SECRET.encode())
        self.sftp = sftp
        self.proxy = proxy
        # The run's demo time starts on a working morning (ES-6: the SMS window is open).
        self.demo_start = working_morning()
        # The demo clocks' common anchor (the machine's monotonic clock, which every
        # process shares): every process's clock reads demo_start here.
        self.monotonic_start = time.monotonic()
        self.redis_port = free_port()
        self.redis_server: Proc | None = None
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.twilio_url = ""
        self.mailchimp_url = ""
        self.partners_file = self.work / "partners.toml"
        self.workers: list[Proc] = []
        self.web: Proc | None = None
        self.clock: Proc | None = None

    # -- configuration ------------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self, **extra: str) -> dict[str, str]:
        """What an operator sets for every process (`.env` is not read: the processes run
        in a folder without one)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            OUTREACH_SECRET_KEY=SECRET,
            OUTREACH_ORGANISATION_NAME=ORG_NAME,
            OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
            OUTREACH_PUBLIC_URL=self.web_url,
            OUTREACH_PARTNERS_FILE=str(self.partners_file),
            OUTREACH_OUTBOX_DIR=str(self.work / "outbox"),
            OUTREACH_DEMO_NOW=self.demo_start.isoformat(),
            OUTREACH_DEMO_NOW_AT=repr(self.monotonic_start),
            OUTREACH_RECONCILE_SECONDS=str(RECONCILE_SECONDS),
            OUTREACH_STUCK_QUEUED_SECONDS=str(STUCK_QUEUED_SECONDS),
            OUTREACH_STUCK_SENDING_SECONDS=str(STUCK_SENDING_SECONDS),
            OUTREACH_LOG_LEVEL="INFO",
            OUTREACH_WORKER_PROCESSES="1",
            OUTREACH_WORKER_THREADS="4",
            TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
            TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID,
            TWILIO_BASE_URL=self.twilio_url,
            TWILIO_TIMEOUT="5",
            MAILCHIMP_API_KEY=DEFAULT_API_KEY,
            MAILCHIMP_SERVER="us1",
            MAILCHIMP_LIST_ID=DEFAULT_LIST_ID,
            MAILCHIMP_BASE_URL=self.mailchimp_url,
            MAILCHIMP_TIMEOUT="5",
            PYTHONUNBUFFERED="1",  # a SIGKILLed process keeps no log lines in a buffer
        )
        env.update(extra)
        return env

    def write_partners_file(self) -> None:
        s = self.sftp
        self.partners_file.write_text(
            f"""
[partners.{PARTNER}]
display_name = "Boligpartner AS"
encoding = "windows-1252"
delimiter = ";"

[partners.{PARTNER}.sftp]
host = "{s.host}"
port = {s.port}
user = "{PARTNER}"
private_key = "{s.client_key_path}"
known_hosts = "{s.known_hosts_path}"
inbox = "/inbox"
archive = "/archive"
errors = "/errors"
timeout_seconds = 10
""",
            encoding="utf-8",
        )

    # -- services -----------------------------------------------------------------------

    def start_redis(self) -> None:
        """Our own redis-server, nothing kept on disk: a restart loses every message."""
        self.redis_server = self.procs.start(
            "redis",
            [need_redis_server(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.work)],
            self.env(), self.work,
        )  # fmt: skip
        client = redis.Redis(port=self.redis_port, socket_connect_timeout=1)
        try:
            self.wait("redis-server answers", lambda: _pings(client), 20, self.redis_server)
        finally:
            client.close()

    def stop_redis(self, sig: int = signal.SIGKILL) -> None:
        assert self.redis_server is not None
        self.procs.signal(self.redis_server, sig)
        self.redis_server.popen.wait(15)

    def start_fake(self, module: str) -> str:
        proc = self.procs.start(
            module.rsplit(".", 1)[1],
            [sys.executable, "-m", module, "--port", "0"],
            {**self.env(), "PYTHONPATH": str(REPO)},
            REPO,
        )

        def first_line() -> bytes:
            return proc.output().split(b"\n", 1)[0].strip()

        self.wait(f"{module} listening", lambda: first_line().isdigit(), 30, proc)
        return f"http://127.0.0.1:{int(first_line())}"

    def start_web(self) -> None:
        proxied = self.database_url.replace(
            f"@{PG_HOST}:{PG_PORT}/", f"@127.0.0.1:{self.proxy.port}/"
        )
        assert proxied != self.database_url
        self.web = self.procs.start(
            "web",
            [OUTREACH, "serve", "--host", "127.0.0.1", "--port", str(self.web_port)],
            self.env(DATABASE_URL=proxied),
            self.work,
        )

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.web_url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self.wait("web answers /healthz", healthy, 60, self.web)

    def start_clock(self) -> None:
        self.clock = self.procs.start("clock", [OUTREACH, "clock"], self.env(), self.work)

    def start_workers(self, count: int) -> None:
        """`outreach worker` processes, each with its own metrics port and folder."""
        started = []
        for _ in range(count):
            n = len(self.workers)
            prom = self.work / f"prometheus-{n}"
            prom.mkdir(exist_ok=True)
            env = self.env(
                dramatiq_prom_host="127.0.0.1",
                dramatiq_prom_port=str(free_port()),
                dramatiq_prom_db=str(prom),
            )
            proc = self.procs.start("worker", [OUTREACH, "worker"], env, self.work)
            self.workers.append(proc)
            started.append(proc)
        for proc in started:
            self.wait(f"{proc.name} ready", _ready(proc), 60, proc)

    def running_workers(self) -> list[Proc]:
        return [w for w in self.workers if w.alive()]

    def assert_running(self) -> None:
        """The web process, the clock and two workers are up (none died of a fault)."""
        for proc in (self.web, self.clock):
            assert proc is not None and proc.alive(), f"{proc and proc.name} exited"
        assert len(self.running_workers()) == 2, "a worker exited"

    def wait(
        self,
        what: str,
        condition: Callable[[], bool],
        timeout: float,
        proc: Proc | None = None,
        tick: float = 0.1,
    ) -> float:
        """Seconds until `condition` held; fails naming what did not happen."""
        started = time.monotonic()
        while not condition():
            if proc is not None and not proc.alive():
                pytest.fail(f"{what}: {proc.name} exited\n{proc.tail()}")
            if time.monotonic() - started > timeout:
                pytest.fail(f"{what}: not within {timeout:.0f} s\n{self.tails()}")
            time.sleep(tick)
        return time.monotonic() - started

    def tails(self) -> str:
        watched = [p for p in (self.web, self.clock, *self.workers) if p is not None]
        return "\n".join(f"--- {p.name}\n{p.tail(8)}" for p in watched)

    # -- the CLI --------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> str:
        """`outreach ...` in a subprocess, as an operator runs it; its stdout."""
        done = self.procs.run(f"cli-{args[0]}", [OUTREACH, *args], self.env(), self.work, timeout)
        if done.returncode != 0:
            pytest.fail(f"outreach {' '.join(args)}: exit {done.returncode}\n{done.stderr!r}")
        return done.stdout.decode()

    def upload(self, name: str, data: bytes) -> None:
        """The partner delivers a file over SFTP, then its `.done` marker."""
        key = paramiko.Ed25519Key.from_private_key_file(str(self.sftp.client_key_path))
        transport = paramiko.Transport((self.sftp.host, self.sftp.port))
        try:
            transport.connect(username=PARTNER, pkey=key)
            client = paramiko.SFTPClient.from_transport(transport)
            assert client is not None
            client.putfo(io.BytesIO(data), f"/inbox/{name}")
            client.putfo(io.BytesIO(b""), f"/inbox/{name}.done")
            client.close()
        finally:
            transport.close()

    def create_campaign(
        self,
        name: str,
        channel: str,
        postal_prefix: str,
        template: str,
        *,
        rate_limit: int,
        batch_size: int,
        extra: tuple[str, ...] = (),
    ) -> int:
        path = self.work / f"{name}.txt"
        path.write_text(template, encoding="utf-8")
        out = self.cli(
            "campaign", "create", "--name", name, "--channel", channel, "--purpose", "alarm",
            "--template", str(path), "--audience", "partners", "--partner", PARTNER,
            "--postal-prefix", postal_prefix, "--rate-limit", str(rate_limit),
            "--batch-size", str(batch_size), *extra, "--json",
        )  # fmt: skip
        return int(json.loads(out)["id"])

    def launch(self, campaign_id: int) -> dict[str, Any]:
        launched: dict[str, Any] = json.loads(
            self.cli("campaign", "launch", str(campaign_id), "--no-wait", "--json")
        )
        return launched

    # -- the store ------------------------------------------------------------------------

    def states(self, campaign_id: int) -> Counter[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(recipients.c.state, func.count())
                .where(recipients.c.campaign_id == campaign_id)
                .group_by(recipients.c.state)
            )
            return Counter({str(state): int(n) for state, n in rows})

    def campaign_state(self, campaign_id: int) -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(
                    select(campaigns.c.state).where(campaigns.c.id == campaign_id)
                ).scalar_one()
            )

    def wait_done(self, campaign_id: int, timeout: float) -> float:
        def done() -> bool:
            return self.campaign_state(campaign_id) == "done"

        return self.wait(f"campaign {campaign_id} done", done, timeout, tick=0.25)

    def recipients(self, campaign_id: int) -> list[Recipient]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    recipients.c.id, recipients.c.state, recipients.c.token_id,
                    recipients.c.checked_at, recipients.c.sent_at, recipients.c.provider_id,
                    recipients.c.send_rule, recipients.c.batch_no, contacts.c.phone,
                    contacts.c.email,
                )
                .join(contacts, contacts.c.id == recipients.c.contact_id)
                .where(recipients.c.campaign_id == campaign_id)
            ).all()  # fmt: skip
            signer = tokens.signer(conn, self.hasher)
        return [
            Recipient(
                id=int(r.id),
                state=str(r.state),
                token_id=r.token_id,
                checked_at=r.checked_at,
                sent_at=r.sent_at,
                provider_id=r.provider_id,
                send_rule=r.send_rule,
                batch_no=r.batch_no,
                phone=r.phone,
                email=r.email,
                token=tokens.for_recipient(signer, int(r.id), r.token_id),
            )
            for r in rows
        ]

    # -- the fakes ------------------------------------------------------------------------

    def twilio_messages(self) -> list[dict[str, Any]]:
        """The messages the fake accepted, each with `t_wall` (its request arrived) and
        `t_answered` (the fake had its answer ready), wall-clock seconds."""
        state = _get_json(f"{self.twilio_url}/_fake/state")
        requests = {r["seq"]: r for r in state["requests"]}
        messages: list[dict[str, Any]] = state["messages"]
        for m in messages:
            r = requests[m["seq"]]
            m["t_answered"] = m["t_wall"] + (r["t_done_monotonic"] - r["t_monotonic"])
        return messages

    def twilio_problems(self) -> list[Any]:
        state = _get_json(f"{self.twilio_url}/_fake/state")
        return [*state["spec_violations"], *state["violations"]]

    def mailchimp_state(self) -> dict[str, Any]:
        found: dict[str, Any] = _get_json(f"{self.mailchimp_url}/_fake/state")
        return found

    def close(self) -> None:
        self.procs.stop_all()
        self.engine.dispose()


@dataclass(frozen=True)
class Recipient:
    id: int
    state: str
    token_id: int | None
    checked_at: datetime | None
    sent_at: datetime | None
    provider_id: str | None
    send_rule: str | None
    batch_no: int | None
    phone: str | None
    email: str | None
    token: str


def _ready(proc: Proc) -> Callable[[], bool]:
    return lambda: b"ready for action" in proc.output()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
