"""The review queue: texts that may be a no but are not clear, and erasure requests.

A person reads each item and resolves it as an unsubscribe, an objection (ALL-1) or
nothing (`outreach review list|resolve`). Resolving writes the ledger entry in the
same transaction. An item's kind is the first part of its source_event
("refusal_text:twilio:SM...", "reply_text:twilio:SM..."), so the queue needs no column
of its own for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from campaigns.optouts.entries import add_once
from campaigns.optouts.events import storable
from suppression.errors import OutreachError
from suppression.keys import Hasher, KeyedHash
from suppression.ledger import OBJECTION, UNSUBSCRIBE, Ledger
from suppression.schema import review_items

RESOLVE_UNSUBSCRIBE: Final = "unsubscribe"
RESOLVE_OBJECTION: Final = "objection"
RESOLVE_IGNORE: Final = "ignore"
RESOLUTIONS: Final = (RESOLVE_UNSUBSCRIBE, RESOLVE_OBJECTION, RESOLVE_IGNORE)

ERASURE_REQUEST: Final = "erasure_request"
TEXT_LIMIT: Final = 4000
CLEARED: Final = "(text removed when resolved: it named the person who asked for erasure)"

# The channel an unsubscribe in a review item stops, by the identity it came from.
_CHANNEL_OF: Final = {"phone": "sms", "email": "email"}


class ReviewError(OutreachError):
    pass


@dataclass(frozen=True, slots=True)
class ReviewItem:
    id: int
    kind: str
    source: str
    identity_kind: str | None
    text: str
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    resolved_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "identity_kind": self.identity_kind,
            "text": self.text,
            "created_at": self.created_at,
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
            "resolved_by": self.resolved_by,
        }


def add(
    conn: Connection,
    *,
    source: str,
    kind: str,
    event_id: str,
    key: KeyedHash | None,
    identity_kind: str | None,
    text: str,
    created_at: datetime,
) -> bool:
    """Queue one item; False when this event was queued before."""
    table = review_items
    stmt = (
        (pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table))
        .on_conflict_do_nothing(index_elements=["source_event"])
        .returning(table.c.id)
    )
    result = conn.execute(
        stmt,
        {
            "source": source[:40],
            "source_event": f"{kind}:{source}:{event_id}"[:200],
            "key_hash": key.digest if key else None,
            "key_id": key.key_id if key else None,
            "identity_kind": identity_kind,
            "text": storable(text)[:TEXT_LIMIT],
            "created_at": created_at,
        },
    )
    return result.first() is not None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _item(row: Any) -> ReviewItem:
    m = row._mapping
    created = _aware(m["created_at"])
    assert created is not None
    return ReviewItem(
        id=int(m["id"]),
        kind=str(m["source_event"]).split(":", 1)[0],
        source=m["source"],
        identity_kind=m["identity_kind"],
        text=m["text"],
        created_at=created,
        resolved_at=_aware(m["resolved_at"]),
        resolution=m["resolution"],
        resolved_by=m["resolved_by"],
    )


def items(conn: Connection, *, include_resolved: bool = False) -> list[ReviewItem]:
    """The open items, oldest first (every item with `include_resolved`)."""
    query = select(review_items).order_by(review_items.c.created_at, review_items.c.id)
    if not include_resolved:
        query = query.where(review_items.c.resolved_at.is_(None))
    return [_item(r) for r in conn.execute(query)]


def count_open(conn: Connection, among: Select[tuple[bytes]] | None = None) -> int:
    """How many items wait for a person; with `among`, only those from the identities whose
    keyed hashes it selects (a campaign's recipients, for its report)."""
    query = select(func.count()).select_from(review_items)
    query = query.where(review_items.c.resolved_at.is_(None))
    if among is not None:
        query = query.where(review_items.c.key_hash.in_(among))
    return int(conn.execute(query).scalar_one())


def resolve(
    conn: Connection,
    hasher: Hasher,
    item_id: int,
    resolution: str,
    *,
    actor: str,
    now: datetime,
) -> tuple[ReviewItem, bool]:
    """Resolve one open item at `now`; returns it and whether a new ledger entry was written."""
    if resolution not in RESOLUTIONS:
        raise ReviewError(f"--as: unknown resolution {resolution!r}")
    row = conn.execute(select(review_items).where(review_items.c.id == item_id)).first()
    if row is None:
        raise ReviewError(f"review item {item_id}: not found")
    item = _item(row)
    if item.resolved_at is not None:
        raise ReviewError(f"review item {item_id}: already resolved as {item.resolution}")
    m = row._mapping
    added = False
    if resolution != RESOLVE_IGNORE:
        if m["key_hash"] is None or m["key_id"] is None:
            raise ReviewError(
                f"review item {item_id}: no identity is known for it; record the no with "
                "`outreach suppress add` and resolve the item as ignore"
            )
        kind = str(m["identity_kind"])
        if resolution == RESOLVE_OBJECTION:
            scope, reason = "all", OBJECTION  # ALL-1
        else:
            scope, reason = _CHANNEL_OF.get(kind, "all"), UNSUBSCRIBE
        added = add_once(
            Ledger(conn, hasher),
            KeyedHash(m["key_id"], bytes(m["key_hash"])),
            kind,
            scope=scope,
            reason=reason,
            source="review",
            source_event=f"review:{item_id}",
            evidence_ref=f"review:{item_id}",
            now=now,
            occurred_at=item.created_at,
            actor=actor,
        )
    values: dict[str, object] = {
        "resolved_at": now,
        "resolution": resolution,
        "resolved_by": actor[:80],
    }
    if item.kind == ERASURE_REQUEST:
        values["text"] = CLEARED  # the request named the person; `forget` took it from here
    conn.execute(update(review_items).where(review_items.c.id == item_id).values(**values))
    resolved = _item(conn.execute(select(review_items).where(review_items.c.id == item_id)).one())
    return resolved, added


def clear_texts(conn: Connection, digests: list[bytes]) -> int:
    """Erasure (ALL-4): the texts of review items from these identities go, open or not;
    the items stay (kind, dates, resolution). For `outreach forget` to call."""
    if not digests:
        return 0
    result = conn.execute(
        update(review_items)
        .where(review_items.c.key_hash.in_(digests))
        .values(text="(text removed at the person's erasure)")
    )
    return int(result.rowcount or 0)
