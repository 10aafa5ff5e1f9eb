"""The last check before a provider call (ALL-6, ALL-8, guarantee 1): the ledger and the
frequency cap once more, for many recipients in one query, with the policy's own
`recheck` deciding. The send path runs it per sub-batch right before the channel
sends; the call-list export runs it before it writes the list."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    bindparam,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql

from campaigns import campaign as campaign_mod
from campaigns import decisions
from campaigns.campaign_schema import recipients
from campaigns.decisions import ID_ARRAY, among
from campaigns.schema import contacts
from suppression.ledger import Status, entry_from_values
from suppression.policy import PolicyConfig, recheck
from suppression.schema import ledger_entries


class SendCheck:
    def __init__(self, engine: Engine, config: PolicyConfig, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.config = config
        self.now = now

    def _ledger_match(self) -> ColumnElement[bool]:
        """A ledger entry under any of the recipient's identities."""
        hashes = [
            contacts.c.email_hash,
            contacts.c.phone_hash,
            contacts.c.name_address_hash,
            recipients.c.key_hash,
        ]
        if self.engine.dialect.name == "postgresql":
            # One index scan per recipient over an array; an OR of the four (which is what
            # PostgreSQL makes of IN over columns) is a bitmap per recipient and a plan
            # costly enough to be JIT-compiled on every call.
            return ledger_entries.c.key_hash == func.any(postgresql.array(hashes))
        return or_(*[ledger_entries.c.key_hash == h for h in hashes])

    def _query(self, ids: Sequence[int], since: datetime, sending: Sequence[int]) -> Select[Any]:
        """Per recipient of `ids`: its sends in the window in the campaigns `sending`, and
        its ledger entries (a row each, or one row of NULLs)."""
        r2 = recipients.alias("earlier")
        counted = (
            r2.c.contact_id == recipients.c.contact_id,
            r2.c.campaign_id != recipients.c.campaign_id,
            r2.c.state.in_(decisions.COUNTED_STATES),
            # A send in flight (`sending`) or of unknown outcome has no sent_at: its row's
            # last change dates it, as at launch (`joins.recent_hits`).
            func.coalesce(r2.c.sent_at, r2.c.updated_at) >= since,
        )
        if self.engine.dialect.name == "postgresql":
            # One probe of the (contact_id, campaign_id) index per campaign in the window:
            # the rows of campaigns long finished are never fetched. The OFFSET keeps the
            # planner from flattening the lateral look-up into a join it may then run
            # through the campaign index instead, which for a campaign launched since the
            # last ANALYZE it takes for empty: a scan of all its rows per recipient.
            window = (
                func.unnest(bindparam(None, list(sending), type_=ID_ARRAY))
                .table_valued("cid")
                .render_derived(name="in_window")
            )
            probe = (
                select(r2.c.id)
                .where(r2.c.campaign_id == window.c.cid, *counted)
                .correlate(recipients, window)
                .offset(0)
                .lateral("probe")
            )
            recent_count = (
                select(func.count())
                .select_from(window.join(probe, true()))
                .correlate(recipients)
                .scalar_subquery()
            )
        else:
            recent_count = (
                select(func.count())
                .select_from(r2)
                .where(r2.c.campaign_id.in_(list(sending)), *counted)
                .correlate(recipients)
                .scalar_subquery()
            )
        return (
            select(
                recipients.c.id.label("rid"),
                recent_count.label("recent"),
                *decisions.LEDGER_COLUMNS,
            )
            .select_from(
                recipients.join(contacts, contacts.c.id == recipients.c.contact_id).outerjoin(
                    ledger_entries, self._ledger_match()
                )
            )
            .where(among(self.engine, recipients.c.id, ids))
        )

    def recheck(
        self, camp: campaign_mod.Campaign, ids: Sequence[int], conn: Connection | None = None
    ) -> tuple[dict[int, str], datetime]:
        """ALL-6 and ALL-8 for many recipients in one query (after one for the campaigns in
        the window): {recipient_id: rule} of those that must not be sent now. An opt-out committed before this query stops the send:
        effective immediately, well inside the 2 days of EM-3. On `conn` when given, which
        must have no transaction open (on SQLite an open one would not see later commits);
        the query's transaction is ended right after it."""
        now = self.now()
        since = now - timedelta(days=self.config.frequency_window_days)
        statuses: dict[int, Status] = defaultdict(Status)
        recent_by: dict[int, int] = {}
        with ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect())
            sending = conn.execute(decisions.campaigns_sending_since(since)).scalars().all()
            rows = conn.execute(self._query(ids, since, sending)).all()
            conn.rollback()
            for row in rows:
                rid = int(row.rid)
                recent_by[rid] = int(row.recent)
                if row.id is not None:
                    statuses[rid].entries.append(entry_from_values(*row[2:]))
        stopped: dict[int, str] = {}
        for rid in ids:
            decision = recheck(
                camp.channel, statuses.get(rid, Status()), recent_by.get(rid, 0), self.config
            )
            if decision is not None:
                stopped[rid] = decision.rule
        return stopped, now
