"""Waiting is visible (issue 19, point 3): an SMS campaign launched before 09:00 Oslo time
says that it waits, until when and by which rule (ES-6), in `campaign status` and its
`--json` (ISO 8601 with the offset), and the launch says what will send it later on the
embedded default, where the launch's own worker stops when nothing more can go now. And
what it says is true: `campaign resume` after 09:00, or the reconciliation `outreach
worker` runs every few seconds, sends the batch. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import Engine, select

from campaigns.campaign_schema import batches
from suppression.calendar import OSLO
from suppression.keys import Hasher
from tests.clock import at, working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET, Cli
from tests.factories import add_person
from worker import actors, settings
from worker.clock import reconcile_job
from worker.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.travel]

TEMPLATE = "{{ organisation.name }}: vinterpris. {{ source_notice }} Stopp: {{ unsubscribe_url }}"
DAY = working_morning().date()  # a working day: SMS may go from 09:00 (ES-6)
EARLY = at(DAY, 6, 45)
OPENING = datetime.combine(DAY, time(9, 0), OSLO)


@pytest.fixture
def sms_campaign(cli: Cli, engine: Engine, hasher: Hasher, tmp_path: Path) -> Iterator[str]:
    """Five people who consented to SMS, and a draft SMS campaign for them."""
    cli.env["OUTREACH_OUTBOX_DIR"] = str(tmp_path / "outbox")
    cli.env["OUTREACH_DEMO_NOW"] = EARLY.isoformat()
    with engine.begin() as conn:
        for n in range(5):
            add_person(conn, hasher, n, now=EARLY - timedelta(days=1))
    template = tmp_path / "vinter.txt"
    template.write_text(TEMPLATE, encoding="utf-8")
    made = cli(
        "campaign", "create", "--name", "Vinter", "--channel", "sms", "--purpose", "alarm",
        "--template", str(template), "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    yield str(json.loads(made.output)["id"])


def status(cli: Cli, campaign_id: str) -> dict[str, object]:
    result = cli("campaign", "status", campaign_id, "--json")
    assert result.exit_code == 0, result.output
    found: dict[str, object] = json.loads(result.output)
    return found


def test_an_sms_campaign_launched_at_0645_says_it_waits_for_0900_and_what_sends_it(
    cli: Cli, sms_campaign: str
) -> None:
    launched = cli("campaign", "launch", sms_campaign)
    shown = cli("campaign", "status", sms_campaign)
    found = status(cli, sms_campaign)

    assert launched.exit_code == 0, launched.output
    said = " ".join(launched.output.split())
    assert "waiting until 09:00 (ES-6 quiet hours)" in said
    assert "keep `outreach worker` running" in said
    assert f"`outreach campaign resume {sms_campaign}` after 09:00" in said
    text = " ".join(shown.output.split())
    assert f"campaign {sms_campaign} (running, waiting until 09:00 (ES-6 quiet hours))" in text
    assert "queued 5" in text
    assert f"expected start: {DAY.isoformat()} 09:00 Europe/Oslo" in text
    waiting = found["waiting"]
    assert isinstance(waiting, dict)
    assert (waiting["rule"], waiting["queued"]) == ("ES-6", 5)
    until = datetime.fromisoformat(str(waiting["until"]))
    assert until == OPENING and until.utcoffset() == OPENING.utcoffset()  # Oslo's offset
    assert found["expected_start"] == waiting["until"]


def test_a_launch_with_no_wait_says_it_waits_before_any_worker_took_the_batch(
    cli: Cli, sms_campaign: str
) -> None:
    launched = cli("campaign", "launch", sms_campaign, "--no-wait", "--json")

    assert launched.exit_code == 0, launched.output
    said = json.loads(launched.output)
    assert said["waiting"]["rule"] == "ES-6"
    assert "outreach worker" in said["next_step"]
    assert status(cli, sms_campaign)["waiting"] == said["waiting"]


def test_resume_after_0900_sends_what_waited(cli: Cli, sms_campaign: str) -> None:
    assert cli("campaign", "launch", sms_campaign).exit_code == 0
    cli.env["OUTREACH_DEMO_NOW"] = (OPENING + timedelta(minutes=5)).isoformat()

    resumed = cli("campaign", "resume", sms_campaign)
    found = status(cli, sms_campaign)

    assert resumed.exit_code == 0, resumed.output
    states = found["states"]
    assert isinstance(states, dict)
    assert (states["sent"], states["queued"], found["waiting"]) == (5, 0, None)
    assert found["state"] == "done"


def test_the_worker_s_reconciliation_sends_what_waited_at_0900(
    cli: Cli, sms_campaign: str, store_url: str, engine: Engine, tmp_path: Path
) -> None:
    """What `outreach worker` does every few seconds on the embedded default
    (worker/commands/processes.py): the reconciliation enqueues a waiting batch whose
    time has come, and its worker sends it."""
    assert cli("campaign", "launch", sms_campaign).exit_code == 0
    with engine.connect() as conn:
        assert set(conn.execute(select(batches.c.state)).scalars()) == {"waiting"}
    s = settings.load(
        DATABASE_URL=store_url,
        OUTREACH_SECRET_KEY=SECRET,
        OUTREACH_ORGANISATION_NAME=ORG_NAME,
        OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
        OUTREACH_OUTBOX_DIR=str(tmp_path / "outbox"),
        OUTREACH_DEMO_NOW=(OPENING + timedelta(seconds=30)).isoformat(),
    )
    ctx = Context(s)
    actors.configure(ctx)
    actors.broker.flush_all()
    worker = dramatiq.Worker(actors.broker, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        done = reconcile_job(ctx)
        actors.broker.join("sends")
        worker.join()
    finally:
        worker.stop()
        ctx.engine.dispose()

    assert len(done.reenqueued) == 1
    states = status(cli, sms_campaign)["states"]
    assert isinstance(states, dict) and states["sent"] == 5


def test_in_the_sms_window_nothing_is_said_to_wait(cli: Cli, sms_campaign: str) -> None:
    cli.env["OUTREACH_DEMO_NOW"] = (OPENING + timedelta(hours=1)).isoformat()

    launched = cli("campaign", "launch", sms_campaign)
    found = status(cli, sms_campaign)

    assert launched.exit_code == 0, launched.output
    assert "waiting" not in launched.output
    assert (found["waiting"], found["expected_start"], found["state"]) == (None, None, "done")
