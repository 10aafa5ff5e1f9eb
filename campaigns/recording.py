"""What happened to each recipient, written to its row: the outcomes a channel reports,
and the `unknown` recipients a channel says it did receive.

An outcome is written only over `sending`, a reconciled `sent` only over `unknown`.
The order in which these happen is campaigns.sending's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, update

from campaigns.campaign_schema import EXCLUDED_AT_SEND, QUEUED, SENDING, SENT, UNKNOWN, recipients
from campaigns.channels.base import Channel, Outcome
from campaigns.decisions import among
from campaigns.schema import contacts

_OUTCOME_COLUMNS = (
    "state", "provider_id", "error", "sent_at", "checked_at", "send_decision", "send_rule",
)  # fmt: skip
# One recipient's outcome, if it is still `sending` (a recipient made `unknown` meanwhile by
# another delivery keeps that state: it is reconciled, not overwritten).
_RECORD_ONE = (
    update(recipients)
    .where(recipients.c.id == bindparam("rid"), recipients.c.state == SENDING)
    .values(updated_at=bindparam("updated_at"), **{c: bindparam(c) for c in _OUTCOME_COLUMNS})
)


def record(
    engine: Engine,
    outcomes: list[Outcome],
    checks: dict[int, tuple[datetime, str | None]],
    counts: dict[str, int],
    now: datetime,
) -> None:
    """The channel's outcomes of claimed recipients, with when and why the send-time check
    let each go or stopped it (`checks`); `counts` adds up the states written."""
    # Outcomes that share every value (a sub-batch written to one file, those stopped by
    # one rule) are one UPDATE each; the rest (a provider id per message) one executemany.
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for o in outcomes:
        state = {"retry": QUEUED, "excluded_at_send": EXCLUDED_AT_SEND}.get(o.state, o.state)
        checked_at, rule = checks.get(o.recipient_id, (None, None))
        values = (
            state,
            o.provider_id,
            o.error,
            now if state == SENT else None,
            checked_at,
            "stop" if rule else ("send" if checked_at else None),
            rule or o.rule,
        )
        groups[values].append(o.recipient_id)
        counts[state] += 1
    singles = [
        {"rid": rids[0], "updated_at": now, **dict(zip(_OUTCOME_COLUMNS, values, strict=True))}
        for values, rids in groups.items()
        if len(rids) == 1
    ]
    sent_ids = [o.recipient_id for o in outcomes if o.state == SENT]
    with engine.begin() as conn:
        for values, rids in groups.items():
            if len(rids) > 1:
                conn.execute(
                    update(recipients)
                    .where(among(engine, recipients.c.id, rids), recipients.c.state == SENDING)
                    .values(updated_at=now, **dict(zip(_OUTCOME_COLUMNS, values, strict=True)))
                )
        if singles:
            conn.execute(_RECORD_ONE, singles)
        if sent_ids:
            conn.execute(
                update(contacts)
                .where(
                    contacts.c.id == recipients.c.contact_id,
                    among(engine, recipients.c.id, sent_ids),
                )
                .values(
                    first_contacted_at=func.coalesce(contacts.c.first_contacted_at, now),
                    last_contacted_at=now,
                )
            )


def reconcile_unknown(
    engine: Engine, channel: Channel, campaign_id: int, ids: Sequence[int], now: datetime
) -> int:
    """Ask the channel which `unknown` recipients it did receive; those become `sent` (or
    what the channel's receiving makes of them: `listed` for a call list)."""
    found = channel.reconcile(campaign_id, ids)
    if not found:
        return 0
    state = getattr(channel, "received_state", SENT)
    with engine.begin() as conn:
        conn.execute(
            update(recipients)
            .where(recipients.c.id == bindparam("rid"), recipients.c.state == UNKNOWN)
            .values(
                state=state,
                provider_id=bindparam("pid"),
                sent_at=now if state == SENT else None,
                error=None,
                updated_at=now,
            ),
            [{"rid": rid, "pid": pid} for rid, pid in found.items()],
        )
    return len(found)
