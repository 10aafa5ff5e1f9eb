"""The ledger: append-only opt-outs, objections, exclusions and the consents that follow them.

Nothing updates or deletes a row here. A suppression stops being effective for a
channel only when a consent entry for that channel, given after it and carrying
evidence, is recorded (ALL-5). Exclusions (alarm contacts, ALL-3) are never lifted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, select

from suppression.errors import OutreachError
from suppression.identity import Identity
from suppression.keys import Hasher, KeyedHash
from suppression.schema import ledger_entries

if TYPE_CHECKING:
    from sqlalchemy.sql.dml import Insert

SCOPES: Final = ("all", "email", "sms", "phone", "post")
CHANNEL_SCOPES: Final = ("email", "sms", "phone", "post")
KINDS: Final = ("suppression", "exclusion", "consent")

# Reasons: stable strings, they land in the database and in reports.
UNSUBSCRIBE: Final = "unsubscribe"
OBJECTION: Final = "objection"
COMPLAINT: Final = "complaint"
HARD_BOUNCE: Final = "hard_bounce"
ERASURE: Final = "erasure"
CARRIER_OPT_OUT: Final = "carrier_opt_out"
ALARM_CONTACT: Final = "alarm_contact"
REASONS: Final = (
    UNSUBSCRIBE,
    OBJECTION,
    COMPLAINT,
    HARD_BOUNCE,
    ERASURE,
    CARRIER_OPT_OUT,
    ALARM_CONTACT,
    "wrong_number",
    "register",
    "manual",
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger row as the policy and `explain` see it."""

    id: int
    key_hash: bytes
    kind: str
    scope: str
    reason: str
    source: str
    evidence_ref: str
    occurred_at: datetime
    actor: str


@dataclass(slots=True)
class Status:
    """What the ledger holds for one identity, reduced to what the policy needs."""

    entries: list[Entry] = field(default_factory=list)

    def blocking(self, channel_scope: str) -> list[Entry]:
        """Entries that stop `channel_scope` now: exclusions, and suppressions not
        followed by a recorded consent for that channel (ALL-5)."""
        consents = [
            e.occurred_at for e in self.entries if e.kind == "consent" and e.scope == channel_scope
        ]
        latest_consent = max(consents) if consents else None
        blocking = []
        for e in self.entries:
            if e.kind == "consent":
                continue
            # ALL-1: an objection stops every channel, whatever scope it was recorded with.
            if e.scope not in ("all", channel_scope) and e.reason != OBJECTION:
                continue
            if e.kind == "suppression" and latest_consent and latest_consent > e.occurred_at:
                continue
            blocking.append(e)
        return blocking

    def suppressed(self, channel_scope: str) -> bool:
        return bool(self.blocking(channel_scope))


def distinct_facts(entries: list[Entry]) -> list[Entry]:
    """One entry per fact, the first of each: a no is stored under each of a person's
    identities (an erasure, an objection) and, during a rotation, under each key; the
    policy, `explain` and the launch's evidence count it once."""
    if len(entries) < 2:
        return entries
    seen: set[tuple[object, ...]] = set()
    kept = []
    for e in entries:
        fact = (e.kind, e.scope, e.reason, e.source, e.evidence_ref, e.occurred_at, e.actor)
        if fact not in seen:
            seen.add(fact)
            kept.append(e)
    return kept


class LedgerError(OutreachError):
    pass


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise LedgerError("ledger times must be timezone-aware")
    return moment.astimezone(UTC)


def _check(row: dict[str, object]) -> None:
    scope, kind = row.get("scope"), row.get("kind")
    if scope not in SCOPES:
        raise LedgerError(f"scope: unknown scope {scope!r}")
    if kind not in KINDS:
        raise LedgerError(f"kind: unknown kind {kind!r}")
    if kind == "consent" and (scope == "all" or not row.get("evidence_ref")):
        # ALL-5: only an explicit, evidenced consent for a channel can follow a no.
        raise LedgerError("consent: needs a channel scope and a reference to its evidence")


def entry_rows(keys: Sequence[KeyedHash], **fields: object) -> list[dict[str, object]]:
    """One entry's rows under `keys` (the first is the entry, the rest copies of it that
    name its key): how a no from a plaintext identity is written under every key."""
    return [
        {
            **fields,
            "key_hash": keyed.digest,
            "key_id": keyed.key_id,
            "origin_key_id": keys[0].key_id if n else None,
        }
        for n, keyed in enumerate(keys)
    ]


