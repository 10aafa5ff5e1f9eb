"""How a batch and its campaign end: done, back in the queue, waiting, given up on or
cancelled; and the campaign done once every batch is and nothing is left unsent. The
order in which these happen is campaigns.sending's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import (
    CANCELLED,
    FAILED,
    QUEUED,
    SENDING,
    STAGED,
    batches,
    campaigns,
    recipients,
)


def give_up(engine: Engine, campaign_id: int, batch_no: int, attempts: int, now: datetime) -> int:
    """queued -> failed for the batch's recipients after `attempts` deliveries; how many."""
    with engine.begin() as conn:
        n = conn.execute(
            update(recipients)
            .where(
                recipients.c.campaign_id == campaign_id,
                recipients.c.batch_no == batch_no,
                recipients.c.state == QUEUED,
            )
            .values(
                state=FAILED,
                error=f"gave up after {attempts} attempts",
                updated_at=now,
            )
        ).rowcount
    return n


def cancel_batch(
    conn: Connection, campaign_id: int, batch_no: int, now: Callable[[], datetime]
) -> None:
    conn.execute(
        update(recipients)
        .where(
            recipients.c.campaign_id == campaign_id,
            recipients.c.batch_no == batch_no,
            recipients.c.state == QUEUED,
        )
        .values(state=CANCELLED, updated_at=now())
    )
    conn.execute(
        update(batches)
        .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
        .values(state="done", finished_at=now())
    )


def finish_batch(
    conn: Connection,
    campaign_id: int,
    batch_no: int,
    delay_until: datetime | None,
    now: Callable[[], datetime],
) -> bool:
    """The batch is done when none of its recipients is left `queued` or `sending` (True);
    else it goes back in the queue, or waits until `delay_until`."""
    left = conn.execute(
        select(recipients.c.id)
        .where(
            recipients.c.campaign_id == campaign_id,
            recipients.c.batch_no == batch_no,
            recipients.c.state.in_((QUEUED, SENDING)),
        )
        .limit(1)
    ).first()
    at = now()
    if left is None:
        conn.execute(
            update(batches)
            .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
            .values(state="done", finished_at=at)
        )
    else:
        # Paused, rate limited or transient errors: back in the queue for the next delivery.
        values: dict[str, Any] = {"state": QUEUED, "enqueued_at": at}
        if delay_until is not None:
            # The provider's rate limit: waiting spends no attempt (the delivery
            # that took the lease gives it back), or a throttled campaign would
            # give up on recipients that were only asked to wait.
            values = {
                "state": "waiting",
                "not_before": delay_until,
                "enqueued_at": at,
                "attempts": batches.c.attempts - 1,
            }
        conn.execute(
            update(batches)
            .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
            .values(**values)
        )
    return left is None


def any_batch_open(conn: Connection, campaign_id: int) -> bool:
    """Whether a batch of the campaign is not done yet."""
    found = conn.execute(
        select(batches.c.id)
        .where(batches.c.campaign_id == campaign_id, batches.c.state != "done")
        .limit(1)
    ).first()
    return found is not None


def finish_campaign_if_done(conn: Connection, campaign_id: int, now: datetime) -> bool:
    if any_batch_open(conn, campaign_id):
        return False
    unsent = conn.execute(
        select(recipients.c.id)
        .where(
            recipients.c.campaign_id == campaign_id,
            recipients.c.state.in_((STAGED, SENDING, QUEUED)),
        )
        .limit(1)
    ).first()
    if unsent is not None:
        return False
    n = conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.state == campaign_mod.RUNNING)
        .values(state=campaign_mod.DONE, finished_at=now)
    ).rowcount
    return n == 1
