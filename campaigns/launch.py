"""Preview and launch: decide for every audience member in bulk.

Contacts are streamed in chunks; the facts of a chunk come from a handful of
set-based queries (`campaigns.decisions`); the policy decides each person in
memory; recipient rows and tokens are written in bulk (COPY on PostgreSQL).
Preview does the same deciding and writes nothing.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from campaigns import campaign as campaign_mod
from campaigns import decisions, joins, preflight
from campaigns.campaign_schema import EXCLUDED as STATE_EXCLUDED
from campaigns.campaign_schema import QUEUED, batches
from campaigns.memory import collector_paused
from campaigns.prefetch import Prefetch
from campaigns.schema import contacts
from campaigns.streaming import RecipientWriter, reading_connection
from suppression.bulk import insert_rows
from suppression.keys import Hasher
from suppression.ledger import Status
from suppression.policy import (
    SEND,
    ConsentFacts,
    CustomerFacts,
    Decision,
    PolicyConfig,
    RegisterFacts,
    decide_facts,
)
from suppression.register import Snapshot, active_snapshot

CHUNK = 20_000
# What launch and preview read of a contact: its keys and, for preview's samples only,
# name and postcode.
SAMPLE_COLUMNS = ("first_name", "last_name", "postal_code")
ADDRESS_AT = 2  # the channel's address hash, in a contact row of `contact_columns`


def contact_columns(channel: str) -> tuple[str, ...]:
    """What a launch reads of a contact: the id, the key of the hashes, and the hash of the
    channel's address (the ledger and register joins read the others in the database)."""
    return ("id", "key_id", decisions.ADDRESS_COLUMN[channel])


SAMPLES_PER_REASON = 3  # per decision and rule: per row of the counts


