"""A person's decisions in one campaign: at launch, at send time and what came of it
(guarantee 5); the numbers detached from them as wrong; and the one form of the times
`outreach explain` shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from campaigns.calllist.references import reference
from campaigns.campaign_schema import campaigns, recipients
from campaigns.optouts.schema import delivery_events
from campaigns.people import Person
from campaigns.schema import wrong_numbers
from suppression.keys import Hasher
from suppression.schema import ledger_entries


def utc_times(value: Any) -> Any:
    """`value` with every datetime in it (through dicts, lists and tuples) aware and in UTC,
    so that explain shows one form on every store (2026-11-24T08:00:00+00:00). SQLite hands
    back the naive UTC times we store; PostgreSQL aware ones in the session's time zone."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, dict):
        return {key: utc_times(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [utc_times(item) for item in value]
    return value


def detached_phones(conn: Connection, contact_id: int) -> list[dict[str, Any]]:
    """The wrong numbers reported of the contact (campaigns.calllist.outcomes), one per
    report: a report is kept under every configured key, shown once."""
    w = wrong_numbers.c
    seen: dict[str, dict[str, Any]] = {}
    for source_event, campaign_id, reported_at in conn.execute(
        select(w.source_event, w.campaign_id, w.reported_at)
        .where(w.contact_id == contact_id)
        .order_by(w.reported_at, w.id)
    ):
        seen.setdefault(
            str(source_event),
            {
                "reason": "wrong_number",
                "source": "call_centre",
                "campaign": campaign_id,
                "reported_at": reported_at,
            },
        )
    return list(seen.values())


def for_person(
    conn: Connection, hasher: Hasher, person: Person, campaign_id: int
) -> dict[str, Any]:
    camp = conn.execute(
        select(campaigns.c.name, campaigns.c.channel, campaigns.c.state).where(
            campaigns.c.id == campaign_id
        )
    ).first()
    if camp is None:
        return {"id": campaign_id, "recipient": None, "note": "no such campaign"}
    about = {"id": campaign_id, "name": camp.name, "channel": camp.channel}
    if person.contact is None:
        return {
            **about,
            "recipient": None,
            "note": "not in the store (never imported or erased)",
        }
    row = conn.execute(
        select(recipients).where(
            recipients.c.campaign_id == campaign_id, recipients.c.contact_id == person.contact["id"]
        )
    ).first()
    if row is None:
        return {**about, "recipient": None, "note": "not in this campaign's audience"}
    m = row._mapping
    found = {
        **about,
        "recipient": int(m["id"]),
        "at_launch": {
            "decision": m["decision"],
            "rule": m["rule"],
            "basis": m["basis"],
            "evidence": m["evidence"].split() if m["evidence"] else [],
        },
        "at_send": {
            "checked_at": m["checked_at"],
            "decision": m["send_decision"],
            "rule": m["send_rule"],
        },
        "state": m["state"],
        "sent_at": m["sent_at"],
        "provider_id": m["provider_id"],
        "error": m["error"],
        "delivery": _delivery(conn, m["provider_id"]),
        "call_outcomes": (
            _call_outcomes(conn, hasher, campaign_id, int(m["id"]))
            if camp.channel == "call"
            else []
        ),
    }
    result: dict[str, Any] = utc_times(found)
    return result


def _delivery(conn: Connection, provider_id: str | None) -> list[dict[str, Any]]:
    """What the provider reported of the message (its status callbacks), oldest first."""
    if not provider_id:
        return []
    d = delivery_events.c
    return [
        {"status": status, "at": at, "error_code": code}
        for status, at, code in conn.execute(
            select(d.status, d.received_at, d.error_code)
            .where(d.provider_message_id == provider_id)
            .order_by(d.received_at, d.id)
        )
    ]


def _call_outcomes(
    conn: Connection, hasher: Hasher, campaign_id: int, recipient_id: int
) -> list[dict[str, Any]]:
    """The call centre's outcomes for the recipient that we keep: its no's in the ledger
    (evidence `calllist:<reference>:<outcome>`) and a wrong number. ("reached" and "no
    answer" are not kept.)"""
    ref = reference(hasher, campaign_id, recipient_id)
    found: dict[str, datetime] = {}
    for evidence, at in conn.execute(
        select(ledger_entries.c.evidence_ref, ledger_entries.c.occurred_at).where(
            ledger_entries.c.evidence_ref.like(f"calllist:{ref}:%")
        )
    ):
        found.setdefault(str(evidence).rsplit(":", 1)[1], at)
    for (at,) in conn.execute(
        select(wrong_numbers.c.reported_at).where(
            wrong_numbers.c.source_event == f"{ref}:wrong_number"
        )
    ):
        found.setdefault("wrong_number", at)
    return [{"outcome": o, "at": at} for o, at in sorted(found.items(), key=lambda i: i[1])]
