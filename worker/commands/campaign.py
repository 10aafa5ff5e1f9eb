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
from worker.output import Summaries, console, emit_json


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


@click.group(cls=Summaries)
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
    """Create a draft campaign. Refuses what would later refuse its sends or its call list:
    a template without the unsubscribe link (ES-4), the sender's identity (ALL-7) or, when
    partner leads can be reached, the source notice (GD-1); an SMS over the segment limit
    (SM-3); a call campaign without a shown landline caller id (TP-6) or without this
    month's register snapshot (TP-2). Launch checks the same again."""
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
            policy=ctx.policy,
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
    """Decide every audience member, store the recipients and enqueue the batches. Refuses,
    before anyone is counted, what create refuses (the draft, the settings or the register
    may have changed since). Says when the batches wait (ES-6) and what will send them."""
    ctx = Context.load()

    with ctx.engine.begin() as conn:
        summary = launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=ctx.clock())
    enqueued = _enqueue(ctx, campaign_id)
    if not as_json:
        _print_summary(f"campaign {campaign_id} launched", summary)
    _run_embedded_if_needed(ctx, campaign_id, wait, as_json)
    after = _progress(ctx, campaign_id)
    if as_json:
        emit_json(
            {
                **summary.as_dict(),
                "enqueued_batches": len(enqueued),
                "waiting": after["waiting"],
                "next_step": _next_step(ctx, campaign_id, after, wait),
            }
        )
        return
    _print_progress(after)
    step = _next_step(ctx, campaign_id, after, wait)
    if step:
        console.print(step, highlight=False)


def _progress(ctx: Context, campaign_id: int) -> dict[str, Any]:
    """A campaign's state, its recipients per state, and what it waits for (ES-6) or, for
    calls, the people listed and not yet exported: what status and launch say."""
    from campaigns import progress

    with ctx.engine.connect() as conn:
        camp = campaign_mod.get(conn, campaign_id)
        states = report_mod.counts(conn, campaign_id)
        now = ctx.clock()
        wait = progress.waiting(conn, camp, now)
    return {
        "id": campaign_id,
        "channel": camp.channel,
        "state": camp.state,
        "states": states,
        "waiting": wait.as_dict() if wait else None,
        "expected_start": wait.as_dict()["until"] if wait else None,
        "_waiting": wait,
        "_now": now,
    }


def _print_progress(found: dict[str, Any]) -> None:
    counts = ", ".join(f"{s} {n}" for s, n in found["states"].items() if n) or "no recipients"
    wait = found["_waiting"]
    shown = found["state"] + (f", {wait.text(found['_now'])}" if wait else "")
    console.print(f"campaign {found['id']} ({shown}): {counts}", highlight=False)
    if wait:
        console.print(f"expected start: {wait.expected_start_text()}", highlight=False)


def _next_step(ctx: Context, campaign_id: int, found: dict[str, Any], waited: bool) -> str:
    """What the marketer must do (or keep running) for the campaign to go on; "" if nothing.
    Embedded (no REDIS_URL): no process but this one and `outreach worker` sends."""
    listed = found["states"].get("listed", 0)
    if found["channel"] == "call" and listed:
        return (
            f"{listed} people are on the call list, not yet contacted: hand it to the call "
            f"centre with `outreach calllist export {campaign_id} --out ringeliste.xlsx` "
            "(they count as contacted from then)"
        )
    wait = found["_waiting"]
    if wait is None and (found["state"] != campaign_mod.RUNNING or not found["states"]["queued"]):
        return ""
    when = wait.clock_text(found["_now"]) if wait else "now"
    if ctx.settings.redis_url:
        going = f"wait for {when}" if wait else "are queued"
        return (
            f"the batches {going}: `outreach worker` sends them and `outreach clock` "
            "re-enqueues what waits; keep both running"
        )
    if wait is None and not waited:
        return (
            "nothing is sending: run `outreach worker` (it sends the batches), or "
            f"`outreach campaign resume {campaign_id}`"
        )
    if wait is None:
        return ""
    if not waited:
        return (
            f"the batches wait for {when}, and with --no-wait nothing sends them here: keep "
            f"`outreach worker` running (it sends them at {when}), or run "
            f"`outreach campaign resume {campaign_id}` after {when}"
        )
    return (
        f"the batches wait for {when}; this command's worker has stopped: keep "
        f"`outreach worker` running (it sends them at {when}), or run "
        f"`outreach campaign resume {campaign_id}` after {when}"
    )


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
    """Recipients per state, and what the campaign waits for: "waiting until 09:00 (ES-6
    quiet hours)" with the expected start; a call campaign's people listed and not yet
    handed to the call centre ("listed", not "sent", until the list is exported)."""
    ctx = Context.load()
    found = _progress(ctx, campaign_id)
    # A campaign that waits (ES-6) has nothing to watch until then: say so at once.
    if watch and not as_json and found["_waiting"] is None:
        from worker import embedded

        with embedded.progress_bar() as bar:
            embedded.watch(ctx, [campaign_id], bar)
        found = _progress(ctx, campaign_id)
    if as_json:
        emit_json({k: v for k, v in found.items() if not k.startswith("_")})
        return
    _print_progress(found)
    step = _next_step(ctx, campaign_id, found, True)
    if step:
        console.print(step, highlight=False)


