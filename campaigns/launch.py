"""Preview and launch: decide for every audience member in bulk.

Contacts are streamed in chunks; the facts of a chunk come from a handful of
set-based queries (`campaigns.decisions`); the policy decides each person in
memory; recipient rows and tokens are written in bulk (COPY on PostgreSQL).
Preview does the same deciding and writes nothing.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from campaigns import campaign as campaign_mod
from campaigns import decisions
from campaigns.campaign_schema import EXCLUDED as STATE_EXCLUDED
from campaigns.campaign_schema import QUEUED, batches, recipients
from campaigns.schema import contacts
from suppression.bulk import insert_rows
from suppression.keys import Hasher
from suppression.ledger import Status
from suppression.policy import Decision, PersonFacts, PolicyConfig, RegisterFacts, decide
from suppression.register import active_snapshot
from suppression.schema import unsubscribe_tokens

CHUNK = 20_000
# What launch and preview read of a contact: its keys and, for the samples, name and postcode.
CONTACT_COLUMNS = (
    "id", "key_id", "email_hash", "phone_hash", "name_address_hash",
    "first_name", "last_name", "postal_code",
)  # fmt: skip
SAMPLES_PER_REASON = 3
IDENTITY_KIND = {"email": "email", "sms": "phone", "call": "phone", "post": "name_address"}


@dataclass
class Summary:
    """Counts by decision (with the rule that decided), and a few sample contacts per reason."""

    audience: int = 0
    by_decision: Counter[tuple[str, str]] = field(default_factory=Counter)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    batches: int = 0

    @property
    def eligible(self) -> int:
        return sum(n for (decision, _rule), n in self.by_decision.items() if decision == "send")

    def as_dict(self) -> dict[str, Any]:
        return {
            "audience": self.audience,
            "eligible": self.eligible,
            "batches": self.batches,
            "decisions": [
                {"decision": d, "rule": r, "count": n}
                for (d, r), n in sorted(self.by_decision.items())
            ],
            "samples": dict(self.samples),
        }


def _decided(
    conn: Connection,
    hasher: Hasher,
    config: PolicyConfig,
    camp: campaign_mod.Campaign,
    now: datetime,
) -> Iterator[tuple[Any, Decision]]:
    """(contact row, decision) for every audience member, in contact id order."""
    snapshot = active_snapshot(conn)
    no_register = RegisterFacts(
        snapshot.snapshot_date if snapshot else None, snapshot.loaded_at if snapshot else None
    )
    address = decisions.ADDRESS_COLUMN[camp.channel]
    audience = camp.audience.query()
    # The ledger (and for calls and post the register) joined with the whole audience in
    # one query each, read in step with the contacts: each table is read once per launch.
    ledger = decisions.InStep(decisions.ledger_hits(conn, audience))
    register = decisions.InStep(
        decisions.register_hits(conn, audience, snapshot)
        if snapshot is not None and camp.channel in ("call", "post")
        else iter(())
    )
    result = conn.execute(
        audience.with_only_columns(*(contacts.c[name] for name in CONTACT_COLUMNS)),
        execution_options={"yield_per": CHUNK},
    )
    for chunk in result.partitions():
        rows = [r._mapping for r in chunk]
        low, high = int(rows[0]["id"]), int(rows[-1]["id"])
        ledger_now = ledger.upto(high)
        register_now = register.upto(high)
        consents = decisions.consents_by_contact(conn, low, high)
        customers = decisions.customers_by_contact(conn, low, high)
        recent = decisions.recent_contacts(
            conn, [int(r["id"]) for r in rows], now, config.frequency_window_days, camp.id
        )
        for row in rows:
            cid = int(row["id"])
            facts = PersonFacts(
                consents=tuple(consents.get(cid, ())),
                customer=customers.get(cid),
                ledger=ledger_now.get(cid, Status()),
                recent_contacts=recent.get(cid, 0),
                has_address=row[address] is not None,
            )
            yield (
                row,
                decide(
                    camp.channel,
                    camp.purpose,
                    facts,
                    register_now.get(cid, no_register),
                    config,
                    now,
                ),
            )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Deciding allocates millions of short-lived objects that form no reference cycles;
    the cyclic collector would walk every live object again and again (40 % of a launch's
    CPU). Paused while deciding, on again after (it then finds nothing to collect)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sample(row: Any) -> dict[str, Any]:
    # Samples show who, without the address itself: the marketer sees a name and a postal code.
    return {
        "contact_id": int(row["id"]),
        "name": " ".join(p for p in (row["first_name"], row["last_name"]) if p) or "(erased)",
        "postal_code": row["postal_code"],
    }


def preview(
    conn: Connection,
    hasher: Hasher,
    config: PolicyConfig,
    campaign_id: int,
    now: datetime | None = None,
) -> Summary:
    """Counts by decision and samples per reason; no side effects."""
    camp = campaign_mod.get(conn, campaign_id)
    summary = Summary()
    with _collector_paused():
        for row, decision in _decided(conn, hasher, config, camp, now or datetime.now(UTC)):
            summary.audience += 1
            summary.by_decision[(decision.decision, decision.rule)] += 1
            samples = summary.samples[decision.decision]
            if len(samples) < SAMPLES_PER_REASON:
                samples.append({**_sample(row), "rule": decision.rule, "basis": decision.basis})
    summary.batches = -(-summary.eligible // camp.batch_size)
    return summary


def _reserve_token_ids(conn: Connection, count: int) -> int:
    """The first of `count` consecutive token ids reserved for this launch."""
    if conn.dialect.name == "postgresql":
        seq = conn.execute(
            text("SELECT pg_get_serial_sequence('unsubscribe_tokens', 'id')")
        ).scalar_one()
        # Lock out other reservations for the moment it takes to move the sequence.
        conn.execute(text("LOCK TABLE unsubscribe_tokens IN SHARE ROW EXCLUSIVE MODE"))
        last = conn.execute(text("SELECT last_value, is_called FROM " + seq)).one()
        first = int(last[0]) + (1 if last[1] else 0)
        conn.execute(
            text("SELECT setval(:seq, :value, true)"), {"seq": seq, "value": first + count - 1}
        )
        return first
    current = conn.execute(select(func.coalesce(func.max(unsubscribe_tokens.c.id), 0))).scalar_one()
    return int(current) + 1


def launch(
    conn: Connection,
    hasher: Hasher,
    config: PolicyConfig,
    campaign_id: int,
    now: datetime | None = None,
) -> Summary:
    """Decide every audience member, store the recipients with their decisions and tokens,
    create the batches and mark the campaign running, all in the caller's transaction.
    The caller enqueues the batches after the commit (`batches_to_enqueue`)."""
    now = now or datetime.now(UTC)
    camp = campaign_mod.get(conn, campaign_id)
    if camp.state != campaign_mod.DRAFT:
        raise campaign_mod.CampaignError(
            f"campaign {campaign_id}: only a draft can be launched (it is {camp.state})"
        )
    address = decisions.ADDRESS_COLUMN[camp.channel]
    identity_kind = IDENTITY_KIND[camp.channel]
    summary = Summary()
    recipient_rows: list[tuple[Any, ...]] = []
    token_rows: list[tuple[Any, ...]] = []
    queued = 0
    next_token: int | None = None
    recipient_columns = (
        "campaign_id", "contact_id", "key_hash", "decision", "rule", "basis", "evidence",
        "state", "batch_no", "token_id", "updated_at",
    )  # fmt: skip
    token_columns = (
        "id",
        "key_hash",
        "key_id",
        "identity_kind",
        "channel",
        "campaign_id",
        "created_at",
    )

    def flush() -> None:
        insert_rows(conn, unsubscribe_tokens, token_columns, token_rows)
        insert_rows(conn, recipients, recipient_columns, recipient_rows)
        token_rows.clear()
        recipient_rows.clear()

    pending: list[tuple[Any, Decision]] = []

    def write_pending() -> None:
        nonlocal next_token, queued
        allowed = sum(1 for _, d in pending if d.allowed)
        if allowed:
            next_token = _reserve_token_ids(conn, allowed) if next_token is None else next_token
        for row, decision in pending:
            token_id = batch_no = None
            state = STATE_EXCLUDED
            key = row[address]
            if decision.allowed:
                assert next_token is not None
                token_id, next_token = next_token, next_token + 1
                batch_no = queued // camp.batch_size
                queued += 1
                state = QUEUED
                token_rows.append(
                    (token_id, bytes(key), row["key_id"], identity_kind, camp.channel, camp.id, now)
                )
            recipient_rows.append(
                (
                    camp.id, int(row["id"]), bytes(key) if key is not None else b"", decision.decision,
                    decision.rule, decision.basis, " ".join(decision.evidence), state, batch_no,
                    token_id, now,
                )
            )  # fmt: skip
        pending.clear()
        flush()
        # Token ids were reserved for this chunk only; the next chunk reserves again.
        next_token = None

    with _collector_paused():
        for row, decision in _decided(conn, hasher, config, camp, now):
            summary.audience += 1
            summary.by_decision[(decision.decision, decision.rule)] += 1
            pending.append((row, decision))
            if len(pending) >= CHUNK:
                write_pending()
        write_pending()
    summary.batches = -(-queued // camp.batch_size)
    if summary.batches:
        insert_rows(
            conn,
            batches,
            ("campaign_id", "batch_no", "state", "size", "enqueued_at", "attempts"),
            (
                (camp.id, n, QUEUED, min(camp.batch_size, queued - n * camp.batch_size), now, 0)
                for n in range(summary.batches)
            ),
        )
        campaign_mod.move(conn, camp.id, campaign_mod.RUNNING, launched_at=now)
    else:
        campaign_mod.move(conn, camp.id, campaign_mod.RUNNING, launched_at=now)
        campaign_mod.move(conn, camp.id, campaign_mod.DONE, finished_at=now)
    return summary


def batches_to_enqueue(conn: Connection, campaign_id: int) -> list[int]:
    rows = conn.execute(
        select(batches.c.batch_no)
        .where(batches.c.campaign_id == campaign_id, batches.c.state == QUEUED)
        .order_by(batches.c.batch_no)
    )
    return [int(r[0]) for r in rows]
