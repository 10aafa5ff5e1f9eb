from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import click

from suppression.register import active_snapshot, load_snapshot
from worker.commands import json_option
from worker.context import Context
from worker.output import console, emit_json


@click.group()
def register() -> None:
    """Reservasjonsregisteret snapshots."""


@register.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--date",
    "snapshot_date",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="The snapshot's date.",
)
@json_option
def load(file: Path, snapshot_date: datetime, as_json: bool) -> None:
    """Replace the register snapshot with FILE, atomically; a bad file replaces nothing."""
    ctx = Context.load()
    with ctx.engine.begin() as conn:
        snap = load_snapshot(conn, ctx.hasher, file, snapshot_date.date(), now=ctx.clock())
    payload = {
        "snapshot_date": snap.snapshot_date,
        "sha256": snap.sha256,
        "rows": snap.row_count,
        "phone_reservations": snap.phone_reservations,
        "post_reservations": snap.post_reservations,
        "loaded_at": snap.loaded_at,
    }
    if as_json:
        emit_json(payload)
    else:
        console.print(
            f"register snapshot of {snap.snapshot_date} loaded: {snap.row_count} keys "
            f"({snap.phone_reservations} phone, {snap.post_reservations} post reservations), sha256 {snap.sha256[:16]}…"
        )


@register.command("status")
@json_option
def status(as_json: bool) -> None:
    """The active snapshot: date, checksum, counts."""
    ctx = Context.load()
    with ctx.engine.connect() as conn:
        snap = active_snapshot(conn)
    if as_json:
        emit_json(None if snap is None else asdict(snap))
        return
    if snap is None:
        console.print("no register snapshot loaded")
    else:
        age = (ctx.clock().date() - snap.loaded_at.date()).days
        console.print(
            f"snapshot {snap.snapshot_date}, loaded {age} days ago, {snap.row_count} keys, sha256 {snap.sha256}"
        )
