"""The send path of one batch: a state machine per recipient.

queued -> sending -> sent | failed | excluded_at_send | unknown (and back to queued
for a transient error). The rows, not the broker, say what happened:

* a batch is leased (batches.state = running, started_at) so two deliveries of the
  same message never work on it at once (campaigns.claiming);
* recipients are claimed a few at a time (queued -> sending, committed) before the
  provider is called, so a crash leaves them in `sending`; the next delivery turns
  those into `unknown` and asks the channel to reconcile. They are never sent
  again blindly (guarantee 2; campaigns.claiming, campaigns.recording);
* right before the provider call the ledger and the frequency cap are checked again
  for the claimed recipients in one query (ALL-6, ALL-8, guarantee 1;
  campaigns.sendcheck);
* pause and cancel are read before every claim, so they take effect within a batch.

This module is the order of things; the rows are written by campaigns.claiming,
campaigns.recording (outcomes) and campaigns.finishing (a batch's and a campaign's end).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, select, update

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import (
    CANCELLED,
    FAILED,
    SENDING,
    STAGED,
    batches,
    campaigns,
    recipients,
)
from campaigns.channels.base import Channel
from campaigns.claiming import claim, leftovers_unknown, take_lease, unclaim
from campaigns.finishing import (
    any_batch_open,
    cancel_batch,
    finish_batch,
    finish_campaign_if_done,
    give_up,
)
from campaigns.messages import render_messages
from campaigns.recording import reconcile_unknown, record
from campaigns.sendcheck import SendCheck
from suppression.calendar import may_send_sms, next_opening
from suppression.keys import Hasher
from suppression.policy import PolicyConfig

# Recipients claimed at once: a whole batch at the default size (one claim, one render, one
# re-check, one outcome update per batch). Also the most a pause or cancel lets through per
# worker process, and the most a killed worker can leave `unknown`.
SUB_BATCH = 1000
MAX_BATCH_ATTEMPTS = 6


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
        now: Callable[[], datetime],
        throttle: Throttle | None = None,
        sub_batch: int = SUB_BATCH,
        partner_names: Mapping[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.hasher = hasher
        self.config = config
        self.channel_for = channel_for
        self.public_url = public_url.rstrip("/")
        self.now = now
        self.throttle = throttle
        self.sub_batch = sub_batch
        # GD-1: partners' display names by key (the partners file), for source notices.
        self.partner_names = dict(partner_names or {})
        self.check = SendCheck(engine, config, now)

    # -- the batch ---------------------------------------------------------------

    def send_batch(self, campaign_id: int, batch_no: int) -> BatchResult:
        result = BatchResult(campaign_id, batch_no)
        with self.engine.begin() as conn:
            camp = campaign_mod.get(conn, campaign_id)
            if camp.state == campaign_mod.CANCELLED:
                cancel_batch(conn, campaign_id, batch_no, self.now)
                result.skipped = "cancelled"
                return result
            if camp.state != campaign_mod.RUNNING:
                result.skipped = camp.state
                return result
            now = self.now()
            if camp.channel == "sms" and not may_send_sms(now):
                # ES-6: outside the SMS window the batch waits; it is not dropped. Stored in
                # UTC: SQLite keeps a time without its offset, and the reconciliation that
                # takes the batch at its time compares it with a time in UTC.
                opening = next_opening(now, may_send_sms)
                conn.execute(
                    update(batches)
                    .where(batches.c.campaign_id == campaign_id, batches.c.batch_no == batch_no)
                    .values(state="waiting", not_before=opening.astimezone(UTC))
                )
                result.delay_until = opening
                result.skipped = "quiet_hours"
                return result
            attempts, lease = take_lease(conn, campaign_id, batch_no, now)
            if lease is not None:
                result.skipped, result.delay_until = lease
            else:
                leftovers = leftovers_unknown(conn, campaign_id, batch_no, now)
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
            result.counts[FAILED] += give_up(
                self.engine, campaign_id, batch_no, MAX_BATCH_ATTEMPTS, self.now()
            )
        else:
            self._send_claimed(camp, channel, batch_no, result)
        self._finish(campaign_id, batch_no, result)
        return result

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
                        cancel_batch(conn, camp.id, batch_no, self.now)
                    result.skipped = state
                    return
                claimed = claim(conn, camp.id, batch_no, limit, self.now())
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
                    unclaim(self.engine, claimed, self.now())
                    raise
            checks: dict[int, tuple[datetime, str | None]] = {}
            with self.engine.connect() as conn:
                messages = render_messages(
                    conn,
                    self.hasher,
                    self.config,
                    self.public_url,
                    camp,
                    claimed,
                    partner_names=self.partner_names,
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
            record(self.engine, outcomes, checks, result.counts, self.now())
            if any(o.state == "retry" for o in outcomes):
                delays = [o.retry_after for o in outcomes if o.retry_after]
                if delays:
                    result.delay_until = self.now() + timedelta(seconds=max(delays))
                else:
                    result.retry = True
                return
            if len(claimed) < limit:
                return  # nothing left, or another delivery holds the rest

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

    # -- the end of a batch ------------------------------------------------------

    def _finish(self, campaign_id: int, batch_no: int, result: BatchResult) -> None:
        with self.engine.begin() as conn:
            done = finish_batch(conn, campaign_id, batch_no, result.delay_until, self.now)
        if done:
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
            if any_batch_open(conn, campaign_id):
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
        record(self.engine, outcomes, checks, BatchResult(campaign_id, -1).counts, self.now())
