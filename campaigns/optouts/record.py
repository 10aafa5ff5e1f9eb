"""Writing events down: the ledger, the review queue and the event tables.

Everything happens on the caller's Connection, so that the caller commits once and
answers the provider only after the commit (PRODUCT guarantee 3: a no is committed
before we say we have it). Every write is idempotent: a retried event finds its rows
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Connection, Engine, Insert, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from campaigns.optouts import review
from campaigns.optouts.events import (
    ADDRESS_CHANGE,
    ERASURE_REQUEST,
    REVIEW,
    SUPPRESS,
    DeliveryEvent,
    Event,
    OptOutEvent,
    to_json,
)
from campaigns.optouts.schema import delivery_events, inbound_events
from suppression.keys import Hasher, KeyedHash
from suppression.ledger import CHANNEL_SCOPES, OBJECTION, Ledger, entry_rows

# What recording did (stable strings, in inbound_events.outcome and in reports).
SUPPRESSED: Final = "suppressed"
ALREADY_RECORDED: Final = "already_recorded"
SENT_TO_REVIEW: Final = "review"
ERASURE_QUEUED: Final = "erasure_queued"
ADDRESS_MOVED: Final = "address_moved"
RECORDED: Final = "recorded"
NO_IDENTITY: Final = "no_identity"
DELIVERY_RECORDED: Final = "delivery_recorded"


@dataclass(frozen=True, slots=True)
class Outcome:
    event: Event
    outcome: str
    new: bool  # False when a retry found everything recorded before


def insert_ignoring_duplicates(conn: Connection, table: Table, columns: list[str]) -> Insert:
    """INSERT ... ON CONFLICT (columns) DO NOTHING RETURNING id, on both supported stores.

    Whether a row was inserted is read from the returned row: with RETURNING the
    driver's row count is not reliable (psycopg 3 reports -1)."""
    stmt = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
    return stmt.on_conflict_do_nothing(index_elements=columns).returning(table.c.id)


def record(
    conn: Connection,
    hasher: Hasher,
    events: Iterable[Event],
    *,
    now: datetime,
    actor: str = "system",
) -> list[Outcome]:
    """Record each event, received at `now`; the caller commits."""
    return [
        _delivery(conn, e)
        if isinstance(e, DeliveryEvent)
        else _opt_out(conn, hasher, e, actor, now.astimezone(UTC))
        for e in events
    ]


def receive(
    engine: Engine,
    hasher: Hasher,
    events: Iterable[Event],
    *,
    now: datetime,
    actor: str = "system",
) -> list[Outcome]:
    """Record events in one transaction and commit before returning: a provider is told
    "received" only once its events are stored."""
    with engine.begin() as conn:
        return record(conn, hasher, events, now=now, actor=actor)


def _delivery(conn: Connection, event: DeliveryEvent) -> Outcome:
    stmt = insert_ignoring_duplicates(
        conn, delivery_events, ["provider", "provider_message_id", "status"]
    )
    result = conn.execute(
        stmt,
        {
            "provider": event.provider,
            "provider_message_id": event.provider_message_id,
            "status": event.status,
            "error_code": event.error_code,
            "received_at": event.occurred_at,
            "raw": to_json(event.stored),
        },
    )
    return Outcome(event, DELIVERY_RECORDED, result.first() is not None)


def _opt_out(
    conn: Connection, hasher: Hasher, event: OptOutEvent, actor: str, now: datetime
) -> Outcome:
    ledger = Ledger(conn, hasher)
    key = hasher.hash(event.identity) if event.identity is not None else None
    kind = event.identity.kind if event.identity is not None else None
    source = event.provider
    if event.action in (SUPPRESS, ERASURE_REQUEST, ADDRESS_CHANGE) and (
        key is None or kind is None
    ):
        outcome = NO_IDENTITY
    elif event.action in (SUPPRESS, ERASURE_REQUEST) and key is not None and kind is not None:
        erasure = event.action == ERASURE_REQUEST
        assert event.identity is not None  # as `key` is
        ledger.add(
            event.identity,  # under every configured key
            kind,
            # ALL-1 at once for an erasure request; the erasure itself is done by a
            # person with `outreach forget`, from the review item.
            scope="all" if erasure else event.scope,
            reason=OBJECTION if erasure else event.reason,
            source=source,
            source_event=event.event_id,
            evidence_ref=event.evidence_ref,
            occurred_at=event.occurred_at,
            now=now,
            actor=actor,
        )
        outcome = SUPPRESSED
        if erasure:
            review.add(
                conn,
                source=source,
                kind=event.review_kind or ERASURE_REQUEST,
                event_id=event.event_id,
                key=key,
                identity_kind=kind,
                text=event.text,
                created_at=event.occurred_at,
            )
            outcome = ERASURE_QUEUED
    elif event.action == ADDRESS_CHANGE:
        _follow_address(conn, hasher, event, actor, now)
        outcome = ADDRESS_MOVED
    elif event.action == REVIEW:
        review.add(
            conn,
            source=source,
            kind=event.review_kind or REVIEW,
            event_id=event.event_id,
            key=key,
            identity_kind=kind,
            text=event.text,
            created_at=event.occurred_at,
        )
        outcome = SENT_TO_REVIEW
    else:
        outcome = RECORDED
    # A provider's retry finds its inbound event row: that, not the ledger's row count,
    # says whether this event is new (see entries.add_once). Every write above is
    # idempotent, so a retry changes nothing either way.
    inserted = _inbound(conn, event, key, outcome, now)
    return Outcome(event, outcome if inserted else ALREADY_RECORDED, inserted)


def _follow_address(
    conn: Connection, hasher: Hasher, event: OptOutEvent, actor: str, now: datetime
) -> int:
    """An address change: every entry that blocks the old address now blocks the new one
    too, with the event as its source (ALL-5: a new address is no way around a no)."""
    if event.identity is None or event.new_identity is None:
        return 0
    ledger = Ledger(conn, hasher)
    old = ledger.status(event.identity.kind, event.identity.value)
    blocking = {e.id: e for scope in CHANNEL_SCOPES for e in old.blocking(scope)}
    new_keys = hasher.hash_all(event.new_identity)
    rows: list[dict[str, object]] = []
    for entry in sorted(blocking.values(), key=lambda e: e.id):
        rows += entry_rows(
            new_keys,
            identity_kind=event.new_identity.kind,
            kind=entry.kind,
            scope=entry.scope,
            reason=entry.reason,
            source=event.provider,
            source_event=f"{event.event_id}:ledger:{entry.id}",
            evidence_ref=f"{event.evidence_ref}; follows ledger:{entry.id}",
            occurred_at=entry.occurred_at,
            recorded_at=now,
            actor=actor,
        )
    return ledger.add_many(rows)


def _inbound(
    conn: Connection, event: OptOutEvent, key: KeyedHash | None, outcome: str, now: datetime
) -> bool:
    stmt = insert_ignoring_duplicates(conn, inbound_events, ["provider", "provider_event_id"])
    result = conn.execute(
        stmt,
        {
            "provider": event.provider,
            "provider_event_id": event.event_id,
            "name": event.name,
            "action": event.action,
            "outcome": outcome,
            "key_hash": key.digest if key else None,
            "key_id": key.key_id if key else None,
            "identity_kind": event.identity.kind if event.identity else None,
            "occurred_at": event.occurred_at,
            "received_at": now,
            "raw": to_json(event.stored),
        },
    )
    return result.first() is not None
