"""`outreach partners`: the partners file, and polling their inboxes on demand."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from campaigns.polling import ARCHIVED, FAILED, REJECTED, PollResult, poll, poll_now
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
    Summaries,
    console,
    emit_json,
    error_line,
)


@click.group(cls=Summaries)
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


@partners.command("poll", epilog="File format: docs/formats.md#partner-leads")
@click.option("--partner", "partner_name", default=None, help="Poll only this partner.")
@click.option(
    "--now",
    "right_now",
    is_flag=True,
    help="Do not wait for the clock's next poll: look again after --settle seconds and "
    "take each file whose size stood still in between.",
)
@click.option(
    "--settle",
    type=click.FloatRange(0, 300),
    default=3.0,
    show_default=True,
    help="With --now: seconds between the two looks.",
)
@json_option
def poll_(partner_name: str | None, right_now: bool, settle: float, as_json: bool) -> None:
    """Take finished files from the partners' inboxes, import, archive, write error reports.

    A file is taken when a NAME.done marker is next to it, or when its size and time
    are the same as at the previous poll (docs/partners.md, "When a file is taken"): a
    file first seen now waits for the next poll, and the output says from when. --now
    polls twice, --settle seconds apart. Exit 4 when a partner's inbox could not be
    reached, 5 when a file failed (it stays for the next poll).
    """
    ctx = Context.load()
    found = load_partners(ctx.settings.partners_file)
    interval = timedelta(minutes=ctx.settings.sftp_poll_minutes)
    if right_now:
        results = poll_now(
            ctx.engine,
            ctx.hasher,
            ctx.policy,
            found,
            partner_name,
            now=ctx.clock(),
            settle=lambda: _settle(ctx, settle),
            next_poll=interval,
        )
    else:
        results = poll(
            ctx.engine,
            ctx.hasher,
            ctx.policy,
            found,
            partner_name,
            now=ctx.clock(),
            next_poll=interval,
        )
    if as_json:
        emit_json([r.as_dict() for r in results])
    else:
        for r in results:
            _print(r, interval, right_now)
    if any(r.error for r in results):
        raise SystemExit(EXIT_UNAVAILABLE)  # an inbox could not be reached or listed
    if not all(r.ok for r in results):
        raise SystemExit(EXIT_INPUT_REFUSED)  # a file failed; it stays for the next poll


def _settle(ctx: Context, seconds: float) -> datetime:
    """Wait between the two looks of --now; the time after it, from the process's clock."""
    import time

    time.sleep(seconds)
    return ctx.clock()


def _oslo(moment: datetime) -> str:
    from suppression.calendar import OSLO

    return f"{moment.astimezone(OSLO):%Y-%m-%d %H:%M} Europe/Oslo"


def _print(r: PollResult, interval: timedelta, right_now: bool) -> None:
    if r.error:
        console.print(f"[red]{r.partner}:[/] {r.error}", highlight=False, soft_wrap=True)
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
                soft_wrap=True,
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
    minutes = int(interval.total_seconds() // 60)
    for name in r.waiting:
        at = r.earliest.get(name)
        when = f" from {_oslo(at)}" if at is not None else ""
        if name in r.incomplete:
            console.print(
                f"{r.partner}: {name}: ends inside a row, perhaps an upload that paused; "
                f"taken when the rest arrives, or refused if it stays so{when}",
                highlight=False,
                soft_wrap=True,
            )
            continue
        hint = (
            "" if right_now else "; `outreach partners poll --now` takes it now if it stands still"
        )
        console.print(
            f"{r.partner}: {name}: still arriving (its size must stay the same until the next "
            f"poll, the clock polls every {minutes} min): taken at the next poll{when}{hint}",
            highlight=False,
            soft_wrap=True,
        )
