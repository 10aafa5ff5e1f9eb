"""A person's decisions in one campaign: at launch and at send time (guarantee 5); and
the one form of the times `outreach explain` shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from campaigns.campaign_schema import recipients
from campaigns.people import Person
from suppression.keys import Hasher


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


def for_person(
    conn: Connection, hasher: Hasher, person: Person, campaign_id: int
) -> dict[str, Any]:
    if person.contact is None:
        return {
            "id": campaign_id,
            "recipient": None,
            "note": "not in the store (never imported or erased)",
        }
    row = conn.execute(
        select(recipients).where(
            recipients.c.campaign_id == campaign_id, recipients.c.contact_id == person.contact["id"]
        )
    ).first()
    if row is None:
        return {"id": campaign_id, "recipient": None, "note": "not in this campaign's audience"}
    m = row._mapping
    found = {
        "id": campaign_id,
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
    }
    result: dict[str, Any] = utc_times(found)
    return result
