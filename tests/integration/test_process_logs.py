"""Every line the processes write is JSON and names no person (GD-4, issue 18).

`outreach serve`, `outreach worker` (dramatiq, on a redis-server of the test's own) and
`outreach clock` run as subprocesses on a throwaway PostgreSQL store, as the Procfile runs
them; an SMS campaign goes to the Twilio fake and an email campaign to the Mailchimp fake,
a person unsubscribes through the link and another answers STOP, and the worker runs an
actor that logs through structlog. Then every line of their stdout and stderr (and the
stderr of the CLI commands) is parsed as JSON, and none holds an email address or a phone
number of the test's people, in any spelling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import dramatiq
import httpx
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from campaigns.campaign_schema import campaigns, recipients
from suppression import tokens
from suppression.keys import Hasher
from tests.clock import working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET
from tests.e2e.evidence import identities_in_logs
from tests.e2e.stack import Proc, Processes, free_port, need_redis_server
from tests.factories import add_person
from tests.fakes.mailchimp import DEFAULT_API_KEY, DEFAULT_LIST_ID
from tests.fakes.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from tests.services import throwaway_postgres
from worker import db
from worker.broker import INTAKE_QUEUE, make_broker

pytestmark = pytest.mark.integration

OUTREACH = str(Path(sys.executable).with_name("outreach"))
REPO = Path(__file__).resolve().parents[2]
PEOPLE = range(1, 5)  # tests.factories.add_person: ola{n}@example.com, 4{n:07d}
SERVICE_SID = "MG" + "10c5" * 8
SMS_TEMPLATE = "{{ organisation.name }}: tilbud! {{ source_notice }} Stopp: {{ unsubscribe_url }}"
EMAIL_TEMPLATE = (
    "Subject: Nytt fra {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n{{ source_notice }}\nAvmeld: {{ unsubscribe_url }}\n"
)
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}
OUR_VARIABLES = (
    "OUTREACH_",
    "DATABASE_URL",
    "REDIS",
    "TWILIO_",
    "MAILCHIMP_",
    "IMAP_",
    "dramatiq_",
)


def wait(
    what: str, condition: Callable[[], bool], timeout: float, proc: Proc | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and not proc.alive():
            pytest.fail(f"{what}: {proc.name} exited\n{proc.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what}: not within {timeout:.0f} s" + (f"\n{proc.tail()}" if proc else "")
            )
        time.sleep(0.1)


class Run:
    """The processes of the run and the commands it gives, all logging into `logs`."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir()
        self.procs = Processes(self.logs)
        self.url = url
        self.redis_port = free_port()
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.fakes: dict[str, str] = {}
        self.cli_stderr: list[Path] = []
        self.demo_now = working_morning().isoformat()  # ES-6: the SMS window is open

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
        env.update(
            DATABASE_URL=self.url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            OUTREACH_SECRET_KEY=SECRET,
            OUTREACH_ORGANISATION_NAME=ORG_NAME,
            OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
            OUTREACH_PUBLIC_URL=self.web_url,
            OUTREACH_PARTNERS_FILE=str(self.root / "partners.toml"),
            OUTREACH_OUTBOX_DIR=str(self.root / "outbox"),
            OUTREACH_DEMO_NOW=self.demo_now,
            OUTREACH_RECONCILE_SECONDS="1",
            OUTREACH_LOG_LEVEL="INFO",
            OUTREACH_WORKER_PROCESSES="1",
            OUTREACH_WORKER_THREADS="2",
            TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
            TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID,
            TWILIO_BASE_URL=self.fakes.get("twilio", ""),
            MAILCHIMP_API_KEY=DEFAULT_API_KEY,
            MAILCHIMP_SERVER="us1",
            MAILCHIMP_LIST_ID=DEFAULT_LIST_ID,
            MAILCHIMP_BASE_URL=self.fakes.get("mailchimp", ""),
            dramatiq_prom_host="127.0.0.1",
            dramatiq_prom_port=str(free_port()),
            dramatiq_prom_db=str(self.root / "prometheus"),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start_redis(self) -> None:
        proc = self.procs.start(
            "redis",
            [need_redis_server(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.root)],
            self.env(), self.root,
        )  # fmt: skip
        wait("redis-server listening", lambda: b"Ready to accept" in proc.output(), 20, proc)

    def start_fake(self, name: str) -> None:
        proc = self.procs.start(
            f"fake-{name}",
            [sys.executable, "-m", f"tests.fakes.{name}", "--port", "0"],
            {**self.env(), "PYTHONPATH": str(REPO)},
            REPO,
        )

        def first_line() -> bytes:
            return proc.output().split(b"\n", 1)[0].strip()

        wait(f"the {name} fake listening", lambda: first_line().isdigit(), 30, proc)
        self.fakes[name] = f"http://127.0.0.1:{int(first_line())}"

    def start(self, name: str, args: list[str], ready: Callable[[Proc], bool]) -> Proc:
        proc = self.procs.start(name, [OUTREACH, *args], self.env(), self.root)
        wait(f"{name} ready", lambda: ready(proc), 60, proc)
        return proc

    def cli(self, *args: str) -> Any:
        """`outreach ... --json` as an operator runs it; what it printed, parsed."""
        done = subprocess.run(
            [OUTREACH, *args, "--json"], env=self.env(), cwd=self.root, capture_output=True,
            timeout=120, check=False,
        )  # fmt: skip
        stderr = self.logs / f"cli-{args[0]}-{len(self.cli_stderr)}.stderr"
        stderr.write_bytes(done.stderr)
        self.cli_stderr.append(stderr)
        (self.logs / f"{stderr.stem}.stdout").write_bytes(done.stdout)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return json.loads(done.stdout)

    def campaign(self, channel: str, template: str, *extra: str) -> int:
        path = self.root / f"{channel}.txt"
        path.write_text(template, encoding="utf-8")
        created = self.cli(
            "campaign", "create", "--name", f"logs {channel}", "--channel", channel,
            "--purpose", "alarm", "--template", str(path), "--audience", "partners",
            "--batch-size", "2", *extra,
        )  # fmt: skip
        campaign_id = int(created["id"])
        launched = self.cli("campaign", "launch", str(campaign_id), "--no-wait")
        assert launched["eligible"] == len(PEOPLE), launched
        return campaign_id


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    need_redis_server()
    with throwaway_postgres("outreach_logs") as url:
        r = Run(tmp_path, url)
        try:
            yield r
        finally:
            r.procs.stop_all()


def campaign_done(engine: Engine, campaign_id: int) -> Callable[[], bool]:
    def done() -> bool:
        with engine.connect() as conn:
            state = conn.execute(select(campaigns.c.state).where(campaigns.c.id == campaign_id))
            return str(state.scalar_one()) == "done"

    return done


def links(engine: Engine, hasher: Hasher, campaign_id: int) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(recipients.c.id, recipients.c.token_id)
            .where(recipients.c.campaign_id == campaign_id)
            .order_by(recipients.c.id)
        ).all()
        signer = tokens.signer(conn, hasher)
    return [tokens.for_recipient(signer, int(r.id), r.token_id) for r in rows]


