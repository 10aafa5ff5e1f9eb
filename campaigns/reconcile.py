"""The clock's reconciliation: nothing queued is forgotten, nothing unknown is resent.

* batches still `queued` (or `waiting` whose time has come) some time after they were
  enqueued are enqueued again: the broker may have lost the message;
* a `running` batch whose lease expired is enqueued again (its worker died);
* recipients in `sending` for longer than a limit become `unknown`, and the channel is
  asked which of them it did receive;
* recipients a channel itself reported `unknown` (a timeout after the request went out)
  are asked about once, some minutes later, when the provider's records have settled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, or_, select, update

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import QUEUED, SENDING, UNKNOWN, batches, campaigns, recipients
from campaigns.channels.base import Channel
from campaigns.claiming import LEASE
from campaigns.recording import reconcile_unknown

STUCK_QUEUED = timedelta(minutes=2)
STUCK_SENDING = timedelta(minutes=5)
ASKED = "[reconciled: not found]"


@dataclass
class Reconciled:
    reenqueued: list[tuple[int, int]] = field(default_factory=list)
    made_unknown: int = 0
    found_sent: int = 0


def reconcile(
    engine: Engine,
    now: datetime,
    enqueue: Callable[[int, int], None],
    channel_for: Callable[[campaign_mod.Campaign], Channel],
    stuck_queued: timedelta = STUCK_QUEUED,
    stuck_sending: timedelta = STUCK_SENDING,
) -> Reconciled:
    done = Reconciled()
    with engine.begin() as conn:
        rows = conn.execute(
            select(batches.c.campaign_id, batches.c.batch_no)
            .join(campaigns, campaigns.c.id == batches.c.campaign_id)
            .where(
                campaigns.c.state.in_((campaign_mod.RUNNING, campaign_mod.CANCELLED)),
                or_(
                    and_(batches.c.state == QUEUED, batches.c.enqueued_at < now - stuck_queued),
                    and_(batches.c.state == "waiting", batches.c.not_before <= now),
                    and_(batches.c.state == "running", batches.c.started_at < now - LEASE),
                ),
            )
        ).all()
        for campaign_id, batch_no in rows:
            conn.execute(
                update(batches)
                .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
                .values(enqueued_at=now)
            )
            done.reenqueued.append((int(campaign_id), int(batch_no)))
        stale = conn.execute(
            select(recipients.c.campaign_id, recipients.c.id).where(
                recipients.c.state == SENDING, recipients.c.updated_at < now - stuck_sending
            )
        ).all()
        if stale:
            conn.execute(
                update(recipients)
                .where(recipients.c.id.in_([r.id for r in stale]), recipients.c.state == SENDING)
                .values(
                    state=UNKNOWN, error="outcome unknown: sending for too long", updated_at=now
                )
            )
            done.made_unknown = len(stale)
        # Unknown outcomes not yet asked about (the error text says when they were).
        unasked = conn.execute(
            select(recipients.c.campaign_id, recipients.c.id).where(
                recipients.c.state == UNKNOWN,
                recipients.c.updated_at < now - stuck_sending,
                or_(recipients.c.error.is_(None), ~recipients.c.error.contains(ASKED)),
            )
        ).all()
    for campaign_id, batch_no in done.reenqueued:
        enqueue(campaign_id, batch_no)
    by_campaign: dict[int, list[int]] = {}
    for r in [*stale, *unasked]:
        by_campaign.setdefault(int(r.campaign_id), []).append(int(r.id))
    for campaign_id, ids in by_campaign.items():
        with engine.connect() as conn:
            camp = campaign_mod.get(conn, campaign_id)
        done.found_sent += reconcile_unknown(engine, channel_for(camp), campaign_id, ids, now)
        with engine.begin() as conn:
            # Asked once: those the provider has no record of stay unknown, and say so.
            conn.execute(
                update(recipients)
                .where(recipients.c.id.in_(ids), recipients.c.state == UNKNOWN)
                .values(error=func.coalesce(recipients.c.error, "") + " " + ASKED, updated_at=now)
            )
    return done
