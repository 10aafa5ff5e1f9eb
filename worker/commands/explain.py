from __future__ import annotations

from typing import Any

import click

from campaigns import people
from suppression.policy import CHANNELS, decide
from worker import db
from worker.commands import identity_from, identity_options, json_option
from worker.context import Context
from worker.output import console, emit_json


@click.command()
@identity_options
@click.option("--actor", default="cli", show_default=True, help="Who asked for the erasure.")
@json_option
def forget(email: str | None, phone: str | None, actor: str, as_json: bool) -> None:
    """Erase a person (GDPR art. 17): every plaintext trace goes, the hashed no stays (ALL-4)."""
    ident = identity_from(email, phone)
    ctx = Context.load()
    with ctx.engine.begin() as conn:
        counts = people.forget(conn, ctx.hasher, ident, now=ctx.clock(), actor=actor)
    db.after_erasure(ctx.engine)
    if as_json:
        emit_json(counts)
    else:
        console.print(
            f"erased: {counts['contacts_cleared']} contact cleared, {counts['consents_deleted']} consent records "
            f"deleted; the hashed suppression is kept ({counts['ledger_entries_added']} new ledger entries)"
        )


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
        "register": register_info,
        "purpose": purpose,
        "decisions": decisions,
    }
    if campaign_part is not None:
        payload["campaign"] = campaign_part
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
    contact = payload["contact"]
    console.rule("what we hold")
    if contact:
        for key, value in contact.items():
            if value is not None:
                console.print(f"  {key}: {value}", highlight=False)
    else:
        console.print("  no contact data (never imported, or erased)")
    for src in payload["sources"]:
        console.print(
            f"  source: {src['source']} ref={src['source_ref']} imported {src['imported_at']}",
            highlight=False,
        )
    for c in payload["consents"]:
        console.print(
            f"  consent #{c['id']}: {c['channels']} given {c['given_at']} at {c['captured_at']} "
            f"(wording {c['wording_version']}, named {c['company_named']}, source {c['source']})",
            highlight=False,
        )
    if payload["customer"]:
        cu = payload["customer"]
        console.print(
            f"  customer {cu['customer_id']}: contract {cu['contract_status']} until {cu['contract_end']}, "
            f"products {cu['product_categories']}",
            highlight=False,
        )
    console.rule("ledger")
    if not payload["ledger"]:
        console.print("  no entries")
    for e in payload["ledger"]:
        console.print(
            f"  #{e['id']} {e['kind']} scope={e['scope']} reason={e['reason']} source={e['source']} "
            f"at {e['occurred_at']} by {e['actor']}",
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
    console.rule(f"decisions (purpose: {payload['purpose']})")
    for channel, d in payload["decisions"].items():
        verdict = "[green]may contact[/]" if d["allowed"] else "[red]may not contact[/]"
        basis = f", basis {d['basis']}" if d["basis"] else ""
        evidence = f", evidence {', '.join(d['evidence'])}" if d["evidence"] else ""
        console.print(
            f"  {channel:5} {verdict}: {d['decision']} by {d['rule']}{basis}{evidence}",
            highlight=False,
        )
