"""The Twilio SMS channel: the real SDK against the fake, end to end through the engine
(stub broker, a real dramatiq worker thread), on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import Engine, select

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import report as report_mod
from campaigns.campaign_schema import recipients
from campaigns.channels.base import OutcomeUnknown, OutgoingMessage
from campaigns.channels.twilio_sms import TwilioSmsChannel
from campaigns.recording import reconcile_unknown
from suppression.errors import ChannelError
from suppression.identity import normalise_phone
from suppression.keys import Hasher
from suppression.ledger import CARRIER_OPT_OUT, Ledger
from tests.clock import TestClock, working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET
from tests.factories import add_person
from tests.fakes.twilio import FakeTwilio
from worker import actors, settings
from worker.context import Context
from worker.services import channel_factory

pytest_plugins = ["tests.fakes.fixtures"]
# Every campaign here is launched and checked at send time (ES-6): calendar-sensitive.
pytestmark = [pytest.mark.integration, pytest.mark.travel]

SERVICE_SID = "MG" + "1" * 32
PUBLIC_URL = "https://outreach.example.no"
TEMPLATE = (
    "{{ organisation.name }}: 20 % på alarm i vinter! {{ source_notice }} "
    "Stopp: {{ unsubscribe_url }}"
)
# The launch, and the start of the worker's clock: 10:00 Oslo on a working day at or after
# the suite's instant (tests.clock), a time SMS may go (ES-6) whatever instant the suite
# runs at.
LAUNCH = working_morning()
TIMEOUT = 0.5


@pytest.fixture
def ctx(
    store_url: str, tmp_path: Path, fake_twilio: FakeTwilio, clock: TestClock
) -> Iterator[Context]:
    clock.set(LAUNCH)  # the fake Twilio's clock: its stamps agree with the worker's
    s = settings.load(
        DATABASE_URL=store_url,
        OUTREACH_SECRET_KEY=SECRET,
        OUTREACH_ORGANISATION_NAME=ORG_NAME,
        OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
        OUTREACH_PUBLIC_URL=PUBLIC_URL,
        OUTREACH_OUTBOX_DIR=str(tmp_path / "outbox"),
        OUTREACH_DEMO_NOW=LAUNCH.isoformat(),
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


def phone(n: int) -> str:
    """The E.164 number of `add_person(n)`."""
    return normalise_phone(f"4{n:07d}").e164


def campaign(ctx: Context, hasher: Hasher, people: int, **kw: object) -> int:
    with ctx.engine.begin() as conn:
        for n in range(people):
            add_person(conn, hasher, n)
        camp = campaign_mod.create(
            conn,
            name="Vinter-SMS",
            channel="sms",
            purpose="alarm",
            template_text=TEMPLATE,
            organisation_name=ORG_NAME,
            batch_size=kw.pop("batch_size", 5),  # type: ignore[arg-type]
            now=LAUNCH,
            **kw,  # type: ignore[arg-type]
        )
        launch_mod.launch(conn, ctx.hasher, ctx.policy, camp.id, now=LAUNCH)
        numbers = launch_mod.batches_to_enqueue(conn, camp.id)
    for n in numbers:
        actors.enqueue_batch(camp.id, n)
    return camp.id


def run(worker: dramatiq.Worker) -> None:
    actors.broker.join("sends")
    worker.join()


def rows(engine: Engine, campaign_id: int) -> dict[str, dict[str, object]]:
    """Recipient rows by phone number."""
    from campaigns.schema import contacts

    with engine.connect() as conn:
        found = conn.execute(
            select(recipients, contacts.c.phone)
            .join(contacts, contacts.c.id == recipients.c.contact_id)
            .where(recipients.c.campaign_id == campaign_id)
        )
        return {r.phone: dict(r._mapping) for r in found}


def wait_for(condition: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_an_sms_campaign_sends_one_message_per_recipient_through_the_messaging_service(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    campaign_id = campaign(ctx, hasher, 12)
    run(worker)

    assert fake_twilio.count_by_recipient() == {phone(n): 1 for n in range(12)}
    by_phone = rows(ctx.engine, campaign_id)
    for message in fake_twilio.messages:
        row = by_phone[message["to"]]
        assert row["state"] == "sent" and row["provider_id"] == message["sid"]
        assert message["messaging_service_sid"] == SERVICE_SID and message["from"] is None
        assert message["status_callback"] == f"{PUBLIC_URL}/webhooks/twilio/status"
        # SM-3: the body carries the recipient's own unsubscribe link; GD-1: the partner.
        assert f"{PUBLIC_URL}/u/" in message["body"] and "Partner A" in message["body"]
    with ctx.engine.connect() as conn:
        assert report_mod.build(conn, campaign_id).campaign.state == "done"


def test_a_5xx_is_retried_and_the_message_is_finally_sent_exactly_once(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(2, status=500, target=phone(3))
    campaign_id = campaign(ctx, hasher, 6)
    run(worker)

    assert [r["status"] for r in fake_twilio.requests].count(500) == 2
    assert fake_twilio.count_by_recipient() == {phone(n): 1 for n in range(6)}
    assert {r["state"] for r in rows(ctx.engine, campaign_id).values()} == {"sent"}


def test_a_response_slower_than_the_timeout_is_unknown_never_resent_and_then_reconciled(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    """Guarantee 2: the request reached Twilio; the engine does not send it again, and
    reconciliation finds the message by the recipient's own unsubscribe link."""
    fake_twilio.delay_next(TIMEOUT * 4, target=phone(2))
    campaign_id = campaign(ctx, hasher, 5)
    run(worker)
    slow = rows(ctx.engine, campaign_id)[phone(2)]
    assert slow["state"] == "unknown"
    wait_for(lambda: bool(fake_twilio.messages_to(phone(2))), "the slow message to be created")

    camp = _campaign(ctx, campaign_id)
    found = reconcile_unknown(
        ctx.engine, channel_factory(ctx)(camp), campaign_id, [int(str(slow["id"]))], ctx.clock()
    )

    assert found == 1
    after = rows(ctx.engine, campaign_id)[phone(2)]
    assert after["state"] == "sent"
    assert after["provider_id"] == fake_twilio.messages_to(phone(2))[0]["sid"]
    assert fake_twilio.count_by_recipient() == {phone(n): 1 for n in range(5)}


