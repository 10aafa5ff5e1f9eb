"""Merging by identity batch by batch gives what merging row by row gives, with or
without the key filter; and what replaced the foreign keys of consent records and
contact sources (migration 0006) holds: a contact they refer to cannot be deleted,
also not by a purge that waited for an import, and a contact committed while an
import runs is merged, not duplicated."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from campaigns import people
from campaigns.bulkcopy import copy_rows
from campaigns.importresult import IMPORTED
from campaigns.intake import import_lead_file
from campaigns.keyfilter import load_contact_keys
from campaigns.merge import Merger
from campaigns.retention import purge_expired_leads
from campaigns.schema import consent_records, contact_sources, contacts
from campaigns.sources.partner import LeadFormat
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.ledger import ERASURE, Ledger
from suppression.policy import PolicyConfig
from tests import clock, partner_files
from tests.partner_files import person

pytestmark = pytest.mark.integration
NOW = clock.NOW  # the imports' (and the purge's and the erasure's) moment


@dataclass(frozen=True)
class Person:
    """One incoming row as Merger reads it (campaigns.contactlookup.Incoming)."""

    email: str | None
    email_hash: bytes | None
    phone: str | None
    phone_type: str | None
    phone_hash: bytes | None
    first_name: str | None
    last_name: str | None
    street: str | None
    postal_code: str | None
    city: str | None
    name_address_hash: bytes | None


def incoming(
    hasher: Hasher, e: int | None, p: int | None, name: int | None, home: int | None
) -> Person:
    email = f"lead{e}@example.no" if e is not None else None
    phone = f"+474100000{p}" if p is not None else None
    street = f"Kongens gate {home}" if home is not None else None
    return Person(
        email,
        hasher.digest("email", email) if email else None,
        phone,
        "mobile" if phone else None,
        hasher.digest("phone", phone) if phone else None,
        partner_files.FIRST[name] if name is not None else None,
        partner_files.LAST[name] if name is not None else None,
        street,
        "0153" if street else None,
        "Oslo" if street else None,
        hasher.digest("name_address", f"{name}|{home}") if street else None,
    )


# Few emails and phones, so that rows meet: duplicates, fills, conflicts.
rows_of = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 5)),
        st.one_of(st.none(), st.integers(0, 5)),
        st.one_of(st.none(), st.integers(0, 3)),
        st.one_of(st.none(), st.integers(1, 3)),
    ).filter(lambda r: r[0] is not None or r[1] is not None),
    max_size=25,
)


def merged(
    conn: Connection,
    hasher: Hasher,
    before: list[Person],
    rows: list[Person],
    batch: int,
    *,
    filtered: bool,
) -> tuple[list[Any], set[tuple[Any, ...]], dict[str, int]]:
    """Per row the values of the contact it joined (None: refused), every contact's
    values, and the counts, after `before` was merged as contacts of an earlier import."""
    Merger(conn, hasher.key_id, NOW, customer=True).merge(before)
    known = load_contact_keys(conn, 2 * len(rows)) if filtered else None
    merger = Merger(conn, hasher.key_id, NOW, partner_lead=True, known=known)
    ids: list[int | None] = []
    for start in range(0, len(rows), batch):
        ids.extend(merger.merge(rows[start : start + batch]))
    columns = [
        contacts.c[name]
        for name in (*Person.__dataclass_fields__, "is_partner_lead", "is_customer")
    ]
    stored = {row[0]: tuple(row[1:]) for row in conn.execute(select(contacts.c.id, *columns))}
    return [stored[i] if i is not None else None for i in ids], set(stored.values()), merger.counts


def by_the_rules(
    before: list[Person], rows: list[Person]
) -> tuple[list[Any], set[tuple[Any, ...]], dict[str, int]]:
    """`merged` as campaigns.merge's docstring states the rules, one row at a time."""
    held: list[dict[str, Any]] = []
    counts = {"new": 0, "merged": 0, "duplicate": 0, "identity_conflict": 0}

    def merge(row: Person, partner: bool) -> dict[str, Any] | None:
        ce = next((c for c in held if row.email_hash and c["email_hash"] == row.email_hash), None)
        cp = next((c for c in held if row.phone_hash and c["phone_hash"] == row.phone_hash), None)
        target = ce or cp
        if target is None:
            target = {**row.__dict__, "is_partner_lead": partner, "is_customer": not partner}
            target["own"] = partner
            held.append(target)
            counts["new"] += partner
            return target
        if (
            (ce is not None and ce is not target)
            or (cp is not None and cp is not target)
            or target["email_hash"] not in (None, row.email_hash or target["email_hash"])
            or target["phone_hash"] not in (None, row.phone_hash or target["phone_hash"])
        ):
            counts["identity_conflict"] += partner
            return None
        if partner:
            counts["duplicate" if target["own"] else "merged"] += 1
            target["is_partner_lead"] = True
        if target["email_hash"] is None and row.email_hash is not None:
            target.update(email=row.email, email_hash=row.email_hash)
        if target["phone_hash"] is None and row.phone_hash is not None:
            target.update(phone=row.phone, phone_type=row.phone_type, phone_hash=row.phone_hash)
        for name in ("first_name", "last_name"):
            if target[name] is None:
                target[name] = getattr(row, name)
        if (
            (row.street or row.postal_code)
            and target["street"] is None
            and target["postal_code"] is None
        ):
            for name in ("street", "postal_code", "city", "name_address_hash"):
                target[name] = getattr(row, name)
        return target

    for row in before:
        merge(row, partner=False)
    names = (*Person.__dataclass_fields__, "is_partner_lead", "is_customer")
    joined = [merge(row, partner=True) for row in rows]
    return (
        [tuple(c[n] for n in names) if c is not None else None for c in joined],
        {tuple(c[n] for n in names) for c in held},
        counts,
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(before=rows_of, rows=rows_of, batch=st.integers(2, 9))
def test_batches_with_the_key_filter_merge_as_single_rows_without_it(
    engine: Engine,
    hasher: Hasher,
    before: list[tuple[int | None, ...]],
    rows: list[tuple[int | None, ...]],
    batch: int,
) -> None:
    earlier = [incoming(hasher, *r) for r in before]
    incoming_rows = [incoming(hasher, *r) for r in rows]
    outcomes = []
    for size, filtered in ((1, False), (batch, True), (batch, False)):
        with engine.connect() as conn:
            outcomes.append(merged(conn, hasher, earlier, incoming_rows, size, filtered=filtered))
            conn.rollback()
    assert outcomes[0] == by_the_rules(earlier, incoming_rows)
    assert outcomes[1] == outcomes[0]
    assert outcomes[2] == outcomes[0]


def test_a_contact_that_consents_or_sources_refer_to_cannot_be_deleted(
    engine: Engine, hasher: Hasher
) -> None:
    with engine.begin() as conn:
        kept, gone = Merger(conn, hasher.key_id, NOW).merge(
            [incoming(hasher, 1, 1, 0, 1), incoming(hasher, 2, 2, 1, 2)]
        )
        conn.execute(
            insert(contact_sources).values(contact_id=kept, source="partner:a", imported_at=NOW)
        )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(contacts.delete().where(contacts.c.id.in_([kept, gone])))
    with engine.begin() as conn:
        conn.execute(contacts.delete().where(contacts.c.id == gone))
        assert conn.execute(select(contacts.c.id)).scalars().all() == [kept]


# SQLite has one writer at a time: the transactions of these tests cannot interleave
# there, so they run on PostgreSQL only (the store fixture with its one PostgreSQL param;
# collected once, as [postgresql], never skipped).
postgresql_only = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)


