"""Facts for many people at once: set-based queries per chunk of contacts, never one
query per person. Used by launch (all facts) and by the send-time check (ledger and
frequency cap only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from campaigns.campaign_schema import recipients
from campaigns.people import consent_facts, customer_facts
from campaigns.schema import consent_records, customers
from suppression.keys import Hasher
from suppression.ledger import Ledger, Status
from suppression.policy import CHANNEL_SCOPE, ConsentFacts, CustomerFacts, RegisterFacts
from suppression.register import Snapshot
from suppression.schema import register_entries

HASH_COLUMNS = ("email_hash", "phone_hash", "name_address_hash")
# The sends that count towards the frequency cap (ALL-8): sent, and those that may have been.
COUNTED_STATES = ("sent", "sending", "unknown")
ADDRESS_COLUMN = {
    "email": "email_hash",
    "sms": "phone_hash",
    "call": "phone_hash",
    "post": "name_address_hash",
}


def digests_of(contact: Any) -> list[bytes]:
    return [bytes(contact[c]) for c in HASH_COLUMNS if contact[c] is not None]


def ledger_by_contact(
    conn: Connection, hasher: Hasher, contact_rows: Sequence[Any]
) -> dict[int, Status]:
    """Ledger status per contact id, over all of each contact's identities."""
    owners: dict[bytes, list[int]] = defaultdict(list)
    for c in contact_rows:
        for d in digests_of(c):
            owners[d].append(int(c["id"]))
    result: dict[int, Status] = {}
    for digest, status in Ledger(conn, hasher).screen(owners.keys()):
        for contact_id in owners[digest]:
            result.setdefault(contact_id, Status()).entries.extend(status.entries)
    for status in result.values():
        status.entries.sort(key=lambda e: (e.occurred_at, e.id))
    return result


def consents_by_contact(conn: Connection, low: int, high: int) -> dict[int, list[ConsentFacts]]:
    out: dict[int, list[ConsentFacts]] = defaultdict(list)
    rows = conn.execute(
        select(consent_records).where(consent_records.c.contact_id.between(low, high))
    )
    for r in rows:
        out[int(r.contact_id)].append(consent_facts(r._mapping))
    return out


def customers_by_contact(conn: Connection, low: int, high: int) -> dict[int, CustomerFacts]:
    rows = conn.execute(select(customers).where(customers.c.contact_id.between(low, high)))
    return {int(r.contact_id): customer_facts(r._mapping) for r in rows}


def recent_contacts(
    conn: Connection,
    contact_ids: Iterable[int],
    now: datetime,
    window_days: int,
    exclude_campaign: int | None,
) -> dict[int, int]:
    """Recorded marketing sends per contact in the window, all channels (ALL-8)."""
    ids = list(contact_ids)
    if not ids:
        return {}
    since = now - timedelta(days=window_days)
    query = (
        select(recipients.c.contact_id, func.count())
        .where(
            recipients.c.contact_id.in_(ids),
            recipients.c.state.in_(COUNTED_STATES),
            func.coalesce(recipients.c.sent_at, recipients.c.updated_at) >= since,
        )
        .group_by(recipients.c.contact_id)
    )
    if exclude_campaign is not None:
        query = query.where(recipients.c.campaign_id != exclude_campaign)
    return {int(cid): int(n) for cid, n in conn.execute(query)}


def register_by_contact(
    conn: Connection, snapshot: Snapshot | None, contact_rows: Sequence[Any]
) -> dict[int, RegisterFacts]:
    """Register reservations per contact (phone and name+address hashes)."""
    if snapshot is None:
        return {}
    owners: dict[bytes, list[int]] = defaultdict(list)
    for c in contact_rows:
        for col in ("phone_hash", "name_address_hash"):
            if c[col] is not None:
                owners[bytes(c[col])].append(int(c["id"]))
    flags: dict[int, list[bool]] = {}
    keys = list(owners)
    for start in range(0, len(keys), 5000):
        rows = conn.execute(
            select(
                register_entries.c.key_hash,
                register_entries.c.reserved_phone,
                register_entries.c.reserved_post,
            ).where(
                register_entries.c.snapshot_id == snapshot.id,
                register_entries.c.key_hash.in_(keys[start : start + 5000]),
            )
        )
        for digest, phone, post in rows:
            for cid in owners[bytes(digest)]:
                current = flags.setdefault(cid, [False, False])
                current[0] = current[0] or bool(phone)
                current[1] = current[1] or bool(post)
    return {
        cid: RegisterFacts(
            snapshot.snapshot_date, snapshot.loaded_at, reserved_phone=f[0], reserved_post=f[1]
        )
        for cid, f in flags.items()
    }


def scope_of(channel: str) -> str:
    return CHANNEL_SCOPE[channel]
