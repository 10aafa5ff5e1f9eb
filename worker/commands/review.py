"""`outreach review`: the queue of texts that may be a no, for a person to decide;
and the mailbox job the clock runs (`check_mailbox`)."""

from __future__ import annotations

import click

from campaigns.optouts import mailbox, review
from campaigns.optouts.mailbox import MailboxConfig, MailboxReport
from suppression.errors import ConfigurationError
from worker.commands import json_option
from worker.context import Context
from worker.output import Summaries, console, emit_json


def mailbox_config(ctx: Context) -> MailboxConfig | None:
    """The IMAP settings, or None when IMAP_HOST is not set (the mailbox is not read)."""
    s = ctx.settings
    if not s.imap_host:
        return None
    if not s.imap_user:
        raise ConfigurationError("IMAP_USER", "is required when IMAP_HOST is set")
    if not s.imap_password:
        raise ConfigurationError("IMAP_PASSWORD", "is required when IMAP_HOST is set")
    return MailboxConfig(
        host=s.imap_host,
        port=s.imap_port,
        user=s.imap_user,
        password=s.imap_password,
        folder=s.imap_folder,
        done_folder=s.imap_done_folder,
        ssl=s.imap_ssl,
    )


def check_mailbox(ctx: Context) -> MailboxReport | None:
    """The clock job: read the company mailbox once and record the opt-outs in it.

    None when no mailbox is configured. Raises mailbox.MailboxError (naming the
    setting, never an address) when the mailbox cannot be read; the next run retries.
    """
    config = mailbox_config(ctx)
    if config is None:
        return None
    return mailbox.check(ctx.engine, ctx.hasher, config, now=ctx.clock)


@click.group("review", cls=Summaries)
def review_group() -> None:
    """Texts that may be a no (SMS replies, emails to the company): a person decides."""


@review_group.command("list")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved items.")
@json_option
def list_(include_resolved: bool, as_json: bool) -> None:
    """The open items, oldest first."""
    ctx = Context.load()
    with ctx.engine.connect() as conn:
        found = review.items(conn, include_resolved=include_resolved)
    if as_json:
        emit_json([item.as_dict() for item in found])
        return
    if not found:
        console.print("the review queue is empty")
        return
    for item in found:
        state = f"resolved as {item.resolution}" if item.resolution else "open"
        console.print(
            f"[bold]#{item.id}[/] {item.kind} from {item.source}, "
            f"{item.created_at:%Y-%m-%d %H:%M} UTC, {state}",
            highlight=False,
        )
        console.print(f"  {item.text}", markup=False, highlight=False)


@review_group.command("resolve")
@click.argument("item_id", type=int)
@click.option(
    "--as",
    "resolution",
    type=click.Choice(review.RESOLUTIONS),
    required=True,
    help="unsubscribe: stop the channel it came from; objection: all marketing (ALL-1); "
    "ignore: not a no.",
)
@click.option("--actor", default="cli", show_default=True, help="Who decided.")
@json_option
def resolve(item_id: int, resolution: str, actor: str, as_json: bool) -> None:
    """Decide one item; an unsubscribe or objection is written to the ledger at once."""
    ctx = Context.load()
    with ctx.engine.begin() as conn:
        item, added = review.resolve(
            conn, ctx.hasher, item_id, resolution, actor=actor, now=ctx.clock()
        )
    if as_json:
        emit_json({"item": item.as_dict(), "ledger_entry_added": added})
        return
    console.print(
        f"#{item.id} resolved as {resolution}"
        + ("; ledger entry recorded" if added else "")
        + (
            "; erasure request: run `outreach forget` for the person if not done yet"
            if item.kind == review.ERASURE_REQUEST
            else ""
        ),
        highlight=False,
    )


@review_group.command("check-mailbox")
@json_option
def check_mailbox_command(as_json: bool) -> None:
    """Read the company mailbox once now (the clock does this periodically)."""
    report = check_mailbox(Context.load())
    if report is None:
        if as_json:
            emit_json({"configured": False})
        else:
            console.print("no mailbox configured (IMAP_HOST is not set)")
        return
    if as_json:
        emit_json({"configured": True, **report.as_dict()})
    else:
        console.print(
            f"read {report.read} mails, moved {report.moved}; "
            + ", ".join(f"{k}: {v}" for k, v in sorted(report.outcomes.items())),
            highlight=False,
        )
