from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from campaigns import archives, erasure, filetraces, people, rejected
from campaigns.explain import detached_phones
from campaigns.sources.partners_config import load_partners
from suppression.calendar import OSLO
from suppression.errors import ConfigurationError
from suppression.policy import CHANNELS, decide
from worker import db
from worker.commands import identity_from, identity_options, json_option
from worker.context import Context
from worker.output import console, emit_json, err_console


@click.command()
@identity_options
@click.option("--actor", default="cli", show_default=True, help="Who asked for the erasure.")
@json_option
def forget(email: str | None, phone: str | None, actor: str, as_json: bool) -> None:
    """Erase a person (GDPR art. 17): every plaintext trace goes, the hashed no stays (ALL-4)."""
    ident = identity_from(email, phone)
    ctx = Context.load()
    lists = [ctx.settings.mailchimp_list_id] if ctx.settings.mailchimp_list_id else []
    with ctx.engine.begin() as conn:
        targets = people.file_targets(conn, ctx.hasher, ident)  # before the sources go
        counts = people.forget(
            conn, ctx.hasher, ident, now=ctx.clock(), actor=actor, mailchimp_lists=lists
        )
    files = _erase_files(ctx, targets)
    db.after_erasure(ctx.engine)
    destinations = _erase_at_processors(ctx, str(counts["erasure"]))
    if as_json:
        emit_json(
            {
                **counts,
                "destinations": [d.as_dict() for d in destinations],
                "files": [f.as_dict() for f in files],
            }
        )
        return
    console.print(
        f"erased: {counts['contacts_cleared']} contact cleared, {counts['consents_deleted']} consent records "
        f"deleted; the hashed suppression is kept ({counts['ledger_entries_added']} new ledger entries)"
    )
    if not destinations:
        console.print("  no processor holds the person")
    for d in destinations:
        console.print(f"  {_destination_line(d.as_dict())}", highlight=False)
    for f in files:
        console.print(f"  {_file_line(f)}", highlight=False)
    if any(f.action == filetraces.FAILED for f in files):
        err_console.print(
            "some files could not be rewritten (listed above): fix the cause and run "
            "`outreach forget` again for the same person"
        )


def _erase_files(
    ctx: Context, targets: people.FileTargets
) -> list[filetraces.FileTrace | archives.ArchiveTrace]:
    """ALL-4 / GD-5 outside the store: the outbox, the call lists we exported, the
    partner files in the archives and in the errors folders. Each file says what was
    done to it."""
    now = ctx.clock()
    done: list[filetraces.FileTrace | archives.ArchiveTrace] = []
    if targets.contact_id is not None:
        with ctx.engine.begin() as conn:
            done += filetraces.erase(
                conn, ctx.hasher, targets.contact_id, Path(ctx.settings.outbox_dir), now=now
            )
    try:
        partners = load_partners(ctx.settings.partners_file)
    except ConfigurationError:
        # The erasure is committed: go on without the partners' inboxes (an archived
        # file of a partner not configured is reported `failed`, naming the partner).
        partners = {}
    matches = archives.Matches(ctx.hasher, targets.identities)
    if targets.contact_id is not None:
        done += archives.erase(
            ctx.engine, partners, targets.import_ids, matches, policy=ctx.policy, now=now
        )
    # Files refused whole were never imported: a person with no contact may be in one.
    done += rejected.erase_rejected(partners, matches)
    return done


def _file_line(f: filetraces.FileTrace | archives.ArchiveTrace) -> str:
    where = f.path if isinstance(f, filetraces.FileTrace) else f"{f.partner}: {f.file}"
    line = f"{f.kind} {where}: {f.action}"
    if f.rows_removed:
        line += f" ({f.rows_removed} removed)"
    return line + (f" ({f.reason})" if f.reason else "")


def _erase_at_processors(ctx: Context, erasure_ref: str) -> list[erasure.Destination]:
    """GD-5, once right away after the commit: what fails stays for the worker (the
    clock enqueues it again after its backoff)."""
    from worker.actors import erasure_processors

    with ctx.engine.connect() as conn:
        planned = erasure.of_erasure(conn, erasure_ref)
    if not planned:
        return []
    with erasure_processors(ctx) as processors:
        erasure.attempt_all(ctx.engine, [d.id for d in planned], processors, ctx.clock())
    with ctx.engine.connect() as conn:
        return erasure.of_erasure(conn, erasure_ref)


def _destination_line(d: dict[str, Any]) -> str:
    line = f"{d['destination']}: {d['status']} after {d['attempts']} attempt(s)"
    if d["status"] == erasure.DONE:
        return f"{line}, at {_when(d['done_at'])}"
    if d["reason"]:
        line += f" ({d['reason']})"
    return f"{line}; next attempt at {_when(d['next_attempt_at'])}"


