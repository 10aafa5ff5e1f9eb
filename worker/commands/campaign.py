from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import select, update

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import report as report_mod
from campaigns.campaign_schema import QUEUED, batches
from worker.commands import json_option
from worker.context import Context
from worker.output import console, emit_json


def _enqueue(ctx: Context, campaign_id: int) -> list[int]:
    from worker import actors

    actors.configure(ctx)
    with ctx.engine.begin() as conn:
        # Waiting batches (quiet hours) go too: the worker delays them again if need be.
        conn.execute(
            update(batches)
            .where(batches.c.campaign_id == campaign_id, batches.c.state == "waiting")
            .values(state=QUEUED)
        )
        numbers = launch_mod.batches_to_enqueue(conn, campaign_id)
        any_batch = conn.execute(
            select(batches.c.batch_no).where(batches.c.campaign_id == campaign_id).limit(1)
        ).first()
    if not numbers and any_batch is not None:
        # Nothing left to send, but a whole-campaign channel may still have to send the
        # staged recipients: a delivery of a finished batch finalizes (campaigns.sending).
        actors.enqueue_batch(campaign_id, int(any_batch[0]))
    for n in numbers:
        actors.enqueue_batch(campaign_id, n)
    return numbers


def _run_embedded_if_needed(ctx: Context, campaign_id: int, wait: bool, as_json: bool) -> None:
    from worker import actors
    from worker.broker import is_embedded

    if is_embedded(actors.broker) and wait:
        from worker import embedded

        embedded.run(ctx, [campaign_id], show_progress=not as_json and console.is_terminal)


@click.group()
def campaign() -> None:
    """Campaigns: create, preview, launch, follow, report."""


@campaign.command("create")
@click.option("--name", required=True)
@click.option("--channel", type=click.Choice(campaign_mod.CHANNELS), required=True)
@click.option(
    "--purpose", required=True, help="The product category the campaign is about (ES-2, TP-3)."
)
@click.option(
    "--template",
    "template_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
)
@click.option(
    "--audience",
    type=click.Choice(["customers", "partners", "both"]),
    default="both",
    show_default=True,
)
@click.option(
    "--partner", "partners", multiple=True, help="Only leads from these partners (repeatable)."
)
@click.option(
    "--postal-prefix",
    "postal_prefixes",
    multiple=True,
    help="Only these postal-code prefixes (repeatable).",
)
@click.option("--rate-limit", type=int, default=None, help="Messages per second.")
@click.option(
    "--segment-limit", type=int, default=None, help="SMS: most segments a message may take."
)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--from-name", default="", help="Sender name (default: the organisation).")
@click.option("--from-email", default="")
@click.option("--sms-sender", default="", help="SMS sender id or Messaging Service.")
@click.option("--caller-id", default="", help="Calls: the number shown to the person (TP-6).")
@json_option
def create(
    name: str,
    channel: str,
    purpose: str,
    template_file: Path,
    audience: str,
    partners: tuple[str, ...],
    postal_prefixes: tuple[str, ...],
    rate_limit: int | None,
    segment_limit: int | None,
    batch_size: int,
    from_name: str,
    from_email: str,
    sms_sender: str,
    caller_id: str,
    as_json: bool,
) -> None:
    """Create a draft campaign. Refuses templates without the unsubscribe link (ES-4),
    the sender's identity (ALL-7) or, when partner leads can be reached, the source notice (GD-1)."""
    ctx = Context.load()
    aud = campaign_mod.Audience(
        customers=audience in ("customers", "both"),
        partner_leads=audience in ("partners", "both"),
        partners=partners,
        postal_prefixes=postal_prefixes,
    )
    sender = campaign_mod.Sender(
        from_name=from_name or ctx.settings.organisation_name,
        from_email=from_email,
        sms_sender=sms_sender,
        caller_id=caller_id,
    )
    with ctx.engine.begin() as conn:
        camp = campaign_mod.create(
            conn,
            name=name,
            channel=channel,
            purpose=purpose,
            template_text=template_file.read_text(encoding="utf-8"),
            organisation_name=ctx.settings.organisation_name,
            audience=aud,
            sender=sender,
            rate_limit=rate_limit,
            segment_limit=segment_limit,
            now=ctx.clock(),
            batch_size=batch_size,
        )
    if as_json:
        emit_json({"id": camp.id, "name": camp.name, "channel": camp.channel, "state": camp.state})
    else:
        console.print(f"campaign {camp.id} created ({camp.channel}, purpose {camp.purpose}): draft")


