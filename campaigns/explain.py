"""A person's decisions in one campaign: at launch and at send time (guarantee 5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from campaigns.campaign_schema import recipients
from campaigns.people import Person
from suppression.keys import Hasher


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
    return {
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
