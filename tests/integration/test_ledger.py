"""The ledger on both stores: append-only, idempotent, and what it blocks (ALL-1, ALL-2, ALL-5)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from suppression.identity import email_identity, phone_identity
from suppression.keys import Hasher
from suppression.ledger import OBJECTION, UNSUBSCRIBE, Ledger, LedgerError, default_event
from suppression.schema import ledger_entries
from tests.clock import NOW, OSLO, UTC_NOW

pytestmark = pytest.mark.integration

# When the events happened: a month before they are recorded at the suite's instant.
T0 = UTC_NOW - timedelta(days=30)
OLA = email_identity("ola.nordmann@example.com")
KARI = phone_identity("41234567")


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one())


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(select(ledger_entries).order_by(ledger_entries.c.id))
        ]


def test_the_same_source_event_added_twice_is_one_row(engine: Engine, hasher: Hasher) -> None:
    with engine.begin() as conn:
        ledger = Ledger(conn, hasher)
        first = ledger.add(
            hasher.hash(OLA), "email", scope="email", reason=UNSUBSCRIBE, source="link", now=NOW
        )
        again = ledger.add(
            hasher.hash(OLA), "email", scope="email", reason=UNSUBSCRIBE, source="link", now=NOW
        )
    assert (first, again) == (True, False)
    assert _count(engine) == 1


def test_the_same_event_in_a_later_transaction_is_still_one_row(
    engine: Engine, hasher: Hasher
) -> None:
    for _ in range(3):
        with engine.begin() as conn:
            Ledger(conn, hasher).add(
                hasher.hash(KARI),
                "phone",
                scope="sms",
                reason=UNSUBSCRIBE,
                source="twilio",
                source_event="SM0123",
                now=NOW,
            )
    assert _count(engine) == 1


def test_a_new_event_from_the_same_source_is_a_new_row(engine: Engine, hasher: Hasher) -> None:
    with engine.begin() as conn:
        ledger = Ledger(conn, hasher)
        for event in ("SM1", "SM2"):
            ledger.add(
                hasher.hash(KARI),
                "phone",
                scope="sms",
                reason=UNSUBSCRIBE,
                source="twilio",
                source_event=event,
                now=NOW,
            )
    assert _count(engine) == 2


def test_add_many_counts_only_new_events_even_with_duplicates_in_the_batch(
    engine: Engine, hasher: Hasher
) -> None:
    def row(value: str, event: str) -> dict[str, object]:
        return {
            "key_hash": hasher.digest("email", value),
            "key_id": hasher.key_id,
            "identity_kind": "email",
            "kind": "suppression",
            "scope": "email",
            "reason": UNSUBSCRIBE,
            "source": "import:list.txt",
            "source_event": event,
            "evidence_ref": "list.txt:line 1",
            "occurred_at": T0,
            "recorded_at": T0,
            "actor": "test",
        }

    rows = [row(f"person{i}@example.com", "e") for i in range(5)]
    with engine.begin() as conn:
        assert Ledger(conn, hasher).add_many(rows + rows[:2]) == 5
    with engine.begin() as conn:
        assert Ledger(conn, hasher).add_many(rows) == 0
        assert Ledger(conn, hasher).add_many([*rows, row("new@example.com", "e")]) == 1
    assert _count(engine) == 6


def test_recording_more_never_changes_an_earlier_row(engine: Engine, hasher: Hasher) -> None:
    key = hasher.hash(OLA)
    with engine.begin() as conn:
        Ledger(conn, hasher).add(
            key,
            "email",
            scope="all",
            reason=OBJECTION,
            source="mailbox",
            occurred_at=T0,
            evidence_ref="mail:1",
            now=NOW,
        )
    before = _rows(engine)
    with engine.begin() as conn:
        ledger = Ledger(conn, hasher)
        # The same event again with other details: the first record stands.
        ledger.add(
            key,
            "email",
            scope="all",
            reason=OBJECTION,
            source="mailbox",
            occurred_at=T0 + timedelta(days=1),
            evidence_ref="mail:2",
            now=NOW,
        )
        ledger.add(
            key,
            "email",
            kind="consent",
            scope="email",
            reason="consent",
            source="web",
            evidence_ref="consent:7",
            occurred_at=T0 + timedelta(days=2),
            now=NOW,
        )
    after = _rows(engine)
    assert after[: len(before)] == before
    assert len(after) == 2


def test_the_ledger_offers_no_way_to_update_or_delete() -> None:
    assert not [
        name for name in dir(Ledger) if name.startswith(("update", "delete", "remove", "lift"))
    ]


@pytest.mark.parametrize(
    ("scope", "evidence"),
    [("email", ""), ("all", "consent:1")],
    ids=["without evidence", "for every channel at once"],
)
def test_all_5_a_consent_without_evidence_or_channel_is_refused(
    engine: Engine, hasher: Hasher, scope: str, evidence: str
) -> None:
    with engine.begin() as conn, pytest.raises(LedgerError, match="consent"):
        Ledger(conn, hasher).add(
            hasher.hash(OLA),
            "email",
            kind="consent",
            scope=scope,
            reason="consent",
            source="web",
            evidence_ref=evidence,
            now=NOW,
        )
    assert _count(engine) == 0


@pytest.mark.parametrize(
    ("field", "value"), [("scope", "fax"), ("kind", "maybe")], ids=["scope", "kind"]
)
def test_an_unknown_scope_or_kind_is_refused_naming_the_field(
    engine: Engine, hasher: Hasher, field: str, value: str
) -> None:
    kwargs: dict[str, str] = {"scope": "email", "kind": "suppression", field: value}
    with engine.begin() as conn, pytest.raises(LedgerError, match=f"^{field}:"):
        Ledger(conn, hasher).add(
            hasher.hash(OLA), "email", reason=UNSUBSCRIBE, source="x", **kwargs, now=NOW
        )


def test_a_naive_time_is_refused(engine: Engine, hasher: Hasher) -> None:
    with engine.begin() as conn, pytest.raises(LedgerError, match="timezone"):
        Ledger(conn, hasher).add(
            hasher.hash(OLA),
            "email",
            scope="email",
            reason=UNSUBSCRIBE,
            source="x",
            occurred_at=T0.replace(tzinfo=None),
            now=NOW,
        )


def test_status_reads_back_times_in_utc_oldest_first(engine: Engine, hasher: Hasher) -> None:
    oslo_time = T0.astimezone(OSLO)  # T0 as Oslo writes it, +01:00 or +02:00
    assert oslo_time.utcoffset() != timedelta(0)
    with engine.begin() as conn:
        ledger = Ledger(conn, hasher)
        ledger.add(
            hasher.hash(OLA),
            "email",
            scope="sms",
            reason=UNSUBSCRIBE,
            source="b",
            occurred_at=T0 + timedelta(hours=1),
            now=NOW,
        )
        ledger.add(
            hasher.hash(OLA),
            "email",
            scope="email",
            reason=UNSUBSCRIBE,
            source="a",
            occurred_at=oslo_time,
            now=NOW,
        )
    with engine.connect() as conn:
        status = Ledger(conn, hasher).status("email", OLA.value)
    assert [e.source for e in status.entries] == ["a", "b"]
    assert status.entries[0].occurred_at == T0
    assert status.entries[0].occurred_at.utcoffset() == timedelta(0)


def test_all_5_through_the_store_a_later_consent_lifts_one_channel_only(
    engine: Engine, hasher: Hasher
) -> None:
    key = hasher.hash(OLA)
    with engine.begin() as conn:
        ledger = Ledger(conn, hasher)
        ledger.add(
            key, "email", scope="all", reason=UNSUBSCRIBE, source="link", occurred_at=T0, now=NOW
        )
        ledger.add(
            key,
            "email",
            kind="consent",
            scope="email",
            reason="consent",
            source="web",
            evidence_ref="consent:12",
            occurred_at=T0 + timedelta(days=3),
            now=NOW,
        )
        ledger.add(
            key,
            "email",
            kind="consent",
            scope="sms",
            reason="consent",
            source="web",
            evidence_ref="consent:11",
            occurred_at=T0 - timedelta(days=3),
            now=NOW,
        )
    with engine.connect() as conn:
        status = Ledger(conn, hasher).status("email", OLA.value)
    assert not status.suppressed("email")
    assert status.suppressed("sms")  # its consent came before the no
    assert status.suppressed("phone") and status.suppressed("post")


def test_all_1_through_the_store_an_objection_stops_every_scope(
    engine: Engine, hasher: Hasher
) -> None:
    with engine.begin() as conn:
        Ledger(conn, hasher).add(
            hasher.hash(KARI),
            "phone",
            scope="phone",
            reason=OBJECTION,
            source="call_outcome",
            now=NOW,
        )
    with engine.connect() as conn:
        status = Ledger(conn, hasher).status("phone", KARI.value)
    assert all(status.suppressed(s) for s in ("email", "sms", "phone", "post"))


def test_all_2_through_the_store_a_channel_opt_out_stops_that_channel(
    engine: Engine, hasher: Hasher
) -> None:
    with engine.begin() as conn:
        Ledger(conn, hasher).add(
            hasher.hash(KARI), "phone", scope="sms", reason=UNSUBSCRIBE, source="twilio", now=NOW
        )
    with engine.connect() as conn:
        status = Ledger(conn, hasher).status("phone", KARI.value)
    assert [s for s in ("email", "sms", "phone", "post") if status.suppressed(s)] == ["sms"]


def test_entries_made_under_a_previous_key_still_match_after_rotation(
    engine: Engine, hasher: Hasher
) -> None:
    with engine.begin() as conn:
        Ledger(conn, hasher).add(
            hasher.hash(OLA), "email", scope="all", reason=UNSUBSCRIBE, source="link", now=NOW
        )
    rotated = Hasher(b"a-brand-new-secret-key-0123456789", previous=[hasher.secret])
    with engine.connect() as conn:
        assert Ledger(conn, rotated).status("email", OLA.value).suppressed("email")
        assert (
            not Ledger(conn, Hasher(b"an-unrelated-secret-0123456789ab"))
            .status("email", OLA.value)
            .entries
        )


def test_the_default_event_makes_a_repeated_manual_no_idempotent() -> None:
    assert default_event("suppression", "all", UNSUBSCRIBE) == "suppression:all:unsubscribe"
