"""The send path of one batch: a state machine per recipient.

queued -> sending -> sent | failed | excluded_at_send | unknown (and back to queued
for a transient error). The rows, not the broker, say what happened:

* a batch is leased (batches.state = running, started_at) so two deliveries of the
  same message never work on it at once;
* recipients are claimed a few at a time (queued -> sending, committed) before the
  provider is called, so a crash leaves them in `sending`; the next delivery turns
  those into `unknown` and asks the channel to reconcile. They are never sent
  again blindly (guarantee 2);
* right before the provider call the ledger and the frequency cap are checked again
  for the claimed recipients in one query (ALL-6, ALL-8, guarantee 1;
  campaigns.sendcheck);
* pause and cancel are read before every claim, so they take effect within a batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import (
    CANCELLED,
    EXCLUDED_AT_SEND,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    STAGED,
    UNKNOWN,
    batches,
    campaigns,
    recipients,
)
from campaigns.channels.base import Channel, Outcome
from campaigns.decisions import among
from campaigns.messages import render_messages
from campaigns.schema import contacts
from campaigns.sendcheck import SendCheck
from suppression.calendar import may_send_sms, next_opening
from suppression.keys import Hasher
from suppression.policy import PolicyConfig

LEASE = timedelta(seconds=30)
# Recipients claimed at once: a whole batch at the default size (one claim, one render, one
# re-check, one outcome update per batch). Also the most a pause or cancel lets through per
# worker process, and the most a killed worker can leave `unknown`.
SUB_BATCH = 1000
MAX_BATCH_ATTEMPTS = 6


_ID_ARRAY = postgresql.ARRAY(BigInteger)
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


class BatchRetry(Exception):
    """Transient provider errors: some recipients went back to `queued`; retry the batch."""


@dataclass
class BatchResult:
    campaign_id: int
    batch_no: int
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    delay_until: datetime | None = None  # quiet hours, a rate limit or another worker's lease
    skipped: str = ""  # why nothing was done: paused, busy, done
    retry: bool = False


Throttle = Callable[[campaign_mod.Campaign, int], None]  # blocks until `n` messages may go


class Sender:
    def __init__(
        self,
        engine: Engine,
        hasher: Hasher,
        config: PolicyConfig,
        channel_for: Callable[[campaign_mod.Campaign], Channel],
        public_url: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        throttle: Throttle | None = None,
        sub_batch: int = SUB_BATCH,
    ) -> None:
        self.engine = engine
        self.hasher = hasher
        self.config = config
        self.channel_for = channel_for
        self.public_url = public_url.rstrip("/")
        self.now = now
        self.throttle = throttle
        self.sub_batch = sub_batch
        self.check = SendCheck(engine, config, now)

    # -- the batch ---------------------------------------------------------------

    def send_batch(self, campaign_id: int, batch_no: int) -> BatchResult:
        result = BatchResult(campaign_id, batch_no)
        with self.engine.begin() as conn:
            camp = campaign_mod.get(conn, campaign_id)
            if camp.state == campaign_mod.CANCELLED:
                self._cancel_batch(conn, campaign_id, batch_no)
                result.skipped = "cancelled"
                return result
            if camp.state != campaign_mod.RUNNING:
                result.skipped = camp.state
                return result
            now = self.now()
            if camp.channel == "sms" and not may_send_sms(now):
                # ES-6: outside the SMS window the batch waits; it is not dropped.
                opening = next_opening(now, may_send_sms)
                conn.execute(
                    update(batches)
                    .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
                    .values(state="waiting", not_before=opening)
                )
                result.delay_until = opening
                result.skipped = "quiet_hours"
                return result
            attempts, lease = self._take_lease(conn, campaign_id, batch_no, now)
            if lease is not None:
                result.skipped, result.delay_until = lease
            else:
                leftovers = self._leftovers_unknown(conn, campaign_id, batch_no, now)
        if result.skipped == "done":
            # A delivery of a finished batch (a resume after a pause at the very end) lets a
            # whole-campaign channel send what is staged, and closes the campaign.
            self._finalize_if_staged(campaign_id)
            with self.engine.begin() as conn:
                finish_campaign_if_done(conn, campaign_id, self.now())
        if lease is not None:
            return result
        channel = self.channel_for(camp)
        if leftovers:
            # Asked outside the transaction: the channel may have to call the provider.
            reconcile_unknown(self.engine, channel, campaign_id, leftovers, self.now())
            result.counts["unknown"] += len(leftovers)
        if attempts > MAX_BATCH_ATTEMPTS:
            self._give_up(campaign_id, batch_no, result)
        else:
            self._send_claimed(camp, channel, batch_no, result)
        self._finish(campaign_id, batch_no, result)
        return result

    def _take_lease(
        self, conn: Connection, campaign_id: int, batch_no: int, now: datetime
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

    def _leftovers_unknown(
        self, conn: Connection, campaign_id: int, batch_no: int, now: datetime
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

    def _give_up(self, campaign_id: int, batch_no: int, result: BatchResult) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(recipients)
                .where(
                    recipients.c.campaign_id == campaign_id,
                    recipients.c.batch_no == batch_no,
                    recipients.c.state == QUEUED,
                )
                .values(
                    state=FAILED,
                    error=f"gave up after {MAX_BATCH_ATTEMPTS} attempts",
                    updated_at=self.now(),
                )
            ).rowcount
        result.counts[FAILED] += n

    def _cancel_batch(self, conn: Connection, campaign_id: int, batch_no: int) -> None:
        conn.execute(
            update(recipients)
            .where(
                recipients.c.campaign_id == campaign_id,
                recipients.c.batch_no == batch_no,
                recipients.c.state == QUEUED,
            )
            .values(state=CANCELLED, updated_at=self.now())
        )
        conn.execute(
            update(batches)
            .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
            .values(state="done", finished_at=self.now())
        )

    # -- sub-batches -------------------------------------------------------------

    def _send_claimed(
        self, camp: campaign_mod.Campaign, channel: Channel, batch_no: int, result: BatchResult
    ) -> None:
        limit = self._sub_batch_for(camp)
        while True:
            with self.engine.begin() as conn:
                state = conn.execute(
                    select(campaigns.c.state).where(campaigns.c.id == camp.id)
                ).scalar_one()
                if state != campaign_mod.RUNNING:
                    if state == campaign_mod.CANCELLED:
                        self._cancel_batch(conn, camp.id, batch_no)
                    result.skipped = state
                    return
                claimed = self._claim(conn, camp.id, batch_no, limit)
                # Renew the lease while we work.
                conn.execute(
                    update(batches)
                    .where(batches.c.campaign_id == camp.id, batches.c.batch_no == batch_no)
                    .values(started_at=self.now())
                )
            if not claimed:
                return
            if self.throttle is not None:
                try:
                    self.throttle(camp, len(claimed))
                except BaseException:
                    # Not handed to the channel (the throttle's Redis may be down): back to
                    # `queued` for the next delivery, not `unknown` for good.
                    self._unclaim(claimed)
                    raise
            checks: dict[int, tuple[datetime, str | None]] = {}
            with self.engine.connect() as conn:
                messages = render_messages(
                    conn, self.hasher, self.config, self.public_url, camp, claimed
                )
                conn.rollback()

                def check(
                    ids: Sequence[int],
                    checks: dict[int, tuple[datetime, str | None]] = checks,
                    conn: Connection = conn,
                ) -> dict[int, str]:
                    stopped, at = self.check.recheck(camp, ids, conn)
                    for rid in ids:
                        checks[rid] = (at, stopped.get(rid))
                    return stopped

                outcomes = channel.deliver(messages, check)
            self._record(camp.id, outcomes, checks, result)
            if any(o.state == "retry" for o in outcomes):
                delays = [o.retry_after for o in outcomes if o.retry_after]
                if delays:
                    result.delay_until = self.now() + timedelta(seconds=max(delays))
                else:
                    result.retry = True
                return
            if len(claimed) < limit:
                return  # nothing left, or another delivery holds the rest

    def _unclaim(self, ids: Sequence[int]) -> None:
        """sending -> queued for claimed recipients the channel never saw."""
        with self.engine.begin() as conn:
            conn.execute(
                update(recipients)
                .where(among(self.engine, recipients.c.id, ids), recipients.c.state == SENDING)
                .values(state=QUEUED, updated_at=self.now())
            )

    def _sub_batch_for(self, camp: campaign_mod.Campaign) -> int:
        """The throttle admits a claimed sub-batch at once and it then goes out in one burst:
        with a rate limit, a burst is at most a twentieth of a second's worth, so that the
        provider sees the configured rate and not bursts of a whole sub-batch. (A burst
        takes tens of milliseconds to go out, and the throttle keeps the provider's next
        second clear of it until it is done: the shorter, the closer to the limit;
        worker/rate_limit.py.)"""
        if camp.rate_limit:
            return max(1, min(self.sub_batch, camp.rate_limit // 20))
        return self.sub_batch

    def _claim(self, conn: Connection, campaign_id: int, batch_no: int, limit: int) -> list[int]:
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
            .values(state=SENDING, updated_at=self.now())
            .returning(recipients.c.id)
        )
        return sorted(int(r[0]) for r in rows)

    # -- recording ---------------------------------------------------------------

    def _record(
        self,
        campaign_id: int,
        outcomes: list[Outcome],
        checks: dict[int, tuple[datetime, str | None]],
        result: BatchResult,
    ) -> None:
        now = self.now()
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
            result.counts[state] += 1
        singles = [
            {"rid": rids[0], "updated_at": now, **dict(zip(_OUTCOME_COLUMNS, values, strict=True))}
            for values, rids in groups.items()
            if len(rids) == 1
        ]
        sent_ids = [o.recipient_id for o in outcomes if o.state == SENT]
        with self.engine.begin() as conn:
            for values, rids in groups.items():
                if len(rids) > 1:
                    conn.execute(
                        update(recipients)
                        .where(
                            among(self.engine, recipients.c.id, rids), recipients.c.state == SENDING
                        )
                        .values(updated_at=now, **dict(zip(_OUTCOME_COLUMNS, values, strict=True)))
                    )
            if singles:
                conn.execute(_RECORD_ONE, singles)
            if sent_ids:
                conn.execute(
                    update(contacts)
                    .where(
                        contacts.c.id == recipients.c.contact_id,
                        among(self.engine, recipients.c.id, sent_ids),
                    )
                    .values(
                        first_contacted_at=func.coalesce(contacts.c.first_contacted_at, now),
                        last_contacted_at=now,
                    )
                )

    def _finish(self, campaign_id: int, batch_no: int, result: BatchResult) -> None:
        with self.engine.begin() as conn:
            left = conn.execute(
                select(recipients.c.id)
                .where(
                    recipients.c.campaign_id == campaign_id,
                    recipients.c.batch_no == batch_no,
                    recipients.c.state.in_((QUEUED, SENDING)),
                )
                .limit(1)
            ).first()
            now = self.now()
            if left is None:
                conn.execute(
                    update(batches)
                    .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
                    .values(state="done", finished_at=now)
                )
            else:
                # Paused, rate limited or transient errors: back in the queue for the next delivery.
                values: dict[str, Any] = {"state": QUEUED, "enqueued_at": now}
                if result.delay_until is not None:
                    # The provider's rate limit: waiting spends no attempt (the delivery
                    # that took the lease gives it back), or a throttled campaign would
                    # give up on recipients that were only asked to wait.
                    values = {
                        "state": "waiting",
                        "not_before": result.delay_until,
                        "enqueued_at": now,
                        "attempts": batches.c.attempts - 1,
                    }
                conn.execute(
                    update(batches)
                    .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
                    .values(**values)
                )
        if left is None:
            # After our commit: of two batches finishing at once, the later one sees both done.
            self._finalize_if_staged(campaign_id)
            with self.engine.begin() as conn:
                finish_campaign_if_done(conn, campaign_id, self.now())
        if result.retry:
            raise BatchRetry(f"campaign {campaign_id} batch {batch_no}: transient provider errors")

    def _finalize_if_staged(self, campaign_id: int) -> None:
        """Once every batch is done, a staging channel sends the campaign, exactly once:
        the staged recipients are claimed (staged -> sending) by one worker only."""
        with self.engine.begin() as conn:
            open_batch = conn.execute(
                select(batches.c.id)
                .where(batches.c.campaign_id == campaign_id, batches.c.state != "done")
                .limit(1)
            ).first()
            if open_batch is not None:
                return
            state = conn.execute(
                select(campaigns.c.state).where(campaigns.c.id == campaign_id)
            ).scalar_one()
            if state == campaign_mod.CANCELLED:
                # Staged is not sent: a cancelled campaign never reaches the provider's send.
                conn.execute(
                    update(recipients)
                    .where(recipients.c.campaign_id == campaign_id, recipients.c.state == STAGED)
                    .values(state=CANCELLED, updated_at=self.now())
                )
                return
            if state != campaign_mod.RUNNING:
                return
            ids = [
                int(r[0])
                for r in conn.execute(
                    select(recipients.c.id).where(
                        recipients.c.campaign_id == campaign_id, recipients.c.state == STAGED
                    )
                )
            ]
            if not ids:
                return
            claimed = conn.execute(
                update(recipients)
                .where(recipients.c.id.in_(ids), recipients.c.state == STAGED)
                .values(state=SENDING, updated_at=self.now())
            ).rowcount
            if claimed != len(ids):
                # Another worker is finalizing; ours is rolled back.
                conn.rollback()
                return
            camp = campaign_mod.get(conn, campaign_id)
        channel = self.channel_for(camp)
        checks: dict[int, tuple[datetime, str | None]] = {}

        def check(rids: Sequence[int]) -> dict[int, str]:
            stopped, at = self.check.recheck(camp, rids)
            for rid in rids:
                checks[rid] = (at, stopped.get(rid))
            return stopped

        outcomes = channel.finalize(campaign_id, ids, check)
        self._record(campaign_id, outcomes, checks, BatchResult(campaign_id, -1))


def finish_campaign_if_done(conn: Connection, campaign_id: int, now: datetime) -> bool:
    open_batch = conn.execute(
        select(batches.c.id)
        .where(batches.c.campaign_id == campaign_id, batches.c.state != "done")
        .limit(1)
    ).first()
    if open_batch is not None:
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


def reconcile_unknown(
    engine: Engine, channel: Channel, campaign_id: int, ids: Sequence[int], now: datetime
) -> int:
    """Ask the channel which `unknown` recipients it did receive; those become `sent`."""
    found = channel.reconcile(campaign_id, ids)
    if not found:
        return 0
    with engine.begin() as conn:
        conn.execute(
            update(recipients)
            .where(recipients.c.id == bindparam("rid"), recipients.c.state == UNKNOWN)
            .values(
                state=SENT, provider_id=bindparam("pid"), sent_at=now, error=None, updated_at=now
            ),
            [{"rid": rid, "pid": pid} for rid, pid in found.items()],
        )
    return len(found)