def _when(moment: Any) -> str:
    """A time as text shows it: in Europe/Oslo, to the second, with its zone's name (the
    JSON form is ISO 8601 in UTC, campaigns.explain.utc_times); a date as it is."""
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(OSLO).strftime("%Y-%m-%d %H:%M:%S %Z")
    return "-" if moment is None else str(moment)


@click.command()
@identity_options
@click.option(
    "--purpose",
    default="alarm",
    show_default=True,
    help="Product category the contact would be about.",
)
@click.option(
    "--campaign", "campaign_id", type=int, default=None, help="Explain one campaign's decisions."
)
@json_option
def explain(
    email: str | None, phone: str | None, purpose: str, campaign_id: int | None, as_json: bool
) -> None:
    """Everything we hold about a person and, per channel, whether and why they may be contacted."""
    ident = identity_from(email, phone)
    ctx = Context.load()
    with ctx.engine.connect() as conn:
        person = people.find(conn, ctx.hasher, ident)
        decisions: dict[str, Any] = {}
        ledger_entries: list[dict[str, Any]] = []
        register_info: dict[str, Any] = {}
        now = ctx.clock()
        for channel in CHANNELS:
            facts, register = people.facts(conn, ctx.hasher, person, channel)
            decided = decide(channel, purpose, facts, register, ctx.policy, now)
            decisions[channel] = decided.as_dict()
            ledger_entries = [
                {
                    "id": e.id,
                    "kind": e.kind,
                    "scope": e.scope,
                    "reason": e.reason,
                    "source": e.source,
                    "evidence": e.evidence_ref,
                    "occurred_at": e.occurred_at,
                    "actor": e.actor,
                }
                for e in facts.ledger.entries
            ]
            register_info = {
                "snapshot_date": register.snapshot_date,
                "reserved_phone": register.reserved_phone,
                "reserved_post": register.reserved_post,
            }
        campaign_part = (
            _campaign(conn, ctx, person, campaign_id) if campaign_id is not None else None
        )
        erased_at = erasure.of_contact(conn, person.contact["id"]) if person.contact else []
        detached = detached_phones(conn, person.contact["id"]) if person.contact else []
    contact = person.contact or {}
    payload = {
        "identity": {
            "kind": ident.kind,
            "key_id": ctx.hasher.key_id,
            "key_hash": ctx.hasher.hash(ident).digest.hex(),
        },
        "contact": {k: v for k, v in contact.items() if not k.endswith("_hash")} or None,
        "sources": person.sources,
        "consents": person.consents,
        "customer": person.customer,
        "ledger": ledger_entries,
        # Numbers the call centre reported as not the person's, detached from them.
        "phone_detached": detached,
        "register": register_info,
        "purpose": purpose,
        "decisions": decisions,
        # GD-5: each processor an erasure of the person reached, and how far it got.
        "erasure": [d.as_dict() for d in erased_at],
    }
    if campaign_part is not None:
        payload["campaign"] = campaign_part
    from campaigns.explain import utc_times

    # One form of every time on every store: ISO 8601 in UTC, with its offset.
    payload = utc_times(payload)
    if as_json:
        emit_json(payload)
        return
    _print(payload)


def _campaign(conn: Any, ctx: Context, person: people.Person, campaign_id: int) -> dict[str, Any]:
    # The campaign engine records decisions per recipient; until a campaign exists there is nothing to show.
    try:
        from campaigns import explain as campaign_explain
    except ImportError:
        return {"id": campaign_id, "error": "campaigns are not available in this version"}
    result: dict[str, Any] = campaign_explain.for_person(conn, ctx.hasher, person, campaign_id)
    return result


def _print(payload: dict[str, Any]) -> None:
    """The text form: one line per fact, every time in Europe/Oslo (`_when`)."""
    _print_held(payload)
    console.rule("ledger")
    if not payload["ledger"]:
        console.print("  no entries")
    for e in payload["ledger"]:
        console.print(
            f"  #{e['id']} {e['kind']} scope={e['scope']} reason={e['reason']} source={e['source']} "
            f"at {_when(e['occurred_at'])} by {e['actor']}",
            highlight=False,
        )
    reg = payload["register"]
    console.rule("register")
    if reg.get("snapshot_date") is None:
        console.print("  no snapshot loaded")
    else:
        console.print(
            f"  snapshot {reg['snapshot_date']}: reserved for phone={reg['reserved_phone']}, post={reg['reserved_post']}"
        )
    if payload["erasure"]:
        console.rule("erasure at processors (GD-5)")
        for d in payload["erasure"]:
            console.print(f"  {_destination_line(d)}", highlight=False)
    console.rule(f"decisions (purpose: {payload['purpose']})")
    reasons = {e["id"]: e["reason"] for e in payload["ledger"]}
    for channel, d in payload["decisions"].items():
        verdict = "[green]may contact[/]" if d["allowed"] else "[red]may not contact[/]"
        basis = f", basis {d['basis']}" if d["basis"] else ""
        evidence = f", evidence {', '.join(d['evidence'])}" if d["evidence"] else ""
        console.print(
            f"  {channel:5} {verdict}: {_label(d, reasons)}{basis}{evidence}", highlight=False
        )
    if "campaign" in payload:
        _print_campaign(payload["campaign"])


