"""GD-5: `outreach forget` reaches the processors that hold the person: Mailchimp members
deleted permanently in every audience, Twilio messages deleted, a status per destination
retried until done. The real SDKs against the fakes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from sqlalchemy import Engine, select
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from campaigns import campaign as campaign_mod
from campaigns import erasure, people
from campaigns import launch as launch_mod
from campaigns.channels.mailchimp import MailchimpApi, member_status_recorder
from campaigns.schema import erasure_destinations
from suppression.errors import ChannelError
from suppression.identity import email_identity, normalise_phone
from suppression.keys import Hasher
from tests.clock import TestClock, working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET, Cli
from tests.factories import add_person
from tests.fakes.mailchimp import DEFAULT_LIST_ID, FakeMailchimp, subscriber_hash
from tests.fakes.twilio import FakeTwilio
from worker import actors, clock, settings
from worker.context import Context

pytest_plugins = ["tests.fakes.fixtures"]
# Campaigns are launched and sent (ES-6, ALL-6) before the erasure: calendar-sensitive.
pytestmark = [pytest.mark.integration, pytest.mark.travel]

PUBLIC_URL = "https://outreach.example.no"
REPLY_TO = "post@trygghjem.example.no"
SERVICE_SID = "MG" + "1" * 32
SECOND_LIST = "f0e1d2c3b4"  # an audience a Mailchimp sync once found the person in
EMAIL_TEMPLATE = (
    "Subject: Vinterkampanje fra {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n{{ source_notice }}\nMeld deg av: {{ unsubscribe_url }}\n"
)
SMS_TEMPLATE = (
    "{{ organisation.name }}: alarm i vinter! {{ source_notice }} Stopp: {{ unsubscribe_url }}"
)
# The sends, the erasure and the start of every process's clock: a working morning at or
# after the suite's instant, when SMS may go (ES-6).
LAUNCH = working_morning()
TIMEOUT = 2.0
ERASURE_JOB = "erasure at processors (GD-5)"


def email(n: int) -> str:
    return f"ola{n}@example.com"


def phone(n: int) -> str:
    """The E.164 number of `add_person(n)`."""
    return normalise_phone(f"4{n:07d}").e164


@pytest.fixture
def ctx(
    store_url: str,
    tmp_path: Path,
    fake_mailchimp: FakeMailchimp,
    fake_twilio: FakeTwilio,
    clock: TestClock,
) -> Iterator[Context]:
    clock.set(LAUNCH)  # the fakes' clock: their stamps agree with the worker's
    s = settings.load(
        DATABASE_URL=store_url,
        OUTREACH_SECRET_KEY=SECRET,
        OUTREACH_ORGANISATION_NAME=ORG_NAME,
        OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
        OUTREACH_PUBLIC_URL=PUBLIC_URL,
        OUTREACH_OUTBOX_DIR=str(tmp_path / "outbox"),
        OUTREACH_DEMO_NOW=LAUNCH.isoformat(),
        MAILCHIMP_API_KEY=fake_mailchimp.api_key,
        MAILCHIMP_SERVER="us1",
        MAILCHIMP_LIST_ID=DEFAULT_LIST_ID,
        MAILCHIMP_BASE_URL=fake_mailchimp.base_url,
        MAILCHIMP_TIMEOUT=TIMEOUT,
        TWILIO_ACCOUNT_SID=fake_twilio.account_sid,
        TWILIO_AUTH_TOKEN=fake_twilio.auth_token,
        TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID,
        TWILIO_BASE_URL=fake_twilio.base_url,
        TWILIO_TIMEOUT=TIMEOUT,
    )
    context = Context(s)
    actors.configure(context)
    yield context
    context.engine.dispose()


@pytest.fixture
def cli(ctx: Context, store_url: str) -> Cli:
    """`outreach` with the same providers and clock as the worker's context."""
    runner = Cli(store_url)
    s = ctx.settings
    runner.env.update(
        OUTREACH_DEMO_NOW=LAUNCH.isoformat(),
        OUTREACH_PUBLIC_URL=PUBLIC_URL,
        MAILCHIMP_API_KEY=s.mailchimp_api_key or "",
        MAILCHIMP_SERVER="us1",
        MAILCHIMP_LIST_ID=DEFAULT_LIST_ID,
        MAILCHIMP_BASE_URL=s.mailchimp_base_url or "",
        MAILCHIMP_TIMEOUT=str(TIMEOUT),
        TWILIO_ACCOUNT_SID=s.twilio_account_sid or "",
        TWILIO_AUTH_TOKEN=s.twilio_auth_token or "",
        TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID,
        TWILIO_BASE_URL=s.twilio_base_url or "",
        TWILIO_TIMEOUT=str(TIMEOUT),
    )
    return runner


