from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

import click

from suppression.ledger import REASONS, SCOPES, Ledger, entry_rows, event_id
from worker.commands import identity_from, identity_options, json_option
from worker.context import Context
from worker.output import EXIT_NO, Summaries, console, emit_json

SOURCE_MAX: Final = 80  # suppression.schema's ledger_entries.source

channel_option = click.option(
    "--channel",
    type=click.Choice(SCOPES),
    default="all",
    show_default=True,
    help="Scope of the no.",
)
reason_option = click.option("--reason", type=click.Choice(REASONS), required=True, help="Why.")


@click.group(cls=Summaries)
def suppress() -> None:
    """The suppression ledger: add, import, check."""


@suppress.command("add")
@identity_options
@reason_option
@channel_option
@click.option("--source", default="manual", show_default=True, help="Where the no came from.")
@click.option("--evidence", default="", help="A reference to the evidence (ticket, letter id).")
@click.option("--actor", default="cli", show_default=True)
@json_option
def add(
    email: str | None,
    phone: str | None,
    reason: str,
    channel: str,
    source: str,
    evidence: str,
    actor: str,
    as_json: bool,
) -> None:
    """Record an opt-out or objection. Adding the same one twice changes nothing."""
    ident = identity_from(email, phone)
    ctx = Context.load()
    with ctx.engine.begin() as conn:
        added = Ledger(conn, ctx.hasher).add(
            ident,
            ident.kind,
            scope=channel,
            reason=reason,
            source=source,
            evidence_ref=evidence,
            now=ctx.clock(),
            actor=actor,
        )
    if as_json:
        emit_json({"added": added, "scope": channel, "reason": reason})
    else:
        console.print("recorded" if added else "already recorded; nothing changed")


@suppress.command("import", epilog="File format: docs/formats.md#suppression-import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@reason_option
@click.option(
    "--channel",
    type=click.Choice(SCOPES),
    default=None,
    help="Scope of the no (default: all for a plain list, email for a Mailchimp export).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["plain", "mailchimp"]), default="plain", show_default=True
)
@click.option(
    "--source",
    default=None,
    help=f"Source name, at most {SOURCE_MAX} characters (default: import: and the file name).",
)
@json_option
def import_(
    file: Path, reason: str, channel: str | None, fmt: str, source: str | None, as_json: bool
) -> None:
    """Import a list: one email or phone per line, a CSV with such a column, or Mailchimp's
    unsubscribed/cleaned export. Bad lines are reported; good lines are kept."""
    from suppression.lists import parse_mailchimp, parse_plain

    # A Mailchimp unsubscribe or bounce is about email (EM-4); a plain list is a no to all.
    channel = channel or ("email" if fmt == "mailchimp" else "all")
    # A file that cannot be read whole raises FileRefused (exit 5): nothing of it is kept.
    parse = parse_mailchimp if fmt == "mailchimp" else parse_plain
    items, errors = parse(file.read_bytes(), name=str(file))
    ctx = Context.load()
    if source is not None and not 0 < len(source) <= SOURCE_MAX:
        raise click.BadParameter(f"1 to {SOURCE_MAX} characters", param_hint="--source")
    source_name = source or import_source(file.name)
    rows: list[dict[str, object]] = []
    now = ctx.clock()
    for item in items:
        rows += entry_rows(
            ctx.hasher.hash_all(item.identity),
            identity_kind=item.identity.kind,
            kind="suppression",
            scope=channel,
            reason=reason,
            source=source_name,
            source_event=event_id("suppression", channel, reason, item.event),
            evidence_ref=f"{file.name}:line {item.line}",
            occurred_at=item.occurred_at or now,
            recorded_at=now,
            actor="cli",
        )
    with ctx.engine.begin() as conn:
        added = Ledger(conn, ctx.hasher).add_many(rows)
    summary = {
        "file": str(file),
        "lines_ok": len(items),
        "added": added,
        "already_recorded": len(items) - added,
        "refused": [{"line": e.row, "field": e.field, "reason": e.reason} for e in errors],
    }
    if as_json:
        emit_json(summary)
        return
    console.print(f"{file}: {len(items)} good lines, {added} new entries, {len(errors)} refused")
    for e in errors:
        console.print(f"  line {e.row}, {e.field}: {e.reason}", highlight=False)


def import_source(file_name: str) -> str:
    """`import:` and the file name, as the ledger's source (80 characters at most): a longer
    name keeps its start and end around a digest of the whole, so two long names that
    differ only in the middle stay two sources."""
    source = f"import:{file_name}"
    if len(source) <= SOURCE_MAX:
        return source
    digest = hashlib.sha256(file_name.encode("utf-8")).hexdigest()[:12]
    room = SOURCE_MAX - len("import:") - len(digest) - 2
    head, tail = file_name[: room - room // 3], file_name[-(room // 3) :]
    return f"import:{head}~{digest}~{tail}"


@suppress.command("check")
@identity_options
@click.option(
    "--channel", type=click.Choice(SCOPES), default=None, help="Check one scope (default: any)."
)
@json_option
def check(email: str | None, phone: str | None, channel: str | None, as_json: bool) -> None:
    """Exit 0 when contactable, 1 when suppressed (on the channel, or on any channel)."""
    ident = identity_from(email, phone)
    ctx = Context.load()
    with ctx.engine.connect() as conn:
        status = Ledger(conn, ctx.hasher).status(ident.kind, ident.value)
    scopes = [channel] if channel and channel != "all" else ["email", "sms", "phone", "post"]
    blocking = {s: status.blocking(s) for s in scopes}
    suppressed = all(blocking.values()) if channel == "all" else any(blocking.values())
    if as_json:
        emit_json(
            {
                "suppressed": suppressed,
                "scopes": {s: [f"{e.reason}:{e.scope}" for e in b] for s, b in blocking.items()},
            }
        )
    else:
        if suppressed:
            reasons = sorted({f"{e.reason} ({e.scope})" for b in blocking.values() for e in b})
            click.echo(f"suppressed: {', '.join(reasons)}")
        else:
            click.echo("contactable: no suppression in the ledger")
    if suppressed:
        raise SystemExit(EXIT_NO)
