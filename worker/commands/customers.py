"""`outreach customers`: the CRM's customer export and alarm contacts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from campaigns.customers import import_customer_files
from campaigns.importresult import ALREADY_IMPORTED, REFUSED, ImportResult
from worker.commands import json_option
from worker.context import Context
from worker.output import EXIT_INPUT_REFUSED, Summaries, console, emit_json

SHOWN_ERRORS = 20


@click.group(cls=Summaries)
def customers() -> None:
    """Customers from the CRM (ES-2 / TP-3 facts) and their alarm contacts (ALL-3)."""


@customers.command("import", epilog="File format: docs/formats.md#crm-customers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--alarm-contacts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The alarm contacts export: stored as ledger exclusions (hashes only), never as contacts.",
)
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="Load alarm contacts even when there are fewer than at the last load by more than "
    "OUTREACH_ALARM_MAX_SHRINK (default 10 %).",
)
@json_option
def import_(file: Path, alarm_contacts: Path | None, allow_shrink: bool, as_json: bool) -> None:
    """Import the CRM's customer export (and alarm contacts) in one transaction.

    Column headers: see campaigns/sources/crm.py. The alarm contacts are a block list
    (ALL-3): any row that cannot be read, or a list shorter than the last by more than
    OUTREACH_ALARM_MAX_SHRINK, refuses both files (exit 5) and the previous list stays.
    """
    ctx = Context.load()
    outcome = import_customer_files(
        ctx.engine,
        ctx.hasher,
        file,
        alarm_contacts,
        now=ctx.clock(),
        max_shrink=ctx.settings.alarm_max_shrink,
        allow_shrink=allow_shrink,
    )
    results = [outcome.customers, *([outcome.alarm_contacts] if outcome.alarm_contacts else [])]
    if as_json:
        payload = outcome.as_dict()
        for key, res in zip(("customers", "alarm_contacts"), results, strict=False):
            payload[key]["errors"] = [asdict(e) for e in res.errors]
        emit_json(payload)
    else:
        _print(
            outcome.customers,
            f"{outcome.customers_added} customers added, {outcome.customers_updated} updated",
        )
        if outcome.alarm_contacts is not None:
            _print(outcome.alarm_contacts, f"{outcome.exclusions_added} new exclusions (ALL-3)")
    if any(r.status == REFUSED for r in results):
        raise SystemExit(EXIT_INPUT_REFUSED)


def _print(result: ImportResult, what: str) -> None:
    if result.status == REFUSED:
        console.print(
            f"[red]refused:[/] {result.filename}: {result.errors[0].reason}; nothing imported",
            highlight=False,
        )
        return
    if result.status != ALREADY_IMPORTED and result.status != "imported":
        console.print(
            f"{result.filename}: not imported (the other file was refused)", highlight=False
        )
        return
    note = (
        " (already imported; nothing changed)" if result.status == ALREADY_IMPORTED else f": {what}"
    )
    console.print(
        f"{result.filename}: {result.rows} rows, {result.accepted} accepted, {result.refused} refused{note}",
        highlight=False,
    )
    for e in result.errors[:SHOWN_ERRORS]:
        console.print(f"  row {e.row}, {e.field}: {e.reason}", highlight=False)
    if len(result.errors) > SHOWN_ERRORS:
        console.print(f"  ... and {len(result.errors) - SHOWN_ERRORS} more (--json lists them all)")