def test_a_dropped_connection_leaves_the_recipient_unknown_and_sends_nothing_again(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.drop_next(target=phone(1))
    campaign_id = campaign(ctx, hasher, 4)
    run(worker)
    dropped = rows(ctx.engine, campaign_id)[phone(1)]

    camp = _campaign(ctx, campaign_id)
    found = reconcile_unknown(
        ctx.engine,
        channel_factory(ctx)(camp),
        campaign_id,
        [int(str(dropped["id"]))],
        ctx.clock(),
    )

    assert dropped["state"] == "unknown" and found == 0
    assert rows(ctx.engine, campaign_id)[phone(1)]["state"] == "unknown"
    assert [r["status"] for r in fake_twilio.requests if r.get("to") == phone(1)] == ["dropped"]
    assert fake_twilio.count_by_recipient() == {phone(n): 1 for n in (0, 2, 3)}


def test_error_21610_fails_the_recipient_and_records_an_sms_suppression(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    """SM-2: the person sent STOP to our sender; Twilio refuses, we remember it."""
    fake_twilio.opt_out(phone(4))
    campaign_id = campaign(ctx, hasher, 6)
    run(worker)

    row = rows(ctx.engine, campaign_id)[phone(4)]
    assert row["state"] == "failed" and "21610" in str(row["error"])
    with ctx.engine.connect() as conn:
        status = Ledger(conn, hasher).status("phone", phone(4))
    [entry] = status.entries
    assert (entry.scope, entry.reason, entry.source) == ("sms", CARRIER_OPT_OUT, "twilio")
    assert status.suppressed("sms") and not status.suppressed("email")
    assert phone(4) not in fake_twilio.count_by_recipient()


def test_a_second_21610_for_the_same_number_adds_no_second_ledger_entry(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.error_for(phone(0), 21610, n=None)
    campaign(ctx, hasher, 2)
    run(worker)
    channel = channel_factory(ctx)(_campaign(ctx, 1))
    message = OutgoingMessage(99, 1, phone(0), "", "Hei fra Trygg Hjem", "https://x.example/u/t")

    with pytest.raises(ChannelError) as raised:
        channel.send_payload(message, channel.build(message))

    assert raised.value.permanent and raised.value.code == "21610"
    with ctx.engine.connect() as conn:
        assert len(Ledger(conn, hasher).status("phone", phone(0)).entries) == 1


@pytest.mark.parametrize("code", [21211, 21614])
def test_an_invalid_number_fails_the_recipient_permanently_without_retrying(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio, code: int
) -> None:
    fake_twilio.error_for(phone(1), code, n=None)
    campaign_id = campaign(ctx, hasher, 3)
    run(worker)

    row = rows(ctx.engine, campaign_id)[phone(1)]
    assert row["state"] == "failed" and str(code) in str(row["error"])
    attempts = [r for r in fake_twilio.requests if r.get("to") == phone(1)]
    assert [r["error_code"] for r in attempts] == [code]  # asked once, never again
    with ctx.engine.connect() as conn:
        assert Ledger(conn, hasher).status("phone", phone(1)).entries == []
    assert fake_twilio.count_by_recipient() == {phone(0): 1, phone(2): 1}


def test_a_429_waits_without_spending_retries_and_everyone_is_sent_once(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.mps = 3
    campaign_id = campaign(ctx, hasher, 8, batch_size=8)
    run(worker)

    assert fake_twilio.rate_limited >= 1
    assert fake_twilio.count_by_recipient() == {phone(n): 1 for n in range(8)}
    assert {r["state"] for r in rows(ctx.engine, campaign_id).values()} == {"sent"}


def test_more_rate_limited_deliveries_than_the_attempt_limit_never_fail_anyone(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    """A provider allowing one message a second makes one batch of 8 wait 7 times, more
    than MAX_BATCH_ATTEMPTS: waiting for a rate limit is not a failed attempt."""
    from campaigns.sending import MAX_BATCH_ATTEMPTS

    fake_twilio.mps = 1
    count = MAX_BATCH_ATTEMPTS + 2
    campaign_id = campaign(ctx, hasher, count, batch_size=count)
    run(worker)

    assert fake_twilio.rate_limited >= MAX_BATCH_ATTEMPTS
    assert {r["state"] for r in rows(ctx.engine, campaign_id).values()} == {"sent"}
    assert fake_twilio.count_by_recipient() == {phone(n): 1 for n in range(count)}


def test_the_campaigns_messages_per_second_hold_at_the_provider(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    """The throttle (dramatiq's window limiter, one-second windows) admits at most
    `rate_limit` a second: no one-second window at the provider holds more than two
    windows' worth, and 20 messages at 5/s need at least four windows."""
    limit, count = 5, 20
    campaign(ctx, hasher, count, batch_size=10, rate_limit=limit)
    run(worker)

    times = sorted(m["t_monotonic"] for m in fake_twilio.messages)
    assert len(times) == count and not fake_twilio.duplicates()
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 2 * limit
    assert times[-1] - times[0] >= count / limit - 2


def test_a_connection_refused_before_sending_is_transient_not_unknown(
    fake_twilio: FakeTwilio,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    channel = TwilioSmsChannel(
        fake_twilio.account_sid,
        fake_twilio.auth_token,
        SERVICE_SID,
        f"{PUBLIC_URL}/webhooks/twilio/status",
        base_url=f"http://127.0.0.1:{closed_port}",
        timeout=TIMEOUT,
    )
    message = OutgoingMessage(1, 1, phone(0), "", "Hei fra Trygg Hjem", "https://x.example/u/t")

    with pytest.raises(ChannelError) as raised:
        channel.send_payload(message, channel.build(message))

    assert not raised.value.permanent and not isinstance(raised.value, OutcomeUnknown)
    assert raised.value.code == "connect"


def test_error_messages_never_carry_the_phone_number(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_twilio: FakeTwilio
) -> None:
    """GD-4: Twilio's own text for 21211 repeats the number; ours names the code."""
    fake_twilio.error_for(phone(0), 21211, n=None)
    campaign_id = campaign(ctx, hasher, 1)
    run(worker)

    error = str(rows(ctx.engine, campaign_id)[phone(0)]["error"])
    assert "21211" in error and phone(0) not in error and phone(0)[3:] not in error


def _campaign(ctx: Context, campaign_id: int) -> campaign_mod.Campaign:
    with ctx.engine.connect() as conn:
        return campaign_mod.get(conn, campaign_id)