def send(ctx: Context, worker: dramatiq.Worker, channel: str) -> int:
    """A campaign on `channel` launched to everyone stored and sent through the worker."""
    with ctx.engine.begin() as conn:
        camp = campaign_mod.create(
            conn,
            name=f"Vinter ({channel})",
            channel=channel,
            purpose="alarm",
            template_text=EMAIL_TEMPLATE if channel == "email" else SMS_TEMPLATE,
            organisation_name=ORG_NAME,
            sender=campaign_mod.Sender(from_name=ORG_NAME, from_email=REPLY_TO),
            batch_size=5,
            now=LAUNCH,
        )
        launch_mod.launch(conn, ctx.hasher, ctx.policy, camp.id, now=LAUNCH)
        numbers = launch_mod.batches_to_enqueue(conn, camp.id)
    for n in numbers:
        actors.enqueue_batch(camp.id, n)
    actors.broker.join("sends")
    worker.join()
    return camp.id


def emailed_and_texted(ctx: Context, hasher: Hasher, worker: dramatiq.Worker, count: int) -> None:
    with ctx.engine.begin() as conn:
        for n in range(count):
            add_person(conn, hasher, n)
    send(ctx, worker, "email")
    send(ctx, worker, "sms")


def forget(cli: Cli, *identity: str) -> dict[str, Any]:
    result = cli("forget", *identity, "--json")
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output)
    return payload


def by_destination(destinations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["destination"]: d for d in destinations}


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.destination: dict(r._mapping) for r in conn.execute(select(erasure_destinations))}


@contextmanager
def process_at(ctx: Context, moment: datetime) -> Iterator[Context]:
    """The worker's and clock's context with their clock started at `moment`."""
    later = Context(ctx.settings.model_copy(update={"demo_now": moment.isoformat()}))
    try:
        yield later
    finally:
        actors.configure(ctx)
        later.close()


def run_erasure_job(ctx: Context, worker: dramatiq.Worker, moment: datetime) -> list[int]:
    """What the clock does at `moment`: enqueue the due destinations; the worker runs them."""
    with process_at(ctx, moment) as later:
        job = {name: func for name, func, _seconds in clock.jobs(later)}[ERASURE_JOB]
        enqueued: list[int] = job()
        actors.broker.join("intake")
        worker.join()
    return enqueued