@campaign.command("report")
@click.argument("campaign_id", type=int)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a one-page HTML report with a funnel chart.",
)
@click.option(
    "--lang",
    type=click.Choice(["nb", "en"]),
    default="nb",
    show_default=True,
    help="The report's language: Norwegian Bokmål or English.",
)
@json_option
def report(campaign_id: int, html_file: Path | None, lang: str, as_json: bool) -> None:
    """Counts per state and per exclusion reason (each rule id with its sentence), the
    campaign's dates, what the provider reported, and the message for a sample recipient."""
    from worker.web import i18n

    ctx = Context.load()
    settings = ctx.settings
    sender = report_mod.Sender(
        settings.organisation_name, settings.organisation_number, settings.public_url
    )
    with ctx.engine.connect() as conn:
        rep = report_mod.build(conn, campaign_id, sender=sender)
    translations = i18n.compile_catalog(lang)
    gettext = translations.gettext
    if html_file is not None:
        template = i18n.environment(lang, translations).get_template("report.html")
        html_file.write_text(report_mod.html_report(rep, template, gettext, lang), encoding="utf-8")
    if as_json:
        emit_json(rep.as_dict(gettext))
        return
    for line in report_mod.text_lines(rep, gettext):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if html_file is not None:
        console.print(gettext("HTML report written to %(path)s") % {"path": html_file})


# Looking campaigns up and changing drafts (issue 19, point 7): campaigns.listing.


@campaign.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(sorted(campaign_mod.TRANSITIONS)),
    help="Only campaigns in this state (repeatable).",
)
@json_option
def list_(states: tuple[str, ...], as_json: bool) -> None:
    """Every campaign, newest first: id, name, channel, state, audience, sent, created
    (Europe/Oslo; ISO 8601 with offset in --json). The audience is counted at launch: a
    draft's is `-` (`campaign preview ID` counts it). Who created a campaign is not
    recorded."""
    from campaigns import listing

    ctx = Context.load()
    with ctx.engine.connect() as conn:
        found = listing.list_campaigns(conn, states)
    if as_json:
        emit_json([item.as_dict() for item in found])
        return
    if not found:
        console.print("no campaigns" + (f" in state {', '.join(states)}" if states else ""))
        return
    # Plain columns, one campaign a line: read by people and by grep alike.
    click.echo(
        f"{'id':>4}  {'state':<9} {'channel':<7} {'audience':>8} {'sent':>6}  created (Europe/Oslo)  name; for"
    )
    for item in found:
        c = item.campaign
        audience = "-" if item.audience is None else str(item.audience)
        sent = str(item.sent) + (f" (+{item.listed} listed)" if item.listed else "")
        click.echo(
            f"{c.id:>4}  {c.state:<9} {c.channel:<7} {audience:>8} {sent:>6}  "
            f"{listing.oslo(c.created_at):<21}  {c.name}; {listing.describe_audience(c.audience)}"
        )
    click.echo("who created a campaign is not recorded")


@campaign.command("show")
@click.argument("campaign_id", type=int)
@json_option
def show(campaign_id: int, as_json: bool) -> None:
    """One campaign: its settings, counts, template, and the message as it will render for
    an example recipient (marked as such: not a real person, the link a placeholder)."""
    from campaigns import listing
    from worker.services import partner_names

    ctx = Context.load()
    with ctx.engine.connect() as conn:
        camp = campaign_mod.get(conn, campaign_id)
        data = listing.shown(
            conn, camp, ctx.policy, ctx.settings.public_url, partner_names=partner_names(ctx)
        )
    if as_json:
        emit_json(data)
        return
    _print_shown(data)


