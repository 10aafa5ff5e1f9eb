"""`outreach partners`: the partners file, and polling their inboxes on demand."""

from __future__ import annotations

import click

from campaigns.polling import ARCHIVED, FAILED, REJECTED, PollResult, poll
from campaigns.sources.partners_config import load_partners
from worker.commands import json_option
from worker.context import Context
from worker.output import console, emit_json


@click.group()
def partners() -> None:
    """Partners who send lead files: check the partners file, poll their inboxes."""


@partners.command("list")
@json_option
def list_(as_json: bool) -> None:
    """The partners file, checked: each partner and where its files arrive."""
    ctx = Context.load()
    found = load_partners(ctx.settings.partners_file)
    rows = [
        {
            "name": p.name,
            "display_name": p.display_name,
            "inbox": (
                f"sftp://{p.sftp.user}@{p.sftp.host}:{p.sftp.port}{p.sftp.inbox}"
                if p.sftp
                else str(p.local_dir)
                if p.local_dir
                else None
            ),
        }
        for p in found.values()
    ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        console.print(
            f"{row['name']} ({row['display_name']}): {row['inbox'] or 'no inbox'}", highlight=False
        )


@partners.command("poll")
@click.option("--partner", "partner_name", default=None, help="Poll only this partner.")
@json_option
def poll_(partner_name: str | None, as_json: bool) -> None:
    """Take finished files from the partners' inboxes, import, archive, write error reports.

    Exit 1 when a partner could not be polled or a file failed (it stays for the next poll).
    """
    ctx = Context.load()
    found = load_partners(ctx.settings.partners_file)
    results = poll(ctx.engine, ctx.hasher, ctx.policy, found, partner_name, now=ctx.clock())
    if as_json:
        emit_json([r.as_dict() for r in results])
    else:
        for r in results:
            _print(r)
    if not all(r.ok for r in results):
        raise SystemExit(1)


def _print(r: PollResult) -> None:
    if r.error:
        console.print(f"[red]{r.partner}:[/] {r.error}", highlight=False)
        return
    if not r.files and not r.waiting:
        console.print(f"{r.partner}: nothing new")
    for f in r.files:
        res = f.result
        if f.outcome == ARCHIVED and res is not None:
            console.print(
                f"{r.partner}: {f.name}: {res.status}, {res.accepted} accepted, {res.refused} refused; "
                f"archived as {f.archived_as}, report {f.report}",
                highlight=False,
            )
        elif f.outcome == REJECTED and res is not None:
            reason = res.errors[0].reason if res.errors else "refused"
            console.print(
                f"{r.partner}: {f.name}: refused whole ({reason}); moved to errors", highlight=False
            )
        elif f.outcome == FAILED:
            console.print(
                f"[red]{r.partner}: {f.name}:[/] {f.error}; left for the next poll", highlight=False
            )
    for name in r.waiting:
        console.print(
            f"{r.partner}: {name}: still arriving, taken at a later poll", highlight=False
        )
