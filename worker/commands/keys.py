"""`outreach keys`: the secret keys the store's digests are made under (rotation).

docs/operations.md, "Rotating the secret key", has the steps: generate, rotate, status,
rekey, and why a key that hashed an erased person's no stays configured.
"""

from __future__ import annotations

import secrets
import sys

import click
from sqlalchemy import func, select

from worker.commands import json_option
from worker.context import Context
from worker.output import EXIT_CONFIGURATION, EXIT_REFUSED, Summaries, console, emit_json, fail


@click.group("keys", cls=Summaries)
def keys() -> None:
    """Secret keys: generate, status, rekey after a rotation, retire an old key."""


@keys.command("generate")
def generate() -> None:
    """Print a new random secret key (for OUTREACH_SECRET_KEY)."""
    click.echo(secrets.token_urlsafe(32))


@keys.command("status")
@json_option
def status(as_json: bool) -> None:
    """The configured key ids and the rows stored under each, per table. Exits 3 (a
    setting to fix) when rows are held under a key id that no configured key has."""
    from campaigns import keyring

    ctx = Context.load()
    # Read without the start-up check, so that an unknown key id can be shown here.
    from worker import db

    engine = db.engine(ctx.settings)
    try:
        with engine.connect() as conn:
            found = keyring.status(conn, ctx.hasher)
    finally:
        engine.dispose()
    if as_json:
        emit_json(found.as_dict())
    else:
        console.print(f"current key: {found.current}")
        console.print(f"previous keys: {', '.join(found.previous) or '(none)'}")
        for table, counts in found.rows.items():
            shown = ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) or "no rows"
            console.print(f"  {table}: {shown}")
        for key_id, tables in found.unknown.items():
            console.print(
                f"[bold red]key id {key_id} has rows in {', '.join(tables)} but is not "
                "configured[/]: put it back in OUTREACH_PREVIOUS_SECRET_KEYS"
            )
    if found.unknown:
        raise SystemExit(EXIT_CONFIGURATION)


@keys.command("rekey")
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=None,
    help="Contacts per transaction [default: 20000 on PostgreSQL, 5000 on SQLite].",
)
@json_option
def rekey(batch: int | None, as_json: bool) -> None:
    """Re-hash under the current key every contact stored under a previous key (and copy
    their no's and register matches); resumable and idempotent."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from campaigns.rekeying import rekey_all
    from campaigns.schema import contacts

    ctx = Context.load()
    with ctx.engine.connect() as conn:
        todo = conn.execute(
            select(func.count()).select_from(contacts).where(contacts.c.key_id != ctx.hasher.key_id)
        ).scalar_one()
    if as_json or not sys.stdout.isatty():
        done = rekey_all(ctx.engine, ctx.hasher, ctx.clock, batch=batch)
    else:
        columns = (
            *Progress.get_default_columns()[:1],
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("rekey", total=todo)
            done = rekey_all(
                ctx.engine,
                ctx.hasher,
                ctx.clock,
                batch=batch,
                progress=lambda n: bar.advance(task, n),
            )
    if as_json:
        emit_json(done.as_dict())
        return
    console.print(
        f"{done.contacts} contacts re-keyed to {ctx.hasher.key_id}; "
        f"{done.copied.ledger_entries} ledger and {done.copied.register_entries} register "
        f"entries copied; {done.kept} kept under their key (erased: no plaintext to re-hash)"
    )
    for old, new in done.conflicts:
        console.print(
            f"[yellow]contact {old} is the same person as contact {new} (stored under "
            "another key): left as it is[/]"
        )


@keys.command("retire")
@click.argument("key_id")
@json_option
def retire(key_id: str, as_json: bool) -> None:
    """Drop what is stored under a previous KEY_ID; refused while anything needs it."""
    from campaigns import keyring

    ctx = Context.load()
    try:
        with ctx.engine.begin() as conn:
            dropped = keyring.retire(conn, ctx.hasher, key_id)
    except keyring.KeyRetireRefused as exc:
        fail(str(exc), code=EXIT_REFUSED)
    if as_json:
        emit_json({"retired": key_id, "dropped": dropped})
        return
    console.print(
        f"key {key_id} retired ({dropped['ledger_entries']} ledger copies, "
        f"{dropped['register_entries']} register entries dropped): remove it from "
        "OUTREACH_PREVIOUS_SECRET_KEYS"
    )
