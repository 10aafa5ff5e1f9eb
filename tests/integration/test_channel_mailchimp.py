"""The Mailchimp email channel: the real SDK against the fake, end to end through the
engine (stub broker, a real dramatiq worker thread), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import Engine, select

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns.campaign_schema import recipients
from campaigns.channels.mailchimp import Audience, MailchimpApi, Member
from campaigns.channels.mailchimp.audience import URL_FIELD
from campaigns.recording import reconcile_unknown
from campaigns.schema import contacts
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.ledger import HARD_BOUNCE, OBJECTION, UNSUBSCRIBE, Ledger
from tests.clock import TestClock, working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET
from tests.factories import add_person
from tests.fakes.mailchimp import DEFAULT_LIST_ID, FakeMailchimp, subscriber_hash
from worker import actors, settings
from worker.context import Context
from worker.services import channel_factory

pytest_plugins = ["tests.fakes.fixtures"]
# Every campaign here is launched and checked at send time: calendar-sensitive.
pytestmark = [pytest.mark.integration, pytest.mark.travel]

PUBLIC_URL = "https://outreach.example.no"
REPLY_TO = "post@trygghjem.example.no"
TEMPLATE = (
    "Subject: Vinterkampanje fra {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n{{ source_notice }}\n"
    "Meld deg av: {{ unsubscribe_url }}\n"
)
# The launch, and the start of the worker's clock: a working morning at or after the
# suite's instant (tests.clock), whatever instant the suite runs at.
LAUNCH = working_morning()
TIMEOUT = 0.3


@pytest.fixture
def ctx(
    store_url: str, tmp_path: Path, fake_mailchimp: FakeMailchimp, clock: TestClock
) -> Iterator[Context]:
    clock.set(LAUNCH)  # the fake Mailchimp's clock: its stamps agree with the worker's
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
    )
    context = Context(s)
    actors.configure(context)
    yield context
    context.engine.dispose()


@pytest.fixture
def patient(ctx: Context) -> Iterator[Context]:
    """The worker's context with a long Mailchimp timeout, for a test whose sync is held
    longer than this module's short TIMEOUT (ask for it before `worker`, which must stop
    before this context's engine is disposed)."""
    context = Context(ctx.settings.model_copy(update={"mailchimp_timeout": 30.0}))
    actors.configure(context)
    yield context
    context.engine.dispose()


def email(n: int) -> str:
    return f"ola{n}@example.com"


def create(ctx: Context, hasher: Hasher, people: int, batch_size: int = 5) -> int:
    """A launched email campaign to `people` partner leads; nothing enqueued yet."""
    with ctx.engine.begin() as conn:
        for n in range(people):
            add_person(conn, hasher, n)
        camp = campaign_mod.create(
            conn,
            name="Vinter",
            channel="email",
            purpose="alarm",
            template_text=TEMPLATE,
            organisation_name=ORG_NAME,
            sender=campaign_mod.Sender(from_name=ORG_NAME, from_email=REPLY_TO),
            batch_size=batch_size,
            now=LAUNCH,
        )
        launch_mod.launch(conn, ctx.hasher, ctx.policy, camp.id, now=LAUNCH)
    return camp.id


def send(worker: dramatiq.Worker, campaign_id: int, *batch_numbers: int) -> None:
    for n in batch_numbers:
        actors.enqueue_batch(campaign_id, n)
    actors.broker.join("sends")
    worker.join()


def rows(engine: Engine, campaign_id: int) -> dict[str, dict[str, object]]:
    """Recipient rows by email address."""
    with engine.connect() as conn:
        found = conn.execute(
            select(recipients, contacts.c.email)
            .join(contacts, contacts.c.id == recipients.c.contact_id)
            .where(recipients.c.campaign_id == campaign_id)
        )
        return {r.email: dict(r._mapping) for r in found}


def states(engine: Engine, campaign_id: int) -> dict[str, str]:
    return {e: str(r["state"]) for e, r in rows(engine, campaign_id).items()}


