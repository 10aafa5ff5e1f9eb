"""Appending to the ledger with a reliable "was it new?".

`Ledger.add` answers from the driver's row count, and psycopg 3 reports -1 rows for
the executemany form it uses, so on PostgreSQL a repeat looks new. The entry itself is
right either way (ON CONFLICT DO NOTHING); only the answer needs the check here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from suppression.keys import KeyedHash
from suppression.ledger import Ledger
from suppression.schema import ledger_entries


def add_once(
    ledger: Ledger,
    key: KeyedHash,
    identity_kind: str,
    *,
    source: str,
    source_event: str,
    now: datetime,
    **fields: object,
) -> bool:
    """Ledger.add; True only when this (identity, source, source event) was not recorded."""
    existing = ledger.conn.execute(
        select(ledger_entries.c.id).where(
            ledger_entries.c.key_hash == key.digest,
            ledger_entries.c.source == source,
            ledger_entries.c.source_event == source_event,
        )
    ).first()
    ledger.add(key, identity_kind, source=source, source_event=source_event, now=now, **fields)  # type: ignore[arg-type]
    return existing is None