def waiting_for_a_lock(engine: Engine, pid: int) -> None:
    with engine.connect() as conn:
        for _ in range(500):
            waits = conn.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one()
            if waits == "Lock":
                return
            time.sleep(0.01)
    raise AssertionError("the other transaction never waited for the lock")


@pytest.mark.travel  # the purge's retention period (GD-2)
@postgresql_only
def test_a_purge_that_waited_for_an_import_joining_the_lead_fails_instead_of_orphaning_it(
    engine: Engine, hasher: Hasher
) -> None:
    assert engine.dialect.name == "postgresql"
    long_ago = NOW - timedelta(days=400)
    lead = incoming(hasher, 1, 1, 0, 1)
    with engine.begin() as conn:
        (contact_id,) = Merger(conn, hasher.key_id, long_ago, partner_lead=True).merge([lead])
        conn.execute(
            insert(contact_sources).values(
                contact_id=contact_id, source="partner:a", imported_at=long_ago
            )
        )
    purge: dict[str, Any] = {}

    def purge_expired() -> None:
        try:
            with engine.begin() as conn:
                purge["pid"] = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                purge["result"] = purge_expired_leads(conn, NOW, 365)
        except IntegrityError as exc:
            purge["error"] = exc

    with engine.begin() as importing:
        # The import joins the lead (and locks it) and writes its source, uncommitted.
        assert Merger(importing, hasher.key_id, NOW, partner_lead=True).merge([lead]) == [
            contact_id
        ]
        copy_rows(
            importing,
            contact_sources,
            ("contact_id", "source", "imported_at"),
            [(contact_id, "partner:b", NOW)],
        )
        purging = threading.Thread(target=purge_expired)
        purging.start()
        while "pid" not in purge:
            time.sleep(0.01)
        waiting_for_a_lock(engine, purge["pid"])
    purging.join(timeout=30)
    assert "error" in purge and "result" not in purge
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count())
                .select_from(contact_sources)
                .where(contact_sources.c.contact_id == contact_id)
            ).scalar_one()
            == 2
        )
        assert conn.execute(select(contacts.c.id)).scalars().all() == [contact_id]