def json_lines(path: Path) -> list[dict[str, Any]]:
    parsed = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{path.name}:{number} is not JSON: {line[:300]!r}")
    return parsed


def test_every_line_of_web_worker_and_clock_is_json_and_names_no_person(
    run: Run, hasher: Hasher
) -> None:
    run.start_redis()
    run.start_fake("twilio")
    run.start_fake("mailchimp")
    (run.root / "partners.toml").write_text(
        '[partners.boligpartner]\ndisplay_name = "Boligpartner AS"\nlocal_dir = "inbox"\n'
    )
    (run.root / "inbox").mkdir()
    db.upgrade(run.url)
    engine = db.engine_for(run.url)
    try:
        with engine.begin() as conn:
            for n in PEOPLE:
                add_person(conn, hasher, n, partner="boligpartner")
        run.start(
            "web", ["serve", "--host", "127.0.0.1", "--port", str(run.web_port)], _healthy(run)
        )
        run.start("clock", ["clock"], lambda p: b"Scheduler started" in p.output())
        run.start("worker", ["worker"], lambda p: b"ready for action" in p.output())

        sms = run.campaign("sms", SMS_TEMPLATE)
        email = run.campaign("email", EMAIL_TEMPLATE, "--from-email", "post@trygghjem.example.no")
        for campaign_id in (sms, email):
            wait(f"campaign {campaign_id} done", campaign_done(engine, campaign_id), 60)
        with httpx.Client(timeout=30) as client:
            texts = client.get(f"{run.fakes['twilio']}/_fake/state").json()["messages"]
            mails = client.get(f"{run.fakes['mailchimp']}/_fake/state").json()["sends"]
            assert len(texts) == len(PEOPLE)
            assert sum(len(s["recipients"]) for s in mails) == len(PEOPLE)
            token = links(engine, hasher, sms)[0]
            answer = client.post(f"{run.web_url}/u/{token}", headers=FORM, content=ONE_CLICK)
            assert answer.status_code == 200
            params = {"MessageSid": "SM" + "5" * 32, "From": "+4740000002", "Body": "STOPP"}
            path = "/webhooks/twilio/inbound"
            signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(
                run.web_url + path, params
            )
            stop = client.post(
                run.web_url + path, content=urlencode(params),
                headers={**FORM, "x-twilio-signature": signature},
            )  # fmt: skip
            assert stop.status_code == 200
        # An actor that logs through structlog ("partner polled"), in the worker process.
        broker = make_broker(run.env()["REDIS_URL"])
        broker.enqueue(
            dramatiq.Message(
                queue_name=INTAKE_QUEUE, actor_name="poll_partners", args=(), kwargs={},
                options={},
            )
        )  # fmt: skip
        assert isinstance(broker, RedisBroker)
        broker.client.connection_pool.disconnect()  # dramatiq's close leaves it open
        worker = next(p for p in run.procs.started if p.name.startswith("worker"))
        wait("the worker logs the poll", lambda: b"partner polled" in worker.output(), 30, worker)
        clock = next(p for p in run.procs.started if p.name.startswith("clock"))
        wait("the clock runs a job", lambda: b"executed successfully" in clock.output(), 30, clock)
    finally:
        engine.dispose()
        run.procs.stop_all()

    ours = [p.log for p in run.procs.started if p.name.split("-")[0] in ("web", "worker", "clock")]
    records = {path.name: json_lines(path) for path in [*ours, *run.cli_stderr]}
    by_logger = {r.get("logger", "") for lines in records.values() for r in lines}
    assert {"uvicorn.error", "apscheduler.scheduler", "outreach.intake"} <= by_logger, by_logger
    assert any(str(r.get("logger", "")).startswith("dramatiq") for r in records[ours[2].name])
    clock_events = [str(r["event"]) for r in records[ours[1].name]]
    # APScheduler's times are times, not "[phone]" (the old redaction took them for numbers).
    assert any("next run at: 20" in e for e in clock_events), clock_events[:5]
    assert not any("[phone]" in e for e in clock_events)
    assert not any("Logging error" in e or "has no attribute 'copy'" in e for e in clock_events)
    emails = {f"ola{n}@example.com" for n in PEOPLE}
    numbers = {f"4{n:07d}" for n in PEOPLE}
    hits, lines = identities_in_logs([*ours, *run.cli_stderr], emails, numbers)
    assert lines > 0
    assert [f"{h.file}:{h.line} ({h.kind})" for h in hits] == []


def _healthy(run: Run) -> Callable[[Proc], bool]:
    def healthy(_proc: Proc) -> bool:
        try:
            return httpx.get(f"{run.web_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return healthy