def _print_shown(data: dict[str, Any]) -> None:
    """Plain lines, never wrapped: the message is shown as it will be sent."""
    from datetime import datetime

    from campaigns import listing

    def line(label: str, value: object) -> None:
        click.echo(f"{label + ':':<14} {value}")

    click.echo(f"campaign {data['id']}: {data['name']}")
    line("channel", data["channel"])
    line("purpose", data["purpose"])
    line("state", data["state"])
    line("for", data["for"])
    line("audience", "- (counted at launch)" if data["audience"] is None else data["audience"])
    line("sent", data["sent"])
    times = (("created", "created_at"), ("launched", "launched_at"), ("finished", "finished_at"))
    for label, key in times:
        if data[key]:
            line(label, f"{listing.oslo(datetime.fromisoformat(data[key]))} Europe/Oslo")
    line("created by", "not recorded")
    sender = {k: v for k, v in data["sender"].items() if v}
    line("sender", ", ".join(f"{k} {v}" for k, v in sender.items()) or "-")
    if data["segment_limit"]:
        line("segment limit", data["segment_limit"])
    for example in data["examples"]:
        click.echo(f"--- EXAMPLE for a {example['recipient']} ({example['note']}) ---")
        if example["subject"] is not None:
            click.echo(f"Subject: {example['subject']}")
        click.echo(example["body"].rstrip("\n"))
        if "segments" in example:
            line("SMS segments", example["segments"])


@campaign.command("edit")
@click.argument("campaign_id", type=int)
@click.option("--name", default=None)
@click.option("--purpose", default=None, help="The product category (ES-2, TP-3).")
@click.option(
    "--template",
    "template_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
)
@click.option("--audience", type=click.Choice(["customers", "partners", "both"]), default=None)
@click.option("--partner", "partners", multiple=True, help="Only leads from these partners.")
@click.option("--postal-prefix", "postal_prefixes", multiple=True)
@click.option("--caller-id", default=None, help="Calls: the number shown to the person (TP-6).")
@click.option("--from-name", default=None)
@click.option("--from-email", default=None)
@click.option("--sms-sender", default=None)
@click.option("--rate-limit", type=int, default=None, help="Messages per second.")
@click.option("--segment-limit", type=int, default=None, help="SMS: most segments (SM-3).")
@click.option("--batch-size", type=int, default=None)
@json_option
def edit(
    campaign_id: int,
    name: str | None,
    purpose: str | None,
    template_file: Path | None,
    audience: str | None,
    partners: tuple[str, ...],
    postal_prefixes: tuple[str, ...],
    caller_id: str | None,
    from_name: str | None,
    from_email: str | None,
    sms_sender: str | None,
    rate_limit: int | None,
    segment_limit: int | None,
    batch_size: int | None,
    as_json: bool,
) -> None:
    """Change a draft; the checks of `campaign create` run again (ES-4, ALL-7, GD-1, SM-3,
    TP-6). A launched campaign cannot be edited (exit 6); a template refused exits 5."""
    from campaigns import listing

    ctx = Context.load()
    with ctx.engine.begin() as conn:
        current = campaign_mod.get(conn, campaign_id)
        changes = listing.Changes(
            name=name,
            purpose=purpose,
            template_text=template_file.read_text(encoding="utf-8") if template_file else None,
            audience=_edited_audience(current.audience, audience, partners, postal_prefixes),
            caller_id=caller_id,
            from_name=from_name,
            from_email=from_email,
            sms_sender=sms_sender,
            rate_limit=rate_limit,
            segment_limit=segment_limit,
            batch_size=batch_size,
        )
        camp = listing.edit(conn, campaign_id, changes, ctx.policy, now=ctx.clock())
    if as_json:
        emit_json({"id": camp.id, "name": camp.name, "channel": camp.channel, "state": camp.state})
    else:
        console.print(f"campaign {camp.id} changed ({camp.channel}, purpose {camp.purpose}): draft")


def _edited_audience(
    current: campaign_mod.Audience,
    audience: str | None,
    partners: tuple[str, ...],
    postal_prefixes: tuple[str, ...],
) -> campaign_mod.Audience | None:
    if audience is None and not partners and not postal_prefixes:
        return None
    from dataclasses import replace

    changed = current
    if audience is not None:
        changed = replace(
            changed,
            customers=audience in ("customers", "both"),
            partner_leads=audience in ("partners", "both"),
        )
    if partners:
        changed = replace(changed, partners=partners)
    if postal_prefixes:
        changed = replace(changed, postal_prefixes=postal_prefixes)
    return changed