@postgresql_only
def test_a_contact_committed_after_the_import_read_the_keys_is_merged_not_duplicated(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    assert engine.dialect.name == "postgresql"
    path = partner_files.write(tmp_path / "leads.csv", [person(n) for n in range(1, 6)])
    email = "lead4@example.no"
    committed: list[int] = []
    mergers = 0  # of the import: one per attempt
    inside = False

    @event.listens_for(engine, "before_cursor_execute")
    def commit_a_contact_once(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal mergers, inside
        # Merger's first statement: the import has just read the key filter.
        if inside or not statement.startswith("SET LOCAL jit = off"):
            return
        mergers += 1
        if mergers > 1:
            return
        inside = True
        with engine.connect() as other, other.begin():  # another connection, another transaction
            customer = Person(email, hasher.digest("email", email), *([None] * 9))
            committed.extend(Merger(other, hasher.key_id, NOW, customer=True).merge([customer]))  # type: ignore[misc]
        inside = False

    read: list[int] = []
    result = import_lead_file(
        engine,
        hasher,
        policy_config,
        "partner:a",
        LeadFormat(),
        path,
        now=NOW,
        progress=read.append,
    )
    event.remove(engine, "before_cursor_execute", commit_a_contact_once)
    assert (result.status, result.accepted, result.new_contacts, result.merged) == (
        IMPORTED,
        5,
        4,
        1,
    )
    # The first attempt failed on the unique index; the second looked every hash up.
    assert mergers == 2
    assert sum(read) == path.stat().st_size  # read twice, reported once
    with engine.connect() as conn:
        row = conn.execute(select(contacts).where(contacts.c.id == committed[0])).one()
        assert (row.is_customer, row.is_partner_lead, row.phone) == (True, True, "+4741000004")
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 5
        consents = select(func.count()).select_from(consent_records)
        assert (
            conn.execute(consents.where(consent_records.c.contact_id == committed[0])).scalar_one()
            == 1
        )


def test_the_key_filter_read_from_the_store_holds_every_contacts_email_and_phone(
    engine: Engine, hasher: Hasher
) -> None:
    people = [incoming(hasher, n, n + 1, None, None) for n in range(0, 400, 2)]
    with engine.begin() as conn:
        Merger(conn, hasher.key_id, NOW).merge(people)
        held = load_contact_keys(conn, 0)
    assert all(p.email_hash in held and p.phone_hash in held for p in people)
    others = [hasher.digest("email", f"other{n}@example.no") for n in range(400)]
    assert sum(key in held for key in others) < 40


def _in_a_thread(engine: Engine, work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """`work(conn)` in its own transaction on another thread; its backend pid, result or error."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            with engine.begin() as conn:
                out["pid"] = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                out["result"] = work(conn)
        except Exception as exc:  # the test asserts on it
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while "pid" not in out and "error" not in out and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "pid" in out, out.get("error", "the other transaction never started")
    return thread, out


@postgresql_only
def test_two_imports_filling_one_contact_keep_both_fills(engine: Engine, hasher: Hasher) -> None:
    """The second import waits for the first and merges into what it committed, instead of
    writing back the contact as it read it (which would drop the name and address the
    first one filled: they are no key, so a FOR KEY SHARE read would not wait)."""
    assert engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        (contact_id,) = Merger(conn, hasher.key_id, NOW).merge(
            [incoming(hasher, 1, None, None, None)]
        )
    with engine.begin() as first:
        assert Merger(first, hasher.key_id, NOW).merge([incoming(hasher, 1, None, 2, 2)]) == [
            contact_id
        ]
        second, out = _in_a_thread(
            engine,
            lambda conn: Merger(conn, hasher.key_id, NOW).merge(
                [incoming(hasher, 1, 1, None, None)]
            ),
        )
        waiting_for_a_lock(engine, out["pid"])
    second.join(timeout=30)
    assert out.get("result") == [contact_id], out.get("error")
    with engine.connect() as conn:
        row = conn.execute(select(contacts).where(contacts.c.id == contact_id)).one()
    assert (row.email, row.phone, row.first_name, row.street) == (
        "lead1@example.no",
        "+4741000001",
        partner_files.FIRST[2],
        "Kongens gate 2",
    )
    assert row.phone_hash == hasher.digest("phone", "+4741000001")


def test_a_later_batch_looks_up_only_after_the_writes_an_earlier_batch_submitted(
    engine: Engine, hasher: Hasher
) -> None:
    """Writes may be done later (the import's writer thread); `drain` comes before a
    batch's lookups, so a person again in the next batch joins the contact, filled."""
    pending: list[Any] = []

    def drain() -> None:
        while pending:
            pending.pop(0)()

    with engine.begin() as conn:
        merger = Merger(conn, hasher.key_id, NOW, submit=pending.append, drain=drain)
        (first,) = merger.merge([incoming(hasher, 1, None, 1, 1)])
        assert pending and conn.execute(select(func.count()).select_from(contacts)).scalar() == 0
        assert merger.merge([incoming(hasher, 1, 1, 1, 1)]) == [first]
        drain()
        row = conn.execute(select(contacts.c.id, contacts.c.phone)).one()
    assert tuple(row) == (first, "+4741000001")


@postgresql_only
def test_an_erasure_waits_for_an_import_joining_the_person_and_erases_what_it_wrote(
    engine: Engine, hasher: Hasher
) -> None:
    """ALL-4: an import that joined the person before the erasure cannot bring back a
    plaintext or leave a consent record behind; the phone it added is suppressed too."""
    assert engine.dialect.name == "postgresql"
    email = "lead1@example.no"
    with engine.begin() as conn:
        (contact_id,) = Merger(conn, hasher.key_id, NOW).merge([incoming(hasher, 1, None, 1, 1)])
    with engine.begin() as importing:
        assert Merger(importing, hasher.key_id, NOW).merge([incoming(hasher, 1, 1, 1, 1)]) == [
            contact_id
        ]
        importing.execute(
            insert(consent_records).values(
                contact_id=contact_id,
                source="partner:a",
                given_at=NOW,
                channels="email,sms",
                wording_version="v1",
                captured_at="https://example.no/skjema",
                company_named="Trygg Hjem Alarm AS",
                explicit_call_request=False,
                multi_company_form=False,
                from_partner=True,
                recorded_at=NOW,
            )
        )
        erasing, out = _in_a_thread(
            engine,
            lambda conn: people.forget(conn, hasher, email_identity(email), now=NOW, actor="test"),
        )
        waiting_for_a_lock(engine, out["pid"])
    erasing.join(timeout=30)
    assert "error" not in out, out.get("error")
    assert out["result"]["consents_deleted"] == 1
    with engine.connect() as conn:
        row = conn.execute(select(contacts).where(contacts.c.id == contact_id)).one()
        assert (row.email, row.phone, row.first_name, row.street) == (None, None, None, None)
        left = select(func.count()).select_from(consent_records)
        assert conn.execute(left.where(consent_records.c.contact_id == contact_id)).scalar() == 0
        phone = Ledger(conn, hasher).status("phone", "+4741000001")
    assert [e.reason for e in phone.entries] == [ERASURE]
