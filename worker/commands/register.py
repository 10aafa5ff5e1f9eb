from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import Connection, case, func, select

from suppression.register import (
    active_snapshot,
    csv_rows,
    load_snapshot,
    read_text,
    sniff_delimiter,
)
from suppression.schema import register_entries
from worker.commands import json_option
from worker.context import Context
from worker.output import Summaries, console, emit_json


@click.group(cls=Summaries)
def register() -> None:
    """Reservasjonsregisteret snapshots."""


@register.command("load", epilog="File format: docs/formats.md#register-snapshot")
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
        kinds = _what_rows_became(conn, snap.id, ctx.hasher.key_id)
    rows = _data_rows(file)
    payload = {
        "snapshot_date": snap.snapshot_date,
        "sha256": snap.sha256,
        "rows": rows,
        "keys": snap.row_count,
        "phone_numbers": kinds["phone"],
        "names_with_address": kinds["name_address"],
        "phone_reservations": snap.phone_reservations,
        "post_reservations": snap.post_reservations,
        "loaded_at": snap.loaded_at,
    }
    if as_json:
        emit_json(payload)
    else:
        console.print(
            f"register snapshot of {snap.snapshot_date} loaded: {_rows_text(rows, kinds)}; "
            f"sha256 {snap.sha256[:16]}…",
            highlight=False,
            soft_wrap=True,
        )


def _data_rows(file: Path) -> int:
    """The file's rows under its header, as a spreadsheet shows them (the load refused
    the file if any was bad, so every one became a phone number, a name with address,
    or both)."""
    data = file.read_bytes()
    text = read_text(str(file), data)
    rows = csv_rows(str(file), text, sniff_delimiter(text.split("\n", 1)[0]))
    next(rows, None)  # the header
    return sum(1 for _ in rows)


def _what_rows_became(conn: Connection, snapshot_id: int, key_id: str) -> dict[str, dict[str, int]]:
    """Per identity kind (phone, name_address): how many the snapshot holds and how many
    of them are reserved against phone calls and against addressed post, counted under
    the current key only (a snapshot is written under every configured key)."""
    e = register_entries.c
    found = {
        kind: {"count": 0, "reserved_phone": 0, "reserved_post": 0}
        for kind in ("phone", "name_address")
    }
    for kind, n, phone, post in conn.execute(
        select(
            e.identity_kind,
            func.count(),
            func.sum(case((e.reserved_phone, 1), else_=0)),
            func.sum(case((e.reserved_post, 1), else_=0)),
        )
        .where(e.snapshot_id == snapshot_id, e.key_id == key_id)
        .group_by(e.identity_kind)
    ):
        found[kind] = {"count": int(n), "reserved_phone": int(phone), "reserved_post": int(post)}
    return found


def _rows_text(rows: int, kinds: dict[str, dict[str, int]]) -> str:
    """ "3 rows: 2 phone numbers (2 reserved against calls, 1 against post), 3 names with
    address (1 against calls, 3 against post)": what each row became."""

    def part(n: int, one: str, many: str, k: dict[str, int]) -> str:
        return (
            f"{n} {one if n == 1 else many} ({k['reserved_phone']} reserved against calls, "
            f"{k['reserved_post']} against post)"
        )

    phones, names = kinds["phone"], kinds["name_address"]
    parts = []
    if phones["count"]:
        parts.append(part(phones["count"], "phone number", "phone numbers", phones))
    if names["count"]:
        parts.append(part(names["count"], "name with address", "names with address", names))
    return f"{rows} {'row' if rows == 1 else 'rows'}: {', '.join(parts)}"


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
