"""`outreach leads`: import a partner file from disk, the source notice list, retention."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from campaigns.importresult import ALREADY_IMPORTED, REFUSED, ImportResult, error_report
from campaigns.intake import import_lead_file
from campaigns.retention import mark_notice_sent, notice_due, purge_expired_leads
from campaigns.sources.csvfile import encoding_name
from campaigns.sources.partners_config import load_partners, partner
from suppression.errors import FileRefused
from worker.commands import json_option
from worker.context import Context
from worker.output import Summaries, console, emit_json

if TYPE_CHECKING:
    from rich.progress import Progress

SHOWN_ERRORS = 20


@click.group(cls=Summaries)
def leads() -> None:
    """Partner leads: import a file, list who needs a source notice, purge expired leads."""


@leads.command("import", epilog="File format: docs/formats.md#partner-leads")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--partner", "partner_name", required=True, help="The partner, as in the partners file."
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the error report (CSV: row, field, reason) to this file.",
)
@click.option(
    "--encoding",
    default=None,
    help="The file's encoding (utf-8, windows-1252, utf-16), instead of the partner's or "
    "the one detected: for a file refused for its encoding.",
)
@json_option
def import_(
    file: Path, partner_name: str, report: Path | None, encoding: str | None, as_json: bool
) -> None:
    """Import a partner lead file: every accepted row or nothing; refused rows are listed.

    The same content from the same partner, read with the same encoding and column
    mapping, imports once, whatever the file is called. A file refused whole (not text,
    two encodings, cut short, no rows, a column missing) stores nothing.
    """
    if encoding is not None:
        try:
            encoding_name(encoding)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--encoding") from None
    ctx = Context.load()
    config = partner(load_partners(ctx.settings.partners_file), partner_name)
    show_progress = not as_json and sys.stdout.isatty()

    def run(progress: Progress | None) -> ImportResult:
        task = progress.add_task(file.name, total=file.stat().st_size) if progress else None

        def advance(n: int) -> None:
            if progress is not None and task is not None:
                progress.advance(task, n)

        return import_lead_file(
            ctx.engine,
            ctx.hasher,
            ctx.policy,
            config.source,
            config.lead_format,
            file,
            encoding=encoding or config.encoding,
            delimiter=config.delimiter,
            now=ctx.clock(),
            progress=advance if progress is not None else None,
        )

    if show_progress:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        columns = (
            *Progress.get_default_columns()[:1],
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            result = run(bar)
    else:
        result = run(None)
    if report is not None:
        report.write_bytes(error_report(result.errors))
    if as_json:
        emit_json(
            {
                **result.as_dict(),
                "errors": [asdict(e) for e in result.errors],
                "refused_rows": [asdict(e) for e in result.refused_rows],
                "report": str(report) if report is not None else None,
            }
        )
    elif result.status != REFUSED:
        _print(result)
        if report is not None:
            console.print(f"error report: {report}", highlight=False)
    if result.status == REFUSED:
        # The command's failure: worker.cli says it and gives the exit code of a refused file.
        raise FileRefused(result.filename, f"{result.errors[0].reason}; nothing imported")


def _print(result: ImportResult) -> None:
    if result.status == ALREADY_IMPORTED:
        first = (
            f" (first as {result.first_filename})"
            if result.first_filename != result.filename
            else ""
        )
        console.print(f"{result.filename}: {result.note}{first}", highlight=False)
    console.print(
        f"{result.filename}: {result.rows} rows, {result.accepted} accepted "
        f"({result.new_contacts} new contacts, {result.merged} merged into known contacts, "
        f"{result.duplicates} repeating a person of this file), {result.refused} refused",
        highlight=False,
    )
    for reason, count in result.by_reason.items():
        console.print(f"  {reason}: {count}", highlight=False)
    for e in result.errors[:SHOWN_ERRORS]:
        console.print(f"  row {e.row}, {e.field}: {e.reason}", highlight=False)
    if len(result.errors) > SHOWN_ERRORS:
        console.print(
            f"  ... and {len(result.errors) - SHOWN_ERRORS} more (--report FILE writes them all)"
        )


@leads.command("notice-due")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True)
@click.option(
    "--mark-sent",
    is_flag=True,
    help="Record that the written notice went to every lead listed (after sending it).",
)
@json_option
def notice_due_(days: int, mark_sent: bool, as_json: bool) -> None:
    """GD-1: partner leads not contacted within DAYS of import, who need a written notice
    of where we got their data."""
    ctx = Context.load()
    now = ctx.clock()
    with ctx.engine.begin() as conn:
        due = notice_due(conn, now, days)
        marked = mark_notice_sent(conn, [d.contact_id for d in due], now) if mark_sent else 0
    if as_json:
        emit_json({"due": [d.as_dict() for d in due], "marked_sent": marked})
        return
    if not due:
        console.print("no partner lead needs a source notice")
        return
    for d in due:
        name = " ".join(p for p in (d.first_name, d.last_name) if p) or "(no name)"
        address = ", ".join(p for p in (d.street, d.postal_code, d.city) if p) or "(no address)"
        console.print(
            f"#{d.contact_id} {name}, {address}: from {', '.join(d.partners)}, "
            f"imported {d.first_imported_at:%Y-%m-%d}",
            highlight=False,
        )
    console.print(f"{len(due)} leads" + (f", {marked} marked as sent" if mark_sent else ""))


@leads.command("purge")
@click.option(
    "--retention-days",
    type=click.IntRange(min=1),
    default=None,
    help="Override OUTREACH_LEAD_RETENTION_DAYS.",
)
@json_option
def purge(retention_days: int | None, as_json: bool) -> None:
    """GD-2: delete partner leads never converted and untouched for the retention period.
    Their ledger entries (hashes only) stay."""
    ctx = Context.load()
    days = retention_days or ctx.settings.lead_retention_days
    with ctx.engine.begin() as conn:
        purged = purge_expired_leads(conn, ctx.clock(), days)
    if as_json:
        emit_json({"retention_days": days, **purged.as_dict()})
    else:
        console.print(
            f"deleted {purged.contacts} partner leads older than {days} days "
            f"({purged.consent_records} consent records, {purged.contact_sources} sources); "
            "the ledger is untouched"
        )
