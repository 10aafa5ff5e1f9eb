"""Who works on which rows of a batch: the lease on the batch, the claims on its recipients.

A batch is leased (batches.state = running, started_at) so two deliveries of the same
message never work on it at once; recipients are claimed a few at a time (queued ->
sending, committed) before the provider is called, so a crash leaves them in `sending`
and the next delivery turns those into `unknown` (guarantee 2). The order in which these
happen is campaigns.sending's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, or_, select, update

from campaigns.campaign_schema import QUEUED, SENDING, UNKNOWN, batches, recipients
from campaigns.decisions import among

LEASE = timedelta(seconds=30)


def take_lease(
    conn: Connection, campaign_id: int, batch_no: int, now: datetime
) -> tuple[int, tuple[str, datetime | None] | None]:
    """(attempts so far, None) when this delivery holds the batch now; else (0, why not:
    done, or busy until when)."""
    attempts = conn.execute(
        update(batches)
        .where(
            batches.c.campaign_id == campaign_id,
            batches.c.batch_no == batch_no,
            or_(
                batches.c.state.in_((QUEUED, "waiting")),
                and_(batches.c.state == "running", batches.c.started_at < now - LEASE),
            ),
        )
        .values(state="running", started_at=now, attempts=batches.c.attempts + 1)
        .returning(batches.c.attempts)
    ).scalar()
    if attempts is not None:
        return int(attempts), None
    row = conn.execute(
        select(batches.c.state, batches.c.started_at).where(
            batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no
        )
    ).first()
    if row is None or row.state == "done":
        return 0, ("done", None)
    started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)
    return 0, ("busy", started + LEASE)


def leftovers_unknown(
    conn: Connection, campaign_id: int, batch_no: int, now: datetime
) -> list[int]:
    """Recipients left in `sending` by an interrupted delivery (we hold the lease, so it
    is not working any more) become `unknown`, never `queued` (guarantee 2); the caller
    asks the channel which of them it did receive."""
    rows = conn.execute(
        update(recipients)
        .where(
            recipients.c.campaign_id == campaign_id,
            recipients.c.batch_no == batch_no,
            recipients.c.state == SENDING,
        )
        .values(
            state=UNKNOWN,
            error="outcome unknown after an interrupted delivery",
            updated_at=now,
        )
        .returning(recipients.c.id)
    )
    return sorted(int(r[0]) for r in rows)


def claim(
    conn: Connection, campaign_id: int, batch_no: int, limit: int, now: datetime
) -> list[int]:
    """queued -> sending for up to `limit` recipients, in one statement: only the rows it
    moved are ours. Two deliveries of one batch at once (a lease taken over from a worker
    that was only slow) claim different recipients, never the same (guarantee 2); on
    PostgreSQL rows another claim holds are skipped rather than waited for."""
    candidates = (
        select(recipients.c.id)
        .where(
            recipients.c.campaign_id == campaign_id,
            recipients.c.batch_no == batch_no,
            recipients.c.state == QUEUED,
        )
        .order_by(recipients.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        # Materialized: inlined as a subquery, PostgreSQL may run it again per row and
        # claim more than `limit`.
        .cte("claim")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    rows = conn.execute(
        update(recipients)
        .where(recipients.c.id == candidates.c.id, recipients.c.state == QUEUED)
        .values(state=SENDING, updated_at=now)
        .returning(recipients.c.id)
    )
    return sorted(int(r[0]) for r in rows)


def unclaim(engine: Engine, ids: Sequence[int], now: datetime) -> None:
    """sending -> queued for claimed recipients the channel never saw."""
    with engine.begin() as conn:
        conn.execute(
            update(recipients)
            .where(among(engine, recipients.c.id, ids), recipients.c.state == SENDING)
            .values(state=QUEUED, updated_at=now)
        )