def at(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


def aware(moment: datetime) -> datetime:
    """A stored instant (SQLite gives them back without their UTC offset)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- done at once -----------------------------------------------------------------------


def test_forget_deletes_the_member_in_every_audience_and_the_messages_sent_to_the_person(
    ctx: Context,
    cli: Cli,
    hasher: Hasher,
    worker: dramatiq.Worker,
    fake_mailchimp: FakeMailchimp,
    fake_twilio: FakeTwilio,
) -> None:
    emailed_and_texted(ctx, hasher, worker, 3)
    # EM-4: a sync once found Ola1 unsubscribed in another audience of the account.
    fake_mailchimp.add_list(SECOND_LIST)
    fake_mailchimp.add_member(email(1), "unsubscribed", list_id=SECOND_LIST)
    member_status_recorder(ctx.engine, hasher, SECOND_LIST, ctx.clock)([(email(1), "unsubscribed")])
    [message] = fake_twilio.messages_to(phone(1))
    assert fake_mailchimp.status_of(email(1)) == "subscribed"

    payload = forget(cli, "--email", email(1))

    destinations = by_destination(payload["destinations"])
    assert set(destinations) == {
        f"mailchimp:{DEFAULT_LIST_ID}",
        f"mailchimp:{SECOND_LIST}",
        "twilio",
    }
    for d in destinations.values():
        assert (d["status"], d["reason"], d["attempts"]) == ("done", None, 1)
        assert d["erasure_ref"] == payload["erasure"]
    for list_id in (DEFAULT_LIST_ID, SECOND_LIST):
        assert fake_mailchimp.member(email(1), list_id) is None
        assert fake_mailchimp.forgotten(email(1), list_id)
    assert fake_mailchimp.status_of(email(0)) == "subscribed"  # nobody else
    assert fake_twilio.deleted == [message["sid"]]
    assert fake_twilio.message(message["sid"]) is None
    assert fake_twilio.messages_to(phone(0)) != []
    # Through the SDKs, as anyone would look: both answer 404 now.
    api = MailchimpApi(fake_mailchimp.api_key, "us1", fake_mailchimp.base_url, TIMEOUT)
    with pytest.raises(ChannelError) as missing:
        api.call(api.client.lists.get_list_member, DEFAULT_LIST_ID, subscriber_hash(email(1)))
    assert missing.value.code == "404"
    http = TwilioHttpClient(timeout=TIMEOUT)
    client = Client(fake_twilio.account_sid, fake_twilio.auth_token, http_client=http)
    client.api.base_url = fake_twilio.base_url
    try:
        with pytest.raises(TwilioRestException) as gone:
            client.messages(message["sid"]).fetch()
        assert gone.value.status == 404
    finally:
        assert http.session is not None
        http.session.close()
    # What the store keeps: no subscriber hash once done; the SIDs of what was deleted.
    rows = stored(ctx.engine)
    assert {rows[d]["subscriber_hash"] for d in destinations if d.startswith("mailchimp:")} == {
        None
    }
    assert json.loads(rows["twilio"]["message_sids"]) == [message["sid"]]
    assert all(r["done_at"] is not None and r["next_attempt_at"] is None for r in rows.values())


def test_forget_without_json_lists_each_destination_and_explain_shows_it_done(
    ctx: Context, cli: Cli, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    emailed_and_texted(ctx, hasher, worker, 2)

    result = cli("forget", "--phone", phone(1))

    assert result.exit_code == 0, result.output
    assert f"mailchimp:{DEFAULT_LIST_ID}: done" in result.output
    assert "twilio: done" in result.output
    explained = json.loads(cli("explain", "--email", email(1), "--json").output)
    assert {(d["destination"], d["status"]) for d in explained["erasure"]} == {
        (f"mailchimp:{DEFAULT_LIST_ID}", "done"),
        ("twilio", "done"),
    }
    assert "erasure at processors" in cli("explain", "--phone", phone(1)).output


def test_a_processor_that_no_longer_holds_the_person_counts_as_done(
    ctx: Context, cli: Cli, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    """404 is "already gone": Mailchimp never had Ola1 (no email campaign), and the
    message was deleted at Twilio before the erasure."""
    with ctx.engine.begin() as conn:
        add_person(conn, hasher, 1)
    send(ctx, worker, "sms")
    with fake_twilio.lock:
        fake_twilio.messages.clear()

    destinations = by_destination(forget(cli, "--email", email(1))["destinations"])

    assert {d: v["status"] for d, v in destinations.items()} == {
        f"mailchimp:{DEFAULT_LIST_ID}": "done",
        "twilio": "done",
    }


def test_a_person_nothing_was_sent_to_and_no_email_is_held_of_gets_no_destination(
    ctx: Context, cli: Cli, hasher: Hasher, fake_mailchimp: FakeMailchimp
) -> None:
    with ctx.engine.begin() as conn:
        add_person(conn, hasher, 1, email=False)

    result = cli("forget", "--phone", phone(1))
    stranger = forget(cli, "--email", "stranger@example.com")

    assert "no processor holds the person" in result.output
    assert stranger["destinations"] == []
    assert stored(ctx.engine) == {}
    assert fake_mailchimp.requests == []


# -- failures, retries, the worker --------------------------------------------------------


def test_a_failing_processor_is_failed_with_its_reason_and_retried_after_a_doubling_backoff(
    ctx: Context,
    cli: Cli,
    hasher: Hasher,
    worker: dramatiq.Worker,
    fake_mailchimp: FakeMailchimp,
    fake_twilio: FakeTwilio,
) -> None:
    emailed_and_texted(ctx, hasher, worker, 2)
    fake_mailchimp.fail_erasures(2)  # forget's own attempt, and the worker's first
    mailchimp = f"mailchimp:{DEFAULT_LIST_ID}"

    destinations = by_destination(forget(cli, "--email", email(1))["destinations"])

    assert destinations["twilio"]["status"] == "done"
    failed = destinations[mailchimp]
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert failed["reason"] == "mailchimp http 503: Service Unavailable"
    first_retry = at(failed["next_attempt_at"])
    assert LAUNCH + timedelta(minutes=1) <= first_retry < LAUNCH + timedelta(minutes=1, seconds=30)
    assert fake_mailchimp.status_of(email(1)) == "subscribed"  # still there
    assert stored(ctx.engine)[mailchimp]["subscriber_hash"] == subscriber_hash(email(1))
    explained = json.loads(cli("explain", "--email", email(1), "--json").output)
    assert by_destination(explained["erasure"])[mailchimp]["reason"] == failed["reason"]
    human = " ".join(cli("explain", "--email", email(1)).output.split())  # unwrapped
    assert "failed" in human and "Service Unavailable" in human

    # Before its backoff the clock leaves it alone.
    assert run_erasure_job(ctx, worker, first_retry - timedelta(seconds=5)) == []
    # After it, the worker tries again: Mailchimp fails once more, the wait doubles.
    assert len(run_erasure_job(ctx, worker, first_retry + timedelta(seconds=1))) == 1
    again = stored(ctx.engine)[mailchimp]
    assert (again["status"], again["attempts"]) == ("failed", 2)
    second_retry = aware(again["next_attempt_at"])
    waited = second_retry - (first_retry + timedelta(seconds=1))
    assert timedelta(minutes=2) <= waited < timedelta(minutes=2, seconds=30)
    # A restart loses nothing: the next run after the second backoff is done.
    assert len(run_erasure_job(ctx, worker, second_retry + timedelta(seconds=1))) == 1

    done = stored(ctx.engine)[mailchimp]
    assert (done["status"], done["attempts"], done["reason"]) == ("done", 3, None)
    assert done["subscriber_hash"] is None
    assert fake_mailchimp.member(email(1)) is None and fake_mailchimp.faults == []
    assert run_erasure_job(ctx, worker, second_retry + timedelta(hours=1)) == []
    explained = json.loads(cli("explain", "--email", email(1), "--json").output)
    assert {d["status"] for d in explained["erasure"]} == {"done"}


def test_an_erasure_recorded_without_an_attempt_is_done_by_the_worker(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_mailchimp: FakeMailchimp
) -> None:
    """`people.forget` records the destinations pending (no provider call inside the
    transaction); the clock's job and the actor do the rest."""
    emailed_and_texted(ctx, hasher, worker, 1)
    with ctx.engine.begin() as conn:
        counts = people.forget(
            conn,
            hasher,
            email_identity(email(0)),
            now=LAUNCH,
            actor="test",
            mailchimp_lists=[DEFAULT_LIST_ID],
        )
    assert {d: r["status"] for d, r in stored(ctx.engine).items()} == {
        f"mailchimp:{DEFAULT_LIST_ID}": "pending",
        "twilio": "pending",
    }
    assert fake_mailchimp.member(email(0)) is not None

    enqueued = run_erasure_job(ctx, worker, LAUNCH + timedelta(seconds=1))

    assert len(enqueued) == 2
    with ctx.engine.connect() as conn:
        planned = erasure.of_erasure(conn, str(counts["erasure"]))
    assert {d.status for d in planned} == {"done"}
    assert fake_mailchimp.member(email(0)) is None


def test_the_backoff_doubles_from_a_minute_up_to_six_hours() -> None:
    waits = [erasure.backoff(n) for n in (1, 2, 3, 4, 9, 10, 1_000)]
    assert waits == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=8),
        timedelta(hours=4, minutes=16),
        timedelta(hours=6),
        timedelta(hours=6),
    ]
