"""The keys the store holds digests under: status, the start-up check, retiring a key.

Every table with a `key_id` column is listed in `KEYED`. `secret_keys` remembers every key
id the store has held digests under; a process whose configured keys (current and
previous) miss one that still has rows refuses to start (`check`): its entries would go
unmatched, and a "no" under it would turn into a "yes" (guarantee 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Column, Connection, Table, delete, func, inspect, select

from campaigns.campaign_schema import recipients
from campaigns.optouts.schema import inbound_events
from campaigns.schema import contacts, wrong_numbers
from suppression.errors import ConfigurationError, OutreachError
from suppression.keys import PREVIOUS_SETTING, Hasher
from suppression.rotation import only_under
from suppression.schema import (
    key_forwards,
    ledger_entries,
    register_entries,
    register_snapshots,
    review_items,
    secret_keys,
    unsubscribe_tokens,
)

KEYED: Final[tuple[tuple[Table, Column[Any]], ...]] = (
    (contacts, contacts.c.key_id),
    (ledger_entries, ledger_entries.c.key_id),
    (register_snapshots, register_snapshots.c.key_id),
    (register_entries, register_entries.c.key_id),
    (unsubscribe_tokens, unsubscribe_tokens.c.key_id),
    (recipients, recipients.c.key_id),
    (review_items, review_items.c.key_id),
    (inbound_events, inbound_events.c.key_id),
    (key_forwards, key_forwards.c.new_key_id),
)
# Where a digest no configured key can match would lose a no or break a link: the
# start-up check and `retire` look here. (A sent recipient's or an inbound event's key
# is history: `status` shows it.)
CHECKED: Final = frozenset(
    {"contacts", "ledger_entries", "register_entries", "unsubscribe_tokens", "review_items"}
)


class KeyRetireRefused(OutreachError):
    """`outreach keys retire` would leave a no (or a link) no key can match."""


@dataclass
class KeyStatus:
    current: str
    previous: tuple[str, ...]
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> key id -> rows

    @property
    def unknown(self) -> dict[str, list[str]]:
        """Key ids with rows that no configured key has, and the tables holding them."""
        configured = {self.current, *self.previous}
        found: dict[str, list[str]] = {}
        for table, counts in self.rows.items():
            if table not in CHECKED:
                continue
            for key_id, n in counts.items():
                if n and key_id not in configured:
                    found.setdefault(key_id, []).append(table)
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "current_key_id": self.current,
            "previous_key_ids": list(self.previous),
            "rows": self.rows,
            "unknown_key_ids": self.unknown,
        }


def status(conn: Connection, hasher: Hasher) -> KeyStatus:
    """Rows per key id in every table that holds digests (a full count: an operator's
    question, not a start-up's)."""
    found = KeyStatus(hasher.key_id, hasher.previous_key_ids)
    for table, column in KEYED:
        counts: dict[str, int] = {}
        for key_id, n in conn.execute(
            select(column, func.count()).where(column.is_not(None)).group_by(column)
        ):
            counts[str(key_id)] = int(n)
        found.rows[table.name] = counts
    return found


def _tables_holding(conn: Connection, key_id: str) -> list[str]:
    return [
        table.name
        for table, column in KEYED
        if table.name in CHECKED
        and conn.execute(select(column).where(column == key_id).limit(1)).first() is not None
    ]


def check(conn: Connection, hasher: Hasher, now: datetime) -> None:
    """At start-up: remember the configured keys; refuse (ConfigurationError naming the
    key id and its tables) when the store holds digests under a key none of them has.
    A store not yet migrated (`outreach db upgrade` to come) is not checked."""
    if not inspect(conn).has_table(secret_keys.name):
        return
    known = {str(k) for (k,) in conn.execute(select(secret_keys.c.key_id))}
    configured = set(hasher.key_ids)
    for key_id in sorted(known - configured):
        tables = _tables_holding(conn, key_id)
        if tables:
            raise ConfigurationError(
                PREVIOUS_SETTING,
                f"the store holds digests under key id {key_id} ({', '.join(tables)}), which "
                "no configured key has: put that key back in OUTREACH_PREVIOUS_SECRET_KEYS "
                "(or OUTREACH_SECRET_KEY); `outreach keys status` lists them",
            )
        # Configured once (a typo, say) and never used for anything: forgotten.
        conn.execute(delete(secret_keys).where(secret_keys.c.key_id == key_id))
    missing = sorted(configured - known)
    if missing:
        conn.execute(secret_keys.insert(), [{"key_id": k, "first_seen_at": now} for k in missing])


def retire(conn: Connection, hasher: Hasher, key_id: str) -> dict[str, int]:
    """Drop what is stored under a previous key once nothing needs it: refused while a
    contact, a link or a no exists only under it (KeyRetireRefused says which)."""
    if key_id == hasher.key_id:
        raise KeyRetireRefused(f"key {key_id} is the current key (OUTREACH_SECRET_KEY)")
    if not hasher.knows(key_id):
        raise KeyRetireRefused(f"key {key_id} is not configured; nothing to retire")
    others = [k for k in hasher.key_ids if k != key_id]
    blockers = []
    held = conn.execute(
        select(func.count()).select_from(contacts).where(contacts.c.key_id == key_id)
    ).scalar_one()
    if held:
        blockers.append(
            f"{held} contacts are stored under it (`outreach keys rekey` moves those whose "
            "plaintext is kept; an erased person's cannot move, so the key must stay)"
        )
    alone = only_under(conn, key_id, others)
    if alone:
        blockers.append(
            f"{alone} ledger entries exist only under it (erased people's, or of people "
            "never stored as contacts): retiring it would lose those no's"
        )
    pairings = wrong_numbers_only_under(conn, key_id, others)
    if pairings:
        blockers.append(
            f"{pairings} wrong numbers are kept only under it (the number is gone from the "
            "contact, so the pairing cannot move): retiring it would let an import attach "
            "them again"
        )
    links = conn.execute(
        select(func.count())
        .select_from(unsubscribe_tokens)
        .where(unsubscribe_tokens.c.key_id == key_id)
    ).scalar_one()
    if links:
        blockers.append(f"{links} unsubscribe links were signed with it and would stop working")
    if blockers:
        raise KeyRetireRefused(f"key {key_id} cannot be retired: " + "; ".join(blockers))
    dropped = {
        "ledger_entries": conn.execute(
            delete(ledger_entries).where(ledger_entries.c.key_id == key_id)
        ).rowcount,
        "register_entries": conn.execute(
            delete(register_entries).where(register_entries.c.key_id == key_id)
        ).rowcount,
        "key_forwards": conn.execute(
            delete(key_forwards).where(key_forwards.c.old_key_id == key_id)
        ).rowcount,
    }
    conn.execute(delete(secret_keys).where(secret_keys.c.key_id == key_id))
    return dropped


def wrong_numbers_only_under(conn: Connection, key_id: str, others: Sequence[str]) -> int:
    """How many wrong-number reports (campaigns.calllist.outcomes) have their pairing only
    under `key_id`: written under the keys configured at the report, and never re-keyed
    (the number's plaintext is gone), like an erased person's no."""
    other = wrong_numbers.alias("other")
    alone = (
        select(wrong_numbers.c.id)
        .where(
            wrong_numbers.c.key_id == key_id,
            ~select(other.c.id)
            .where(
                other.c.contact_id == wrong_numbers.c.contact_id,
                other.c.source_event == wrong_numbers.c.source_event,
                other.c.key_id.in_(list(others)),
            )
            .exists(),
        )
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(alone)).scalar_one())