def wait_for(condition: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_an_email_campaign_is_synced_in_batches_and_sent_once_to_its_segment(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_mailchimp: FakeMailchimp
) -> None:
    campaign_id = create(ctx, hasher, 12)
    send(worker, campaign_id, 0, 1, 2)

    [sent] = fake_mailchimp.sends
    assert sorted(sent["recipients"]) == sorted(email(n) for n in range(12))
    assert states(ctx.engine, campaign_id) == {email(n): "sent" for n in range(12)}
    assert {r["provider_id"] for r in rows(ctx.engine, campaign_id).values()} == {
        sent["campaign_id"]
    }
    campaign = fake_mailchimp.campaigns[sent["campaign_id"]]
    assert campaign["settings"]["reply_to"] == REPLY_TO
    assert campaign["settings"]["subject_line"] == f"Vinterkampanje fra {ORG_NAME}"
    content = campaign["content"]
    # ES-4: our link and Mailchimp's own; GD-1 and the name as merge fields.
    for text in (content["plain_text"], content["html"]):
        assert "*|UNSUBURL|*" in text and "*|UNSUB|*" in text
        assert "*|SRCNOTICE|*" in text and "*|FNAME|*" in text
    by_email = rows(ctx.engine, campaign_id)
    member = fake_mailchimp.member(email(3))
    assert member is not None and member["status"] == "subscribed"
    assert member["merge_fields"][URL_FIELD].startswith(f"{PUBLIC_URL}/u/")
    assert "Partner A" in member["merge_fields"]["SRCNOTICE"]
    assert member["merge_fields"]["FNAME"] == "Ola3"
    assert by_email[email(3)]["state"] == "sent"
    tags = [f["tag"] for f in fake_mailchimp.lists[DEFAULT_LIST_ID]["merge_fields"]]
    assert "UNSUBURL" in tags and "SRCNOTICE" in tags
    assert fake_mailchimp.max_concurrency <= 8 and fake_mailchimp.too_many_requests == 0
    assert max(fake_mailchimp.deliveries_by_email().values()) == 1


@pytest.mark.parametrize(
    ("held", "reason"), [("unsubscribed", UNSUBSCRIBE), ("cleaned", HARD_BOUNCE)]
)
def test_a_member_mailchimp_holds_as_gone_stays_so_and_becomes_a_ledger_entry(
    ctx: Context,
    hasher: Hasher,
    worker: dramatiq.Worker,
    fake_mailchimp: FakeMailchimp,
    held: str,
    reason: str,
) -> None:
    """EM-4: never resubscribed (the fake records any attempt as a violation and the
    fixture fails the test), recorded in the ledger, not sent."""
    fake_mailchimp.add_member(email(2), status=held)
    campaign_id = create(ctx, hasher, 6)
    send(worker, campaign_id, 0, 1)

    row = rows(ctx.engine, campaign_id)[email(2)]
    assert (row["state"], row["send_rule"]) == ("excluded_at_send", "EM-4")
    assert fake_mailchimp.status_of(email(2)) == held
    with ctx.engine.connect() as conn:
        [entry] = Ledger(conn, hasher).status("email", email(2)).entries
    assert (entry.scope, entry.reason, entry.source) == ("email", reason, "mailchimp")
    [sent] = fake_mailchimp.sends
    assert email(2) not in sent["recipients"] and len(sent["recipients"]) == 5


def test_an_opt_out_between_the_sync_and_the_send_is_removed_and_unsubscribed(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_mailchimp: FakeMailchimp
) -> None:
    """ALL-6 and EM-4: batch 0 is synced, then person 1 objects, then the last batch
    triggers the send: person 1 is taken out of the segment, unsubscribed in the
    audience, and Mailchimp's send does not include them."""
    campaign_id = create(ctx, hasher, 10)
    send(worker, campaign_id, 0)
    assert states(ctx.engine, campaign_id)[email(1)] == "staged"
    assert fake_mailchimp.status_of(email(1)) == "subscribed"
    with ctx.engine.begin() as conn:
        Ledger(conn, hasher).add(
            hasher.hash(email_identity(email(1))), "email",
            scope="all", reason=OBJECTION, source="test", now=ctx.clock(),
        )  # fmt: skip

    send(worker, campaign_id, 1)

    row = rows(ctx.engine, campaign_id)[email(1)]
    assert (row["state"], row["send_rule"]) == ("excluded_at_send", "ALL-1")
    assert fake_mailchimp.status_of(email(1)) == "unsubscribed"
    [sent] = fake_mailchimp.sends
    assert email(1) not in sent["recipients"] and len(sent["recipients"]) == 9
    segment = fake_mailchimp.lists[DEFAULT_LIST_ID]["segments"][str(sent["segment_id"])]
    assert subscriber_hash(email(1)) not in segment["members"]
    removals = [
        r for r in fake_mailchimp.requests
        if r["method"] == "POST" and f"/segments/{sent['segment_id']}" in r["path"]
    ]  # fmt: skip
    assert len(removals) >= 2  # the adds, then the removal


def test_a_campaign_cancelled_while_its_last_batch_is_syncing_is_never_sent(
    ctx: Context,
    hasher: Hasher,
    patient: Context,
    worker: dramatiq.Worker,
    fake_mailchimp: FakeMailchimp,
) -> None:
    """The last batch's sync is held by the fake while the marketer cancels: when it
    finishes, the staged recipients end `cancelled` and Mailchimp sends nothing."""
    # The sync is held longer than this module's short timeout: `patient` gives it time.
    campaign_id = create(ctx, hasher, 10)
    send(worker, campaign_id, 0)
    fake_mailchimp.delay_next(2.0, method="POST", path=f"/lists/{DEFAULT_LIST_ID}")
    actors.enqueue_batch(campaign_id, 1)
    wait_for(
        lambda: any(r.get("delayed") and r["status"] is None for r in fake_mailchimp.requests),
        "the last batch's sync to be held",
    )
    with ctx.engine.begin() as conn:  # what `outreach campaign cancel` does
        campaign_mod.move(conn, campaign_id, campaign_mod.CANCELLED)
    actors.broker.join("sends")
    worker.join()

    assert fake_mailchimp.sends == [] and fake_mailchimp.campaigns == {}
    assert set(states(ctx.engine, campaign_id).values()) == {"cancelled"}


def test_a_5xx_during_the_sync_is_retried_and_everyone_is_sent_once(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_mailchimp: FakeMailchimp
) -> None:
    fake_mailchimp.fail_next(2, status=503, method="POST", path=f"/lists/{DEFAULT_LIST_ID}")
    campaign_id = create(ctx, hasher, 6)
    send(worker, campaign_id, 0, 1)

    assert [r["status"] for r in fake_mailchimp.requests].count(503) == 2
    assert set(states(ctx.engine, campaign_id).values()) == {"sent"}
    assert fake_mailchimp.deliveries_by_email() == {email(n): 1 for n in range(6)}


@pytest.mark.parametrize("fault", ["429", "drop", "slow"])
def test_a_sync_that_is_refused_dropped_or_too_slow_is_simply_done_again(
    ctx: Context,
    hasher: Hasher,
    worker: dramatiq.Worker,
    fake_mailchimp: FakeMailchimp,
    fault: str,
) -> None:
    """Upserts are idempotent: a rate limit waits, a lost answer is asked again; either
    way everyone is synced once and sent once."""
    batch_call = {"method": "POST", "path": f"/lists/{DEFAULT_LIST_ID}"}
    if fault == "429":
        fake_mailchimp.fail_next(1, status=429, **batch_call)
    elif fault == "drop":
        fake_mailchimp.drop_next(1, **batch_call)
    else:
        fake_mailchimp.delay_next(TIMEOUT * 4, **batch_call)
    campaign_id = create(ctx, hasher, 6)
    send(worker, campaign_id, 0, 1)

    assert set(states(ctx.engine, campaign_id).values()) == {"sent"}
    assert fake_mailchimp.deliveries_by_email() == {email(n): 1 for n in range(6)}


def test_a_dropped_send_is_checked_with_mailchimp_and_sent_exactly_once(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_mailchimp: FakeMailchimp
) -> None:
    fake_mailchimp.drop_next(1, path="/actions/send")
    campaign_id = create(ctx, hasher, 4)
    send(worker, campaign_id, 0)

    sends = [r for r in fake_mailchimp.requests if r["path"].endswith("/actions/send")]
    assert [r["status"] for r in sends] == ["dropped", 204]
    assert len(fake_mailchimp.sends) == 1
    assert set(states(ctx.engine, campaign_id).values()) == {"sent"}


def test_a_send_whose_answer_never_comes_is_unknown_reaches_everyone_once_and_is_reconciled(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_mailchimp: FakeMailchimp
) -> None:
    """Every send is slower than our timeout and Mailchimp cannot be asked in between:
    the outcome is unknown. Mailchimp sends a campaign once, whatever we repeat; once it
    answers again, reconciliation reads the campaign's status."""
    fake_mailchimp.delay_next(TIMEOUT * 4, n=None, path="/actions/send")
    fake_mailchimp.drop_next(None, method="GET", path="/campaigns/")
    campaign_id = create(ctx, hasher, 3)
    send(worker, campaign_id, 0)
    assert set(states(ctx.engine, campaign_id).values()) == {"unknown"}
    wait_for(lambda: len(fake_mailchimp.sends) == 1, "Mailchimp to send the campaign")
    fake_mailchimp.clear_faults()

    camp = campaign_mod_get(ctx, campaign_id)
    ids = [int(str(r["id"])) for r in rows(ctx.engine, campaign_id).values()]
    found = reconcile_unknown(ctx.engine, channel_factory(ctx)(camp), campaign_id, ids, ctx.clock())

    assert found == 3
    assert set(states(ctx.engine, campaign_id).values()) == {"sent"}
    assert len(fake_mailchimp.sends) == 1
    assert fake_mailchimp.deliveries_by_email() == {email(n): 1 for n in range(3)}


def test_a_campaign_without_a_reply_to_address_fails_without_touching_the_audience(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, fake_mailchimp: FakeMailchimp
) -> None:
    with ctx.engine.begin() as conn:
        add_person(conn, hasher, 0)
        camp = campaign_mod.create(
            conn, name="x", channel="email", purpose="alarm", template_text=TEMPLATE,
            organisation_name=ORG_NAME, sender=campaign_mod.Sender(from_name=ORG_NAME),
            now=LAUNCH,
        )  # fmt: skip
        launch_mod.launch(conn, ctx.hasher, ctx.policy, camp.id, now=LAUNCH)
    send(worker, camp.id, 0)

    row = rows(ctx.engine, camp.id)[email(0)]
    assert row["state"] == "failed" and "reply-to" in str(row["error"])
    assert fake_mailchimp.requests == [] and fake_mailchimp.sends == []


def test_a_large_sync_uses_batches_of_500_on_at_most_eight_connections(
    fake_mailchimp: FakeMailchimp,
) -> None:
    """Mailchimp's limits: 10 simultaneous connections (we keep 8) and 500 members a call."""
    fake_mailchimp.delay_next(0.2, n=None, method="POST")  # calls overlap, as under load
    api = MailchimpApi(fake_mailchimp.api_key, "us1", base_url=fake_mailchimp.base_url, timeout=5)
    audience = Audience(api, DEFAULT_LIST_ID)
    members = [Member(f"kunde{n}@example.com", {"FNAME": f"Kari{n}"}) for n in range(6_000)]

    result = audience.upsert(members)

    assert len(result.subscribed) == 6_000 and not result.errors
    assert fake_mailchimp.max_concurrency == 8 and fake_mailchimp.too_many_requests == 0
    assert len([r for r in fake_mailchimp.requests if r["method"] == "POST"]) == 12


def test_the_connection_gate_holds_across_worker_processes_through_redis(
    ctx: Context,
) -> None:
    """Two worker processes each build their own gate; Redis makes them one: with both
    slots held by one, the other waits until a slot is given back."""
    import threading
    from contextlib import ExitStack

    from tests.services import REDIS_URL, require
    from worker.services import _mailchimp_gate

    require("Redis", "127.0.0.1", 6379)
    s = ctx.settings.model_copy(update={"redis_url": REDIS_URL, "mailchimp_max_connections": 2})
    first, second = _mailchimp_gate(Context(s)), _mailchimp_gate(Context(s))
    assert first is not None and second is not None
    entered = threading.Event()

    def other_process() -> None:
        with second():
            entered.set()

    with ExitStack() as held:
        held.enter_context(first())
        held.enter_context(first())
        waiting = threading.Thread(target=other_process)
        waiting.start()
        assert not entered.wait(0.5)
    assert entered.wait(10)
    waiting.join(10)


def campaign_mod_get(ctx: Context, campaign_id: int) -> campaign_mod.Campaign:
    with ctx.engine.connect() as conn:
        return campaign_mod.get(conn, campaign_id)


def test_a_campaign_paused_when_every_batch_is_staged_is_sent_on_resume(
    ctx: Context,
    hasher: Hasher,
    patient: Context,
    worker: dramatiq.Worker,
    fake_mailchimp: FakeMailchimp,
) -> None:
    """Paused while its last batch syncs: the batch is staged and nothing is sent;
    `resume` enqueues a delivery of the finished batch, which sends everyone once."""
    from worker.commands.campaign import _enqueue

    campaign_id = create(ctx, hasher, 4, batch_size=10)
    fake_mailchimp.delay_next(2.0, method="POST", path=f"/lists/{DEFAULT_LIST_ID}")
    actors.enqueue_batch(campaign_id, 0)
    wait_for(
        lambda: any(r.get("delayed") and r["status"] is None for r in fake_mailchimp.requests),
        "the batch's sync to be held",
    )
    with ctx.engine.begin() as conn:  # what `outreach campaign pause` does
        campaign_mod.move(conn, campaign_id, campaign_mod.PAUSED)
    actors.broker.join("sends")
    worker.join()
    assert fake_mailchimp.sends == []
    assert set(states(ctx.engine, campaign_id).values()) == {"staged"}

    with ctx.engine.begin() as conn:  # what `outreach campaign resume` does
        campaign_mod.move(conn, campaign_id, campaign_mod.RUNNING)
    _enqueue(ctx, campaign_id)
    actors.broker.join("sends")
    worker.join()
    assert set(states(ctx.engine, campaign_id).values()) == {"sent"}
    assert fake_mailchimp.deliveries_by_email() == {email(n): 1 for n in range(4)}
    with ctx.engine.connect() as conn:
        assert campaign_mod.get(conn, campaign_id).state == campaign_mod.DONE
