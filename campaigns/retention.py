"""Privacy duties towards partner leads: the source notice (GD-1) and retention (GD-2).

GD-1: a partner lead not contacted within 30 days of an import from a partner must
get a written notice of where we got the data. `notice_due` lists them (the
compliance officer sends the notice, then `mark_notice_sent`); a later import from
another partner flags the lead again, since that partner must be named too.

GD-2 (POLICY): a partner lead never converted (no customer relationship) is deleted
once neither an import nor a lawful contact is newer than the retention period.
Deleted: the contact row, its consent records and its sources, i.e. every
plaintext trace. Kept: the ledger, untouched: it holds keyed hashes only, and an
opt-out must outlive the data (ALL-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, and_, delete, exists, func, or_, select, update

from campaigns.schema import consent_records, contact_sources, contacts, customers

NOTICE_DAYS: Final = 30
PARTNER_PREFIX: Final = "partner:"


@dataclass(frozen=True, slots=True)
class NoticeDue:
    """A partner lead who must get the written source notice."""

    contact_id: int
    partners: tuple[str, ...]  # partner names (without the "partner:" prefix)
    first_imported_at: datetime
    first_name: str | None
    last_name: str | None
    street: str | None
    postal_code: str | None
    city: str | None
    email: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "contact_id": self.contact_id,
            "partners": list(self.partners),
            "first_imported_at": self.first_imported_at,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "street": self.street,
            "postal_code": self.postal_code,
            "city": self.city,
            "email": self.email,
        }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def notice_due(conn: Connection, now: datetime, days: int = NOTICE_DAYS) -> list[NoticeDue]:
    """GD-1: partner leads never contacted, with a partner import older than `days` that
    no notice has covered yet."""
    now = now.astimezone(UTC)
    cutoff = now - timedelta(days=days)
    src = contact_sources
    c = contacts
    due_source = and_(
        src.c.contact_id == c.c.id,
        src.c.source.startswith(PARTNER_PREFIX),
        src.c.imported_at <= cutoff,
        or_(c.c.source_notice_sent_at.is_(None), src.c.imported_at > c.c.source_notice_sent_at),
    )
    rows = conn.execute(
        select(
            c.c.id,
            c.c.first_name,
            c.c.last_name,
            c.c.street,
            c.c.postal_code,
            c.c.city,
            c.c.email,
        )
        .where(c.c.is_partner_lead.is_(True), c.c.first_contacted_at.is_(None))
        .where(exists().where(due_source))
        .order_by(c.c.id)
    ).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    partners: dict[int, set[str]] = {i: set() for i in ids}
    first: dict[int, datetime] = {}
    for chunk in _chunks(ids):
        for s in conn.execute(
            select(src.c.contact_id, src.c.source, func.min(src.c.imported_at).label("at"))
            .where(src.c.contact_id.in_(chunk), src.c.source.startswith(PARTNER_PREFIX))
            .group_by(src.c.contact_id, src.c.source)
        ):
            partners[s.contact_id].add(s.source.removeprefix(PARTNER_PREFIX))
            at = _aware(s.at)
            first[s.contact_id] = min(first.get(s.contact_id, at), at)
    return [
        NoticeDue(
            r.id,
            tuple(sorted(partners[r.id])),
            first[r.id],
            r.first_name,
            r.last_name,
            r.street,
            r.postal_code,
            r.city,
            r.email,
        )
        for r in rows
    ]


def mark_notice_sent(conn: Connection, contact_ids: Sequence[int], now: datetime) -> int:
    """Record that the written source notice went to these leads; returns how many."""
    when = now.astimezone(UTC)
    count = 0
    for chunk in _chunks(list(contact_ids)):
        count += conn.execute(
            update(contacts).where(contacts.c.id.in_(chunk)).values(source_notice_sent_at=when)
        ).rowcount
    return count


@dataclass(frozen=True, slots=True)
class Purged:
    contacts: int
    consent_records: int
    contact_sources: int

    def as_dict(self) -> dict[str, int]:
        return {
            "contacts": self.contacts,
            "consent_records": self.consent_records,
            "contact_sources": self.contact_sources,
        }


def purge_expired_leads(conn: Connection, now: datetime, retention_days: int) -> Purged:
    """GD-2: delete partner leads never converted whose latest partner import and latest
    lawful contact are older than `retention_days`. The ledger is not touched."""
    cutoff = now.astimezone(UTC) - timedelta(days=retention_days)
    c = contacts
    recent_source = exists().where(
        contact_sources.c.contact_id == c.c.id, contact_sources.c.imported_at >= cutoff
    )
    customer = exists().where(customers.c.contact_id == c.c.id)
    expired = (
        select(c.c.id)
        .where(c.c.is_partner_lead.is_(True), c.c.is_customer.is_(False))
        .where(or_(c.c.last_contacted_at.is_(None), c.c.last_contacted_at < cutoff))
        .where(~recent_source, ~customer)
    )
    ids = [r[0] for r in conn.execute(expired)]
    counts = [0, 0, 0]
    for chunk in _chunks(ids):
        counts[1] += conn.execute(
            delete(consent_records).where(consent_records.c.contact_id.in_(chunk))
        ).rowcount
        counts[2] += conn.execute(
            delete(contact_sources).where(contact_sources.c.contact_id.in_(chunk))
        ).rowcount
        counts[0] += conn.execute(delete(contacts).where(contacts.c.id.in_(chunk))).rowcount
    return Purged(*counts)


def _chunks(ids: list[int], size: int = 10_000) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