def _print_held(payload: dict[str, Any]) -> None:
    contact = payload["contact"]
    console.rule("what we hold (times in Europe/Oslo)")
    if contact:
        for key, value in contact.items():
            if value is not None:
                console.print(f"  {key}: {_when(value)}", highlight=False)
    else:
        console.print("  no contact data (never imported, or erased)")
    for w in payload.get("phone_detached", []):
        console.print(
            f"  phone detached: wrong number reported by the call centre on "
            f"{_when(w['reported_at'])} (campaign {w['campaign']})",
            highlight=False,
        )
    for src in payload["sources"]:
        ref = f" ref={src['source_ref']}" if src["source_ref"] else ""
        console.print(
            f"  source: {src['source']}{ref} imported {_when(src['imported_at'])}",
            highlight=False,
        )
    for c in payload["consents"]:
        console.print(
            f"  consent #{c['id']}: {c['channels']} given {_when(c['given_at'])} at {c['captured_at']} "
            f"(wording {c['wording_version']}, named {c['company_named']}, source {c['source']})",
            highlight=False,
        )
    if payload["customer"]:
        cu = payload["customer"]
        until = f" until {cu['contract_end']}" if cu["contract_end"] else ""
        console.print(
            f"  customer {cu['customer_id']}: contract {cu['contract_status']}{until}, "
            f"products {cu['product_categories']}",
            highlight=False,
        )


def _label(decision: dict[str, Any], reasons: dict[int, str]) -> str:
    """ "<decision> by <rule>"; a scope-all no that is only erasures is shown as what it is
    (ALL-4), though the policy stops it as it stops an objection (ALL-1)."""
    refs = [e.split(":") for e in decision["evidence"] if e.startswith("ledger:")]
    erased = bool(refs) and all(
        len(r) > 2 and r[1].isdigit() and reasons.get(int(r[1]), r[2]) == "erasure" for r in refs
    )
    if not decision["allowed"] and erased and len(refs) == len(decision["evidence"]):
        return "excluded:erasure by ALL-4 (the no kept after erasure)"
    return f"{decision['decision']} by {decision['rule']}"


def _print_campaign(camp: dict[str, Any]) -> None:
    """The person in one campaign: the decision at launch, the send-time re-check (ALL-6)
    and what came of it."""
    title = f"campaign {camp['id']}"
    if camp.get("name"):
        title += f": {camp['name']} ({camp['channel']})"
    console.rule(title)
    if camp.get("recipient") is None:
        console.print(f"  {camp.get('note') or camp.get('error')}", highlight=False)
        return
    launch = camp["at_launch"]
    basis = f", basis {launch['basis']}" if launch["basis"] else ""
    evidence = f", evidence {', '.join(launch['evidence'])}" if launch["evidence"] else ""
    console.print(
        f"  at launch: {launch['decision']} by {launch['rule']}{basis}{evidence}", highlight=False
    )
    check = camp["at_send"]
    if check["checked_at"] is None:
        console.print("  at send: not checked (not sent, or not yet)", highlight=False)
    else:
        verdict = "stopped" if check["decision"] == "stop" else (check["decision"] or "send")
        rule = f" by {check['rule']}" if check["rule"] else ""
        console.print(
            f"  at send (ALL-6): checked {_when(check['checked_at'])}: {verdict}{rule}",
            highlight=False,
        )
    console.print(f"  outcome: {_outcome(camp)}", highlight=False)
    for d in camp.get("delivery", []):
        code = f" (error {d['error_code']})" if d["error_code"] else ""
        console.print(f"  provider: {d['status']} at {_when(d['at'])}{code}", highlight=False)
    for o in camp.get("call_outcomes", []):
        console.print(f"  call centre: {o['outcome']} reported {_when(o['at'])}", highlight=False)


_OUTCOMES = {
    "excluded": "not contacted (excluded at launch)",
    "excluded_at_send": "not contacted (suppressed at send)",
    "queued": "waiting to be sent",
    "sending": "being sent",
    "staged": "handed to the provider, not yet confirmed",
    "listed": "on the call list, no outcome yet",
    "unknown": "unknown until reconciled with the provider",
    "cancelled": "not contacted (campaign cancelled)",
}


def _outcome(camp: dict[str, Any]) -> str:
    state = str(camp["state"])
    if state == "sent" and camp.get("channel") == "call":
        return "put on a call list for the call centre"
    if state == "sent":
        via = f" ({camp['provider_id']})" if camp["provider_id"] else ""
        return f"sent {_when(camp['sent_at'])}{via}"
    if state == "failed":
        return f"failed: {camp['error'] or 'no reason given'}"
    return _OUTCOMES.get(state, state)