@dataclass
class Summary:
    """Counts by decision (with the rule that decided), and a few sample contacts by rule id:
    up to SAMPLES_PER_REASON for each (decision, rule) of the counts, each sample naming
    its decision (one rule may decide both ways: ES-1 sends with consent, excludes without)."""

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


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Up to CHUNK audience contacts (positional rows, id first) and their facts."""

    rows: Sequence[Any]
    ledger: dict[int, Status]
    register: dict[int, RegisterFacts]
    consents: dict[int, tuple[ConsentFacts, ...]]
    customers: dict[int, CustomerFacts]
    recent: dict[int, int]


def _chunks(
    conn: Connection,
    config: PolicyConfig,
    camp: campaign_mod.Campaign,
    now: datetime,
    columns: Sequence[str],
    snapshot: Snapshot | None,
) -> Iterator[_Chunk]:
    """The audience in contact id order, a chunk at a time, with every fact the policy
    needs, from a handful of set-based queries per chunk."""
    audience = camp.audience.query()
    with ExitStack() as streams:
        # Closed here, however the launch ends: a stream left to the garbage collector
        # would close its server-side cursor whenever the collector runs, on a connection
        # that is back in the pool and in someone else's transaction by then.
        opened = streams.enter_context
        # The ledger (and for calls and post the register) joined with the whole audience
        # in one query each, and the sends that count towards the frequency cap, read in
        # step with the contacts: each is read once per launch.
        ledger = joins.InStep(opened(closing(joins.ledger_hits(conn, audience))))
        register = joins.InStep(
            opened(closing(joins.register_hits(conn, audience, snapshot)))
            if snapshot is not None and camp.channel in ("call", "post")
            else iter(())
        )
        since = now - timedelta(days=config.frequency_window_days)
        sending = conn.execute(decisions.campaigns_sending_since(since)).scalars().all()
        recent = joins.InStep(
            opened(closing(joins.recent_hits(conn, since, [c for c in sending if c != camp.id])))
        )
        stream = opened(
            closing(
                decisions.streamed(
                    conn,
                    audience.with_only_columns(*(contacts.c[name] for name in columns)),
                    CHUNK,
                )
            )
        )
        for rows in stream:
            low, high = rows[0][0], rows[-1][0]
            yield _Chunk(
                rows,
                ledger.upto(high),
                register.upto(high),
                decisions.consents_by_contact(conn, low, high),
                decisions.customers_by_contact(conn, low, high),
                recent.upto(high),
            )


def _decided(
    chunks: Iterable[_Chunk],
    no_register: RegisterFacts,
    config: PolicyConfig,
    camp: campaign_mod.Campaign,
    now: datetime,
) -> Iterator[Iterable[tuple[Any, Decision]]]:
    """Chunk by chunk, (contact row, decision) for every audience member, in contact id
    order (a list per chunk: a comprehension costs less per person than a generator)."""
    at = ADDRESS_AT
    no_ledger = Status()
    channel, purpose = camp.channel, camp.purpose
    for chunk in chunks:
        consents, customers = chunk.consents.get, chunk.customers.get
        ledger, recent, register = chunk.ledger.get, chunk.recent.get, chunk.register.get
        found = [
            decide_facts(
                channel,
                purpose,
                consents(row[0], ()),
                customers(row[0]),
                ledger(row[0], no_ledger),
                recent(row[0], 0),
                row[at] is not None,
                register(row[0], no_register),
                config,
                now,
            )
            for row in chunk.rows
        ]
        yield zip(chunk.rows, found, strict=True)


@contextmanager
def _audience_facts(
    conn: Connection,
    config: PolicyConfig,
    camp: campaign_mod.Campaign,
    now: datetime,
    columns: Sequence[str],
) -> Iterator[tuple[Iterable[_Chunk], RegisterFacts, bool]]:
    """The chunks to decide, the register facts of the unlisted, and whether the chunks
    are read ahead on a connection of their own, in a thread (the caller's connection is
    then free to write); with the cyclic collector paused for as long as deciding goes on."""
    with ExitStack() as stack:
        reader = stack.enter_context(reading_connection(conn))
        snapshot = active_snapshot(reader)  # before a thread reads on the connection
        no_register = RegisterFacts(
            snapshot.snapshot_date if snapshot else None, snapshot.loaded_at if snapshot else None
        )  # the register facts of a person the active snapshot does not list
        chunks: Iterable[_Chunk] = _chunks(reader, config, camp, now, columns, snapshot)
        ahead = reader is not conn
        if ahead:
            chunks = stack.enter_context(Prefetch(iter(chunks), name="launch-reader"))
        stack.enter_context(collector_paused())
        yield chunks, no_register, ahead


def _sample(row: Any) -> dict[str, Any]:
    # Samples show who, without the address itself: the marketer sees a name and a postal code.
    return {
        "contact_id": int(row[0]),
        "name": " ".join(p for p in (row[3], row[4]) if p) or "(erased)",
        "postal_code": row[5],
    }


def preview(
    conn: Connection,
    hasher: Hasher,
    config: PolicyConfig,
    campaign_id: int,
    now: datetime,
) -> Summary:
    """Counts by decision and rule, and samples by rule id; no side effects."""
    now = now.astimezone(UTC)  # see launch
    camp = campaign_mod.get(conn, campaign_id)
    summary = Summary()
    columns = contact_columns(camp.channel) + SAMPLE_COLUMNS
    with _audience_facts(conn, config, camp, now, columns) as (chunks, no_register, _):
        for row, decision in itertools.chain.from_iterable(
            _decided(chunks, no_register, config, camp, now)
        ):
            summary.audience += 1
            counted = summary.by_decision[(decision.decision, decision.rule)] + 1
            summary.by_decision[(decision.decision, decision.rule)] = counted
            if counted <= SAMPLES_PER_REASON:
                summary.samples[decision.rule].append(
                    {**_sample(row), "decision": decision.decision, "rule": decision.rule,
                     "basis": decision.basis}
                )  # fmt: skip
    summary.batches = -(-summary.eligible // camp.batch_size)
    return summary


def launch(
    conn: Connection,
    hasher: Hasher,
    config: PolicyConfig,
    campaign_id: int,
    now: datetime,
) -> Summary:
    """Decide every audience member, store the recipients with their decisions, create
    the batches and mark the campaign running, all in the caller's transaction. The
    caller enqueues the batches after the commit (`batches_to_enqueue`)."""
    # In UTC from here on: SQLite stores a zone-aware time without its offset, and a day
    # counted back from a local time moves by an hour across a DST change (ES-5's age).
    now = now.astimezone(UTC)
    camp = campaign_mod.get(conn, campaign_id)
    if camp.state != campaign_mod.DRAFT:
        raise campaign_mod.CampaignError(
            f"campaign {campaign_id}: only a draft can be launched (it is {camp.state})"
        )
    # Before anyone is decided or counted: what would refuse the sends or the call list
    # later refuses the launch now (the settings, the register and the draft may have
    # changed since it was created).
    preflight.check_launch(conn, camp, config, now)
    at = ADDRESS_AT
    summary = Summary()
    counts = summary.by_decision
    queued = 0
    size = camp.batch_size
    with ExitStack() as stack:
        chunks, no_register, ahead = stack.enter_context(
            _audience_facts(conn, config, camp, now, contact_columns(camp.channel))
        )
        writer = stack.enter_context(RecipientWriter(conn, streaming=ahead))
        for row, decision in itertools.chain.from_iterable(
            _decided(chunks, no_register, config, camp, now)
        ):
            counts[(decision.decision, decision.rule)] += 1
            key = row[at]
            if decision.allowed:
                writer.add(
                    (
                        camp.id, row[0], key, row[1], SEND, decision.rule, decision.basis,
                        " ".join(decision.evidence), QUEUED, queued // size, now,
                    )
                )  # fmt: skip
                queued += 1
            else:
                writer.add(
                    (
                        camp.id, row[0], key if key is not None else b"", None,
                        decision.decision, decision.rule, decision.basis,
                        " ".join(decision.evidence), STATE_EXCLUDED, None, now,
                    )
                )  # fmt: skip
    summary.audience = counts.total()
    summary.batches = -(-queued // size)
    if summary.batches:
        insert_rows(
            conn,
            batches,
            ("campaign_id", "batch_no", "state", "size", "enqueued_at", "attempts"),
            (
                (camp.id, n, QUEUED, min(size, queued - n * size), now, 0)
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