def default_event(kind: str, scope: str, reason: str) -> str:
    """Without a provider event id, the same kind/scope/reason from the same source is one event."""
    return f"{kind}:{scope}:{reason}"


class Ledger:
    """Append and screen. Works on a Connection so that callers own the transaction."""

    def __init__(self, conn: Connection, hasher: Hasher) -> None:
        self.conn = conn
        self.hasher = hasher

    def add(
        self,
        key: KeyedHash | Identity,
        identity_kind: str,
        *,
        scope: str,
        reason: str,
        source: str,
        now: datetime,
        kind: str = "suppression",
        source_event: str | None = None,
        evidence_ref: str = "",
        occurred_at: datetime | None = None,
        actor: str = "system",
    ) -> bool:
        """Append one entry recorded at `now` (and occurred then, unless `occurred_at`
        says when); returns False when this source event was recorded before.

        Given an Identity (plaintext), the entry is written under every configured key
        (`entry_rows`), so that it stops a contact stored under any of them; given a
        KeyedHash (a token's, a contact's), under that key alone."""
        fields: dict[str, object] = {
            "identity_kind": identity_kind,
            "kind": kind,
            "scope": scope,
            "reason": reason,
            "source": source,
            "source_event": source_event or default_event(kind, scope, reason),
            "evidence_ref": evidence_ref,
            "occurred_at": _utc(occurred_at or now),
            "recorded_at": _utc(now),
            "actor": actor,
        }
        keys = self.hasher.hash_all(key) if isinstance(key, Identity) else (key,)
        return self.add_many(entry_rows(keys, **fields)) == 1

    def add_many(self, rows: Sequence[dict[str, object]]) -> int:
        """Append rows, skipping source events already recorded; returns how many new
        entries there were (a copy under another key, `origin_key_id` set, is not one)."""
        if not rows:
            return 0
        for row in rows:
            _check(row)
        unique = ["key_hash", "source", "source_event"]
        # The dialect's own INSERT, imported here: a command on SQLite never loads
        # SQLAlchemy's PostgreSQL dialect (the CLI's start-up, issue 18).
        stmt: Insert
        if self.conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(ledger_entries).on_conflict_do_nothing(index_elements=unique)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(ledger_entries).on_conflict_do_nothing(index_elements=unique)
        # Count what RETURNING gives back: the driver's rowcount is -1 on PostgreSQL here.
        result = self.conn.execute(
            stmt.returning(ledger_entries.c.origin_key_id),
            [{"origin_id": None, "origin_key_id": None, **row} for row in rows],
        )
        return sum(1 for (origin,) in result if origin is None)

    def status(self, kind: str, value: str) -> Status:
        """Every entry for one canonical identity, under every known key."""
        digests = self.hasher.all_digests(kind, value)
        rows = self.conn.execute(
            select(ledger_entries)
            .where(ledger_entries.c.key_hash.in_(digests))
            .order_by(ledger_entries.c.occurred_at, ledger_entries.c.id)
        )
        return Status([_entry(r._mapping) for r in rows])

    def screen(self, digests: Iterable[bytes]) -> Iterator[tuple[bytes, Status]]:
        """Stream (digest, Status) for the digests that have ledger entries, in bounded
        memory; the input is consumed lazily and only hits are yielded."""
        from suppression.screening import screen_ledger  # screening builds on this module

        return screen_ledger(self.conn, digests)


def _entry(m: object) -> Entry:
    row = dict(m)  # type: ignore[call-overload]
    return entry_from_values(*(row[name] for name in ENTRY_COLUMNS))


# A ledger row's columns in `Entry` order: bulk readers select these and get tuples.
ENTRY_COLUMNS: Final = (
    "id", "key_hash", "kind", "scope", "reason", "source", "evidence_ref", "occurred_at",
    "actor",
)  # fmt: skip


def entry_from_values(
    entry_id: int,
    key_hash: bytes,
    kind: str,
    scope: str,
    reason: str,
    source: str,
    evidence_ref: str,
    occurred_at: datetime,
    actor: str,
) -> Entry:
    """An Entry from a row's ENTRY_COLUMNS (the driver may give a memoryview, and SQLite a
    naive time)."""
    return Entry(
        int(entry_id), bytes(key_hash), kind, scope, reason, source, evidence_ref,
        _aware(occurred_at), actor,
    )  # fmt: skip


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; everything we store is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def event_id(*parts: str) -> str:
    """A stable source-event id from provider fields that may be long."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]
