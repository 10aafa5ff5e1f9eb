"""EM-4, Mailchimp to us: members the audience holds as unsubscribed or cleaned become
ledger entries when a sync finds them (the webhook reports them too; both are
idempotent, so whichever comes first wins and the other adds nothing)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import Engine

from suppression.errors import InvalidIdentity
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.ledger import HARD_BOUNCE, UNSUBSCRIBE, Ledger, entry_rows

SOURCE: Final = "mailchimp"
# Mailchimp member status -> our reason (scope email; the same mapping as its webhooks).
REASONS: Final[dict[str, str]] = {"unsubscribed": UNSUBSCRIBE, "cleaned": HARD_BOUNCE}

GoneCallback = Callable[[Sequence[tuple[str, str]]], None]


def member_status_recorder(
    engine: Engine, hasher: Hasher, list_id: str, now: Callable[[], datetime]
) -> GoneCallback:
    """`on_members_gone` for `MailchimpChannel`: [(address, status)] -> ledger entries,
    committed before it returns; one entry per address, audience and status."""

    def record(members: Sequence[tuple[str, str]]) -> None:
        recorded_at = now()
        rows: list[dict[str, object]] = []
        for address, status in members:
            reason = REASONS.get(status)
            if reason is None:
                continue
            try:
                ident = email_identity(address)
            except InvalidIdentity:
                continue
            rows += entry_rows(
                hasher.hash_all(ident),
                identity_kind=ident.kind,
                kind="suppression",
                scope="email",
                reason=reason,
                source=SOURCE,
                source_event=f"audience:{list_id}:{status}",
                evidence_ref=f"mailchimp:{list_id}: member {status} at sync",
                occurred_at=recorded_at,
                recorded_at=recorded_at,
                actor="system",
            )
        if rows:
            with engine.begin() as conn:
                Ledger(conn, hasher).add_many(rows)

    return record
