"""This database's installation id, which every unsubscribe token signs (suppression.tokens).

Created once per database, by migration 0009 (`ensure`, at every process's start, makes
it for a store that lost it); suppression.tokens.signer reads it. The tokens issued
before the binding keep working up to the ids issued then (the row's `legacy_*_max`,
the largest ids at its creation).

Never created on the way, inside a caller's transaction: a read-only one rolls back,
and tokens signed meanwhile with an id that never committed would stop working.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Connection, func, select

from campaigns.campaign_schema import recipients
from suppression.schema import installation, unsubscribe_tokens

ID_BYTES = 16


def ensure(conn: Connection) -> None:
    """Create the installation row if the store has none (the caller commits)."""
    if conn.execute(select(installation.c.singleton)).first() is None:
        # Imported here: every process's start runs `ensure`, and one on SQLite loads no
        # PostgreSQL dialect (issue 18, the CLI's start-up). The two have one API.
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        highest = select(
            select(func.coalesce(func.max(unsubscribe_tokens.c.id), 0)).scalar_subquery(),
            select(func.coalesce(func.max(recipients.c.id), 0)).scalar_subquery(),
        )
        token_max, recipient_max = conn.execute(highest).one()
        conn.execute(
            insert(installation)
            .values(
                singleton=1,
                installation_id=secrets.token_bytes(ID_BYTES),
                legacy_token_max=int(token_max),
                legacy_recipient_max=int(recipient_max),
            )
            .on_conflict_do_nothing(index_elements=["singleton"])
        )
        # A racing process's row wins; ours is dropped (DO NOTHING).