def _samples_by_rule(summary: launch_mod.Summary) -> dict[str, list[dict[str, Any]]]:
    """The preview's samples by rule id, as the counts are, each naming its decision (one
    rule decides both ways: ES-1 sends with consent and excludes without)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for key, found in summary.samples.items():
        for sample in found:
            # Keyed by rule, samples name their decision; keyed by decision, the key does.
            grouped.setdefault(sample["rule"], []).append({"decision": key, **sample})
    return grouped


def _print_summary(title: str, summary: launch_mod.Summary) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("decision")
    table.add_column("rule")
    table.add_column("count", justify="right")
    table.add_column("samples")
    by_rule = _samples_by_rule(summary)
    for (decision, rule), n in sorted(summary.by_decision.items(), key=lambda kv: -kv[1]):
        samples = ", ".join(
            f"{s['name']} ({s['postal_code'] or '-'})"
            for s in by_rule.get(rule, [])
            if s["decision"] == decision
        )
        table.add_row(decision, rule, str(n), samples)
    console.print(table)
    console.print(
        f"audience {summary.audience}, eligible {summary.eligible}, batches {summary.batches}"
    )


@campaign.command("preview")
@click.argument("campaign_id", type=int)
@json_option
def preview(campaign_id: int, as_json: bool) -> None:
    """Who would be contacted and who excluded, by reason and rule. Changes nothing."""
    ctx = Context.load()

    with ctx.engine.connect() as conn:
        summary = launch_mod.preview(conn, ctx.hasher, ctx.policy, campaign_id, now=ctx.clock())
        conn.rollback()
    if as_json:
        emit_json({**summary.as_dict(), "samples": _samples_by_rule(summary)})
    else:
        _print_summary(f"preview of campaign {campaign_id}", summary)


@campaign.command("launch")
@click.argument("campaign_id", type=int)
@click.option("--wait/--no-wait", default=True, help="Embedded mode: send now, in this process.")
@json_option
def launch(campaign_id: int, wait: bool, as_json: bool) -> None:
    """Decide every audience member, store the recipients and enqueue the batches."""
    ctx = Context.load()

    with ctx.engine.begin() as conn:
        summary = launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=ctx.clock())
    enqueued = _enqueue(ctx, campaign_id)
    if not as_json:
        _print_summary(f"campaign {campaign_id} launched", summary)
    _run_embedded_if_needed(ctx, campaign_id, wait, as_json)
    if as_json:
        emit_json({**summary.as_dict(), "enqueued_batches": len(enqueued)})


def _move(campaign_id: int, to: str) -> campaign_mod.Campaign:
    ctx = Context.load()
    with ctx.engine.begin() as conn:
        return campaign_mod.move(conn, campaign_id, to)


@campaign.command("pause")
@click.argument("campaign_id", type=int)
def pause(campaign_id: int) -> None:
    """Stop sending after the messages in flight; resume continues where it stopped."""
    camp = _move(campaign_id, campaign_mod.PAUSED)
    console.print(f"campaign {camp.id}: {camp.state}")


@campaign.command("resume")
@click.argument("campaign_id", type=int)
@click.option("--wait/--no-wait", default=True, help="Embedded mode: send now, in this process.")
def resume(campaign_id: int, wait: bool) -> None:
    """Continue a paused campaign (or re-enqueue a running one's waiting batches)."""
    ctx = Context.load()
    with ctx.engine.begin() as conn:
        camp = campaign_mod.get(conn, campaign_id)
        if camp.state == campaign_mod.PAUSED:
            camp = campaign_mod.move(conn, campaign_id, campaign_mod.RUNNING)
    if camp.state != campaign_mod.RUNNING:
        console.print(f"campaign {camp.id} is {camp.state}; nothing to resume")
        return
    numbers = _enqueue(ctx, campaign_id)
    console.print(f"campaign {camp.id}: running, {len(numbers)} batches enqueued")
    _run_embedded_if_needed(ctx, campaign_id, wait, False)


@campaign.command("cancel")
@click.argument("campaign_id", type=int)
def cancel(campaign_id: int) -> None:
    """Stop the campaign for good; recipients not yet sent end as `cancelled`."""
    ctx = Context.load()
    with ctx.engine.begin() as conn:
        camp = campaign_mod.move(conn, campaign_id, campaign_mod.CANCELLED)
        from campaigns.campaign_schema import CANCELLED, recipients

        conn.execute(
            update(recipients)
            .where(recipients.c.campaign_id == campaign_id, recipients.c.state == QUEUED)
            .values(state=CANCELLED, updated_at=ctx.clock())
        )
        conn.execute(
            update(batches)
            .where(batches.c.campaign_id == campaign_id, batches.c.state != "running")
            .values(state="done")
        )
    console.print(f"campaign {camp.id}: {camp.state}")


@campaign.command("status")
@click.argument("campaign_id", type=int)
@click.option(
    "--watch", is_flag=True, help="A live progress bar until every recipient is in a final state."
)
@json_option
def status(campaign_id: int, watch: bool, as_json: bool) -> None:
    """Recipients per state."""
    ctx = Context.load()
    if watch and not as_json:
        from worker import embedded

        with embedded.progress_bar() as bar:
            embedded.watch(ctx, [campaign_id], bar)
    with ctx.engine.connect() as conn:
        rep = report_mod.build(conn, campaign_id)
    payload: dict[str, Any] = {"id": campaign_id, "state": rep.campaign.state, "states": rep.states}
    if as_json:
        emit_json(payload)
    else:
        console.print(
            f"campaign {campaign_id} ({rep.campaign.state}): "
            + ", ".join(f"{s} {n}" for s, n in rep.states.items() if n)
        )


@campaign.command("report")
@click.argument("campaign_id", type=int)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a one-page HTML report with a funnel chart.",
)
@json_option
def report(campaign_id: int, html_file: Path | None, as_json: bool) -> None:
    """Counts per state and per exclusion reason (with rule ids); the funnel."""
    ctx = Context.load()
    with ctx.engine.connect() as conn:
        rep = report_mod.build(conn, campaign_id)
    if html_file is not None:
        html_file.write_text(report_mod.html_report(rep), encoding="utf-8")
    if as_json:
        emit_json(rep.as_dict())
        return
    from rich.table import Table

    c = rep.campaign
    console.rule(f"campaign {c.id}: {c.name} ({c.channel}, {c.state})")
    t = Table(title="recipients by state")
    t.add_column("state")
    t.add_column("count", justify="right")
    for s, n in rep.states.items():
        if n:
            t.add_row(s, str(n))
    console.print(t)
    e = Table(title="excluded at launch, by reason")
    e.add_column("reason")
    e.add_column("rule")
    e.add_column("count", justify="right")
    for row in rep.exclusions:
        e.add_row(row["reason"], row["rule"], str(row["count"]))
    console.print(e)
    if rep.stopped_at_send:
        console.print(
            "stopped at send time: "
            + ", ".join(f"{r['rule']} {r['count']}" for r in rep.stopped_at_send)
        )
    console.print("funnel: " + " -> ".join(f"{label} {n}" for label, n in rep.funnel()))
    console.print(
        f"review queue: {rep.review_open} open from this campaign's recipients"
        + (" (replies that may be a no: `outreach review list`)" if rep.review_open else "")
    )
    if html_file is not None:
        console.print(f"HTML report written to {html_file}")
