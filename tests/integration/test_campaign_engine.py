"""The campaign engine on the stub broker with a real dramatiq worker thread."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from sqlalchemy import Engine, func, select, update

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import report as report_mod
from campaigns.campaign_schema import batches, campaigns, recipients
from campaigns.channels.outbox import OutboxChannel
from campaigns.messages import render_messages
from campaigns.templates import TemplateRefused
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.policy import PolicyConfig
from tests.clock import OSLO, at, is_working_day, working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET
from tests.factories import add_person
from worker import actors, settings
from worker.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.travel]

EMAIL_TEMPLATE = (
    "Subject: Nytt fra {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n{{ source_notice }}\nAvmeld: {{ unsubscribe_url }}\n"
)
# The launch: the suite's first working-day morning, 10:00 in Oslo, inside every window
# (in UTC, as the worker's clock gives it).
LAUNCH = working_morning().astimezone(UTC)
# Long before the launch: a lease or an outcome that expired long ago.
LONG_AGO = LAUNCH - timedelta(days=365)


@pytest.fixture
def ctx(store_url: str, tmp_path: Path) -> Iterator[Context]:
    s = settings.load(
        DATABASE_URL=store_url,
        OUTREACH_SECRET_KEY=SECRET,
        OUTREACH_ORGANISATION_NAME=ORG_NAME,
        OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
        OUTREACH_OUTBOX_DIR=str(tmp_path / "outbox"),
        OUTREACH_DEMO_NOW=LAUNCH.isoformat(),
    )
    context = Context(s)
    actors.configure(context)
    yield context
    context.engine.dispose()


def _people(engine: Engine, hasher: Hasher, count: int) -> list[int]:
    with engine.begin() as conn:
        return [add_person(conn, hasher, n) for n in range(count)]


def _create(engine: Engine, channel: str = "email", **kw: object) -> int:
    with engine.begin() as conn:
        return campaign_mod.create(
            conn,
            name="Vinterkampanje",
            channel=channel,
            purpose="alarm",
            template_text=EMAIL_TEMPLATE,
            organisation_name=ORG_NAME,
            batch_size=kw.pop("batch_size", 10),  # type: ignore[arg-type]
            now=LAUNCH,
            **kw,  # type: ignore[arg-type]
        ).id


def _launch(ctx: Context, campaign_id: int) -> launch_mod.Summary:
    with ctx.engine.begin() as conn:
        summary = launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=LAUNCH)
        numbers = launch_mod.batches_to_enqueue(conn, campaign_id)
    for n in numbers:
        actors.enqueue_batch(campaign_id, n)
    return summary


def test_a_template_without_the_unsubscribe_link_is_refused(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(TemplateRefused, match="ES-4"):
        campaign_mod.create(
            conn, name="x", channel="email", purpose="alarm",
            template_text="Hei fra {{ organisation.name }} {{ source_notice }}", organisation_name=ORG_NAME,
            now=LAUNCH,
        )  # fmt: skip


def test_a_template_without_the_sender_is_refused(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(TemplateRefused, match="ALL-7"):
        campaign_mod.create(
            conn, name="x", channel="email", purpose="alarm",
            template_text="Hei {{ unsubscribe_url }} {{ source_notice }}", organisation_name=ORG_NAME,
            now=LAUNCH,
        )  # fmt: skip


def test_a_template_reaching_partner_leads_needs_the_source_notice(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(TemplateRefused, match="GD-1"):
        campaign_mod.create(
            conn, name="x", channel="email", purpose="alarm",
            template_text="Fra {{ organisation.name }}: {{ unsubscribe_url }}", organisation_name=ORG_NAME,
            now=LAUNCH,
        )  # fmt: skip


def test_preview_counts_decisions_and_changes_nothing(
    ctx: Context, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    ids = _people(ctx.engine, hasher, 5)
    with ctx.engine.begin() as conn:
        Ledger(conn, hasher).add(
            hasher.hash(email_identity("ola1@example.com")),
            "email", scope="email", reason="unsubscribe", source="test", now=LAUNCH,
        )  # fmt: skip
    campaign_id = _create(ctx.engine)
    with ctx.engine.connect() as conn:
        summary = launch_mod.preview(conn, hasher, policy_config, campaign_id, now=LAUNCH)
        assert conn.execute(select(func.count()).select_from(recipients)).scalar_one() == 0
    assert summary.audience == len(ids)
    assert summary.by_decision[("send", "ES-1")] == 4
    assert summary.by_decision[("excluded:channel_opt_out", "ALL-2")] == 1
    assert summary.samples["ALL-2"][0]["name"] == "Ola1 Nordmann"


def test_gd1_the_source_notice_names_the_partner_by_its_display_name(ctx: Context) -> None:
    with ctx.engine.begin() as conn:
        add_person(conn, ctx.hasher, 1, partner="boligpartner")
    campaign_id = _create(ctx.engine)
    with ctx.engine.begin() as conn:
        launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=LAUNCH)
    with ctx.engine.connect() as conn:
        (rid,) = conn.execute(
            select(recipients.c.id).where(recipients.c.campaign_id == campaign_id)
        ).scalars()
        (message,) = render_messages(
            conn,
            ctx.hasher,
            ctx.policy,
            ctx.settings.public_url,
            campaign_mod.get(conn, campaign_id),
            [rid],
            partner_names={"boligpartner": "Boligpartner AS"},
        )
    assert "Vi fikk kontaktinformasjonen din fra Boligpartner AS." in message.body
    assert "fra boligpartner" not in message.body


def test_gd1_a_sent_message_names_the_partner_as_the_partners_file_does(
    store_url: str, tmp_path: Path, worker: dramatiq.Worker
) -> None:
    partners_file = tmp_path / "partners.toml"
    partners_file.write_text(
        '[partners.boligpartner]\ndisplay_name = "Boligpartner AS"\n', encoding="utf-8"
    )
    context = Context(
        settings.load(
            DATABASE_URL=store_url,
            OUTREACH_SECRET_KEY=SECRET,
            OUTREACH_ORGANISATION_NAME=ORG_NAME,
            OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
            OUTREACH_OUTBOX_DIR=str(tmp_path / "outbox"),
            OUTREACH_PARTNERS_FILE=str(partners_file),
            OUTREACH_DEMO_NOW=LAUNCH.isoformat(),
        )
    )
    actors.configure(context)
    try:
        with context.engine.begin() as conn:
            add_person(conn, context.hasher, 1, partner="boligpartner")
        campaign_id = _create(context.engine)
        _launch(context, campaign_id)
        actors.broker.join("sends")
        worker.join()
        (message,) = OutboxChannel(Path(context.settings.outbox_dir), "email").messages(campaign_id)
        assert "Vi fikk kontaktinformasjonen din fra Boligpartner AS." in message["body"]
    finally:
        context.engine.dispose()


def test_a_campaign_sends_once_to_each_eligible_recipient(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    _people(ctx.engine, hasher, 25)
    campaign_id = _create(ctx.engine)
    summary = _launch(ctx, campaign_id)
    assert summary.eligible == 25 and summary.batches == 3
    actors.broker.join("sends")
    worker.join()
    with ctx.engine.connect() as conn:
        rep = report_mod.build(conn, campaign_id)
    assert rep.states["sent"] == 25
    assert rep.campaign.state == "done"
    messages = OutboxChannel(Path(ctx.settings.outbox_dir), "email").messages(campaign_id)
    assert sorted(m["to"] for m in messages) == sorted(f"ola{n}@example.com" for n in range(25))
    first = messages[0]
    # EM-1: RFC 8058 one-click headers where we control them; ES-4: the link in the body.
    assert (
        "/u/" in first["body"]
        and first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    )
    assert "Partner A" in first["body"]  # GD-1: the source notice names the partner


def test_an_opt_out_committed_after_launch_stops_the_send(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    """ALL-6 and EM-3: an opt-out committed after launch is effective at the next send."""
    _people(ctx.engine, hasher, 6)
    campaign_id = _create(ctx.engine)
    with ctx.engine.begin() as conn:
        launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=LAUNCH)
    with ctx.engine.begin() as conn:
        Ledger(conn, hasher).add(hasher.hash(email_identity("ola3@example.com")), "email",
                                 scope="all", reason="objection", source="test", now=LAUNCH)  # fmt: skip
    actors.enqueue_batch(campaign_id, 0)
    actors.broker.join("sends")
    worker.join()
    with ctx.engine.connect() as conn:
        rows = {r.contact_id: r for r in conn.execute(select(recipients))}
    stopped = [r for r in rows.values() if r.state == "excluded_at_send"]
    assert len(stopped) == 1 and stopped[0].send_rule == "ALL-1"
    messages = OutboxChannel(Path(ctx.settings.outbox_dir), "email").messages(campaign_id)
    assert "ola3@example.com" not in {m["to"] for m in messages}
    assert len(messages) == 5


def test_a_redelivered_batch_never_sends_twice(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    """A crash after claiming leaves recipients in `sending`: they become unknown and are
    reconciled against the outbox, never sent again."""
    _people(ctx.engine, hasher, 10)
    campaign_id = _create(ctx.engine)
    with ctx.engine.begin() as conn:
        launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=LAUNCH)
        # Simulate a worker killed mid-batch: 4 claimed, lease expired long ago.
        ids = [
            r[0] for r in conn.execute(select(recipients.c.id).order_by(recipients.c.id).limit(4))
        ]
        conn.execute(update(recipients).where(recipients.c.id.in_(ids)).values(state="sending"))
        conn.execute(update(batches).values(state="running", started_at=LONG_AGO))
    actors.enqueue_batch(campaign_id, 0)
    actors.enqueue_batch(campaign_id, 0)  # and a duplicate delivery
    actors.broker.join("sends")
    worker.join()
    with ctx.engine.connect() as conn:
        states = report_mod.counts(conn, campaign_id)
    assert states["unknown"] == 4 and states["sent"] == 6
    messages = OutboxChannel(Path(ctx.settings.outbox_dir), "email").messages(campaign_id)
    assert len(messages) == len({m["recipient_id"] for m in messages}) == 6


def test_a_paused_campaign_sends_nothing_until_resumed(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    _people(ctx.engine, hasher, 5)
    campaign_id = _create(ctx.engine)
    with ctx.engine.begin() as conn:
        launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=LAUNCH)
        campaign_mod.move(conn, campaign_id, campaign_mod.PAUSED)
    actors.enqueue_batch(campaign_id, 0)
    actors.broker.join("sends")
    worker.join()
    with ctx.engine.connect() as conn:
        assert report_mod.counts(conn, campaign_id)["queued"] == 5
    with ctx.engine.begin() as conn:
        campaign_mod.move(conn, campaign_id, campaign_mod.RUNNING)
    actors.enqueue_batch(campaign_id, 0)
    actors.broker.join("sends")
    worker.join()
    with ctx.engine.connect() as conn:
        assert report_mod.counts(conn, campaign_id)["sent"] == 5


def test_sms_outside_quiet_hours_waits_instead_of_dropping(ctx: Context, hasher: Hasher) -> None:
    """ES-6: a batch on a Sunday is delayed to Monday 09:00 (the next day SMS may go: a
    holiday Monday moves it on), nothing is sent or lost."""
    from worker.services import sender as build_sender

    _people(ctx.engine, hasher, 3)
    with ctx.engine.begin() as conn:
        campaign_id = campaign_mod.create(
            conn, name="sms", channel="sms", purpose="alarm",
            template_text="{{ organisation.name }}: tilbud! {{ source_notice }} Stopp: {{ unsubscribe_url }}",
            organisation_name=ORG_NAME, now=LAUNCH,
        ).id  # fmt: skip
        launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=LAUNCH)
    # The first Sunday after the launch, at 13:00 Oslo: inside the day's hours, but a Sunday.
    sunday_date = LAUNCH.astimezone(OSLO).date() + timedelta(days=1)
    while sunday_date.weekday() != 6:
        sunday_date += timedelta(days=1)
    sunday = at(sunday_date, 13)
    opening_date = sunday_date + timedelta(days=1)  # Monday, unless it is a holiday
    while not is_working_day(opening_date):
        opening_date += timedelta(days=1)
    opening = at(opening_date, 9)
    s = build_sender(ctx)
    s.now = lambda: sunday
    result = s.send_batch(campaign_id, 0)
    assert result.skipped == "quiet_hours"
    assert result.delay_until is not None and result.delay_until.isoformat().startswith(
        opening.isoformat()[: len("2026-11-30T09:00")]
    )
    with ctx.engine.connect() as conn:
        assert report_mod.counts(conn, campaign_id)["queued"] == 3


def test_the_frequency_cap_stops_the_contact_over_the_limit(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    """ALL-8: with a cap of 4 per 30 days across channels, a fifth campaign excludes the person."""
    _people(ctx.engine, hasher, 2)
    for _ in range(4):
        campaign_id = _create(ctx.engine)
        _launch(ctx, campaign_id)
        actors.broker.join("sends")
        worker.join()
    fifth = _create(ctx.engine, channel="sms")
    summary = _launch(ctx, fifth)
    assert summary.by_decision[("excluded:frequency_cap", "ALL-8")] == 2
    assert summary.eligible == 0


def _three_sent_then_two_launched(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> tuple[int, int]:
    """One person, sent three campaigns (the cap is four), then an email and an SMS campaign
    launched together: each allows the person, neither has sent yet. Their ids."""
    _people(ctx.engine, hasher, 1)
    for _ in range(3):
        campaign_id = _create(ctx.engine)
        _launch(ctx, campaign_id)
        actors.broker.join("sends")
        worker.join()
    fourth, fifth = _create(ctx.engine), _create(ctx.engine, channel="sms")
    with ctx.engine.begin() as conn:
        launch_mod.launch(conn, ctx.hasher, ctx.policy, fourth, now=LAUNCH)
        launch_mod.launch(conn, ctx.hasher, ctx.policy, fifth, now=LAUNCH)
    return fourth, fifth


def test_the_frequency_cap_is_checked_again_at_send_time(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    """ALL-8 at send time: two campaigns launched together cannot both push a person over."""
    fourth, fifth = _three_sent_then_two_launched(ctx, hasher, worker)
    actors.enqueue_batch(fourth, 0)
    actors.broker.join("sends")
    worker.join()
    actors.enqueue_batch(fifth, 0)
    actors.broker.join("sends")
    worker.join()
    with ctx.engine.connect() as conn:
        assert report_mod.counts(conn, fourth)["sent"] == 1
        fifth_row = conn.execute(select(recipients).where(recipients.c.campaign_id == fifth)).one()
    assert fifth_row.state == "excluded_at_send" and fifth_row.send_rule == "ALL-8"


def test_a_send_in_flight_elsewhere_counts_towards_the_frequency_cap_at_send_time(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    """ALL-8 at send time counts what may have been sent: another campaign's message to
    the person that a worker is sending right now (no sent_at yet) is the fourth."""
    fourth, fifth = _three_sent_then_two_launched(ctx, hasher, worker)
    with ctx.engine.begin() as conn:
        # another worker has claimed the fourth campaign's message and is sending it
        conn.execute(
            update(recipients)
            .where(recipients.c.campaign_id == fourth)
            .values(state="sending", updated_at=LAUNCH)
        )
    actors.enqueue_batch(fifth, 0)
    actors.broker.join("sends")
    worker.join()
    with ctx.engine.connect() as conn:
        row = conn.execute(select(recipients).where(recipients.c.campaign_id == fifth)).one()
    assert (row.state, row.send_rule) == ("excluded_at_send", "ALL-8")


def test_the_frequency_cap_reads_only_the_campaigns_that_can_have_sent_in_the_window(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker
) -> None:
    """ALL-8 without reading the whole history: a campaign that finished more than a day
    (FINISHED_MARGIN) before the window began is not read, whatever its rows say; one that
    finished inside the margin (a cancelled campaign's sends in flight) still counts, at
    launch and at send time."""
    _people(ctx.engine, hasher, 1)
    earlier = []
    for _ in range(4):
        campaign_id = _create(ctx.engine)
        _launch(ctx, campaign_id)
        actors.broker.join("sends")
        worker.join()
        earlier.append(campaign_id)
    window_start = LAUNCH - timedelta(days=ctx.policy.frequency_window_days)
    with ctx.engine.begin() as conn:
        # Three finished long before the window; their rows (as if touched later, say an
        # unknown outcome asked about) still carry times inside it.
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id.in_(earlier[:3]))
            .values(finished_at=window_start - timedelta(days=10))
        )
        conn.execute(
            update(recipients)
            .where(recipients.c.campaign_id.in_(earlier))
            .values(sent_at=LAUNCH - timedelta(days=1))
        )
    fifth = _create(ctx.engine, channel="sms")
    with ctx.engine.begin() as conn:
        summary = launch_mod.launch(conn, ctx.hasher, ctx.policy, fifth, now=LAUNCH)
    assert summary.eligible == 1  # one send in the window: campaign 4's
    with ctx.engine.begin() as conn:
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id.in_(earlier[:3]))
            .values(finished_at=window_start - timedelta(hours=12))
        )
    actors.enqueue_batch(fifth, 0)
    actors.broker.join("sends")
    worker.join()
    with ctx.engine.connect() as conn:
        row = conn.execute(select(recipients).where(recipients.c.campaign_id == fifth)).one()
    assert (row.state, row.send_rule) == ("excluded_at_send", "ALL-8")


def test_a_consent_request_is_marketing_and_needs_consent(
    ctx: Context, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    """ES-3: a campaign asking leads whether they want offers gets no exemption: without
    consent (or soft opt-in) the person is excluded like from any other campaign."""
    with ctx.engine.begin() as conn:
        add_person(conn, hasher, 1, consent_channels=None)
        add_person(conn, hasher, 2)
        campaign_id = campaign_mod.create(
            conn, name="Vil du ha tilbud?", channel="sms", purpose="consent_request",
            template_text="{{ organisation.name }}: vil du ha tilbud? {{ source_notice }} {{ unsubscribe_url }}",
            organisation_name=ORG_NAME, now=LAUNCH,
        ).id  # fmt: skip
    with ctx.engine.connect() as conn:
        summary = launch_mod.preview(conn, hasher, policy_config, campaign_id, now=LAUNCH)
    assert summary.by_decision[("excluded:no_consent", "ES-1")] == 1
    assert summary.by_decision[("send", "ES-1")] == 1


def test_the_clock_asks_the_channel_once_about_unknown_outcomes(
    ctx: Context, hasher: Hasher
) -> None:
    """A recipient a channel reported `unknown` is reconciled by the clock: found at the
    provider -> sent; not found -> stays unknown, asked about only once."""
    from campaigns.reconcile import ASKED, reconcile
    from worker.services import channel_factory

    _people(ctx.engine, hasher, 2)
    campaign_id = _create(ctx.engine)
    with ctx.engine.begin() as conn:
        launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=LAUNCH)
        ids = [r[0] for r in conn.execute(select(recipients.c.id).order_by(recipients.c.id))]
        conn.execute(
            update(recipients)
            .where(recipients.c.id.in_(ids))
            .values(state="unknown", error="timed out", updated_at=LONG_AGO)
        )
    # The provider (the outbox) did get the first one.
    channel = OutboxChannel(Path(ctx.settings.outbox_dir), "email")
    channel.send_payloads([(m, channel.build(m)) for m in [_message(campaign_id, ids[0])]])
    later = LAUNCH + timedelta(hours=1)
    first = reconcile(ctx.engine, later, lambda c, b: None, channel_factory(ctx))
    assert first.found_sent == 1
    with ctx.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(recipients))}
    assert rows[ids[0]].state == "sent"
    assert rows[ids[1]].state == "unknown" and ASKED in rows[ids[1]].error
    again = reconcile(
        ctx.engine, later + timedelta(hours=1), lambda c, b: None, channel_factory(ctx)
    )
    assert again.found_sent == 0


def _message(campaign_id: int, recipient_id: int) -> Any:
    from campaigns.channels.base import OutgoingMessage

    return OutgoingMessage(recipient_id, campaign_id, "x@example.com", "s", "b", "u")
