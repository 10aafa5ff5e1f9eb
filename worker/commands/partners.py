"""`outreach partners`: the partners file, and polling their inboxes on demand."""

from __future__ import annotations

import click

from campaigns.polling import ARCHIVED, FAILED, REJECTED, PollResult, poll
from campaigns.sources.partners_config import (
    SETTING,
    PartnerConfig,
    PartnersFileInvalid,
    check_partners,
    load_partners,
)
from suppression.errors import ConfigurationError
from worker.commands import json_option
from worker.context import Context
from worker.output import (
    EXIT_CONFIGURATION,
    EXIT_INPUT_REFUSED,
    EXIT_UNAVAILABLE,
    console,
    emit_json,
    error_line,
)


@click.group()
def partners() -> None:
    """Partners who send lead files: check the partners file, poll their inboxes."""


def _inbox(p: PartnerConfig) -> str | None:
    if p.sftp is not None:
        return f"sftp://{p.sftp.user}@{p.sftp.host}:{p.sftp.port}{p.sftp.inbox}"
    return str(p.local_dir) if p.local_dir is not None else None


@partners.command("check")
@json_option
def check(as_json: bool) -> None:
    """Check the whole partners file (docs/partners.md) and the folders and key files it
    names. Exit 0 when it has no error, 3 when it has any: each is listed, naming the
    partner and the key."""
    ctx = Context.load()
    path = ctx.settings.partners_file
    found: dict[str, PartnerConfig] = {}
    try:
        found = load_partners(path)
        problems = [f"{path}: {p}" for p in check_partners(found)]
    except PartnersFileInvalid as exc:
        problems = [f"{path}: {p}" for p in exc.problems]
    except ConfigurationError as exc:
        problems = [exc.reason]
    if as_json:
        emit_json(
            {
                "file": str(path),
                "ok": not problems,
                "errors": problems,
                "partners": [
                    {"name": p.name, "display_name": p.display_name, "inbox": _inbox(p)}
                    for p in found.values()
                ],
            }
        )
    elif not problems:
        click.echo(f"{path}: {len(found)} partners, no errors")
        for p in found.values():
            click.echo(f"  {p.name}: {_inbox(p) or 'no inbox (leads import only)'}")
    for problem in problems:
        error_line(f"setting {SETTING}: {problem}")
    if problems:
        raise SystemExit(EXIT_CONFIGURATION)


@partners.command("list")
@json_option
def list_(as_json: bool) -> None:
    """The partners file, checked: each partner and where its files arrive."""
    ctx = Context.load()
    found = load_partners(ctx.settings.partners_file)
    rows = [
        {"name": p.name, "display_name": p.display_name, "inbox": _inbox(p)} for p in found.values()
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

    Exit 4 when a partner's inbox could not be reached, 5 when a file failed (it stays for
    the next poll).
    """
    ctx = Context.load()
    found = load_partners(ctx.settings.partners_file)
    results = poll(ctx.engine, ctx.hasher, ctx.policy, found, partner_name, now=ctx.clock())
    if as_json:
        emit_json([r.as_dict() for r in results])
    else:
        for r in results:
            _print(r)
    if any(r.error for r in results):
        raise SystemExit(EXIT_UNAVAILABLE)  # an inbox could not be reached or listed
    if not all(r.ok for r in results):
        raise SystemExit(EXIT_INPUT_REFUSED)  # a file failed; it stays for the next poll


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
