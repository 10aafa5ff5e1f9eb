from __future__ import annotations

from pathlib import Path

import click

from campaigns import calllist as calllist_mod
from campaigns import filetraces
from worker.commands import json_option
from worker.context import Context
from worker.output import EXIT_INPUT_REFUSED, Summaries, console, emit_json, err_console


@click.group(cls=Summaries)
def calllist() -> None:
    """Call lists for the call centre, and the outcomes it sends back (TP-1..TP-7)."""


FORMATS = ("csv", "xlsx")


def _format(out: Path, given: str | None) -> str:
    """--format, else the file's suffix (.xlsx: a workbook), else CSV."""
    if given is not None:
        return given
    return "xlsx" if out.suffix.lower() == ".xlsx" else "csv"


@calllist.command("export", epilog="File format: docs/formats.md#call-list")
@click.argument("campaign_id", type=int)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write: ringeliste.xlsx (an Excel workbook) or ringeliste.csv "
    "(UTF-8 with BOM, ';', opens in Excel).",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    default=None,
    help="xlsx: a workbook, every cell text, Norwegian headers, address and call script; "
    "csv: the same people in a CSV. Default: by the suffix of --out (else csv).",
)
@json_option
def export(campaign_id: int, out: Path, file_format: str | None, as_json: bool) -> None:
    """Write the call list of a launched call campaign. Refuses without a register snapshot
    of this month and at most 30 days old (TP-2) or with a hidden or mobile caller id
    (TP-6); leaves out anyone who said no since launch (ALL-6, TP-7). The people on it
    count as contacted (ALL-8) from this export: until then they are only listed."""
    from worker.services import partner_names

    ctx = Context.load()
    kind = _format(out, file_format)
    result = calllist_mod.build_export(
        ctx.engine, ctx.hasher, ctx.policy, campaign_id, ctx.settings.public_url, ctx.clock(),
        partner_names=partner_names(ctx),
    )  # fmt: skip
    if kind == "xlsx":
        calllist_mod.write_xlsx(result, out)
    else:
        calllist_mod.write_csv(result, out)
    with ctx.engine.begin() as conn:  # so that `forget` rewrites it and it expires
        filetraces.record_export(conn, campaign_id, out, now=ctx.clock())
        calllist_mod.mark_handed(conn, result, ctx.clock())
    if as_json:
        emit_json({**result.as_dict(), "file": str(out), "format": kind})
        return
    left = ", ".join(f"{rule} {n}" for rule, n in sorted(result.left_out.items()))
    console.print(
        f"call list of campaign {campaign_id}: {len(result.rows)} people written to {out} "
        f"(register snapshot {result.snapshot_date}; {len(result.handed)} handed over now)"
        + (f"; left out: {left}" if left else "")
    )


@calllist.command("outcomes", epilog="File format: docs/formats.md#call-outcomes")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def outcomes(file: Path, as_json: bool) -> None:
    """Read the call centre's results (reference; outcome in reached, no_answer, objection,
    reservert, wrong_number; optional note, time). An objection or "reservert" is in the
    ledger when this returns (TP-7); importing the same file again changes nothing. Bad
    rows are listed by row, field and reason (exit 5); good rows are kept."""
    ctx = Context.load()

    result = calllist_mod.import_outcomes(ctx.engine, ctx.hasher, file, ctx.clock())
    if as_json:
        emit_json(result.as_dict())
    else:
        counts = ", ".join(f"{k} {n}" for k, n in sorted(result.by_outcome.items())) or "none"
        console.print(
            f"{result.rows} rows: {counts}; {result.recorded} new ledger entries, "
            f"{result.already_recorded} already recorded"
        )
        for kind, items in (("error", result.errors), ("warning", result.warnings)):
            for e in items:
                err_console.print(f"{kind}: row {e.row}, {e.field}: {e.reason}", highlight=False)
    if result.errors:
        raise SystemExit(EXIT_INPUT_REFUSED)
