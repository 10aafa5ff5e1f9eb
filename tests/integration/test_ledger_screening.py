"""Bulk screening (suppression/screening.py) on both stores: exactly the held identities come
back, with their ledger entries and register reservations, whatever path the size picks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine

from suppression import screening
from suppression.identity import phone_identity
from suppression.keys import Hasher
from suppression.ledger import ALARM_CONTACT, OBJECTION, UNSUBSCRIBE, Ledger, Status
from suppression.register import active_snapshot, load_snapshot, lookup
from suppression.screening import Hit, Reservation, screen
from tests.clock import NOW, TODAY, UTC_NOW

pytestmark = pytest.mark.integration

# The entries happened over the days after T0, all before the suite's instant.
T0 = UTC_NOW - timedelta(days=30)
PEOPLE = 5_000  # above screening.SMALL: the COPY path on PostgreSQL
RESERVATIONS = {0: "telefon", 1: "post", 2: "begge"}


def phone(i: int) -> str:
    return f"+4741{i:06d}"


def in_ledger(i: int) -> bool:
    return i % 7 == 0


def in_register(i: int) -> bool:
    return i % 5 == 0


def _fill(conn: Connection, hasher: Hasher, tmp_path: Path) -> list[bytes]:
    """Ledger entries for every 7th person (two for every 49th), a register snapshot
    listing every 5th; returns every person's digest."""
    ledger = Ledger(conn, hasher)
    for i in range(0, PEOPLE, 7):
        key = hasher.hash(phone_identity(phone(i)))
        ledger.add(
            key,
            "phone",
            scope=("sms", "phone", "all")[i % 3],
            reason=UNSUBSCRIBE,
            source="link",
            occurred_at=T0 + timedelta(minutes=i),
            now=NOW,
        )
        if i % 49 == 0:
            ledger.add(
                key,
                "phone",
                scope="all",
                reason=OBJECTION,
                source="mailbox",
                occurred_at=T0 - timedelta(days=1),
                now=NOW,
            )
    lines = ["telefon;reservasjon"] + [
        f"{phone(i)};{RESERVATIONS[(i // 5) % 3]}" for i in range(0, PEOPLE, 5)
    ]
    path = tmp_path / "register.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_snapshot(conn, hasher, path, TODAY, now=NOW)
    return [hasher.digest("phone", phone(i)) for i in range(PEOPLE)]


def _naive(conn: Connection, hasher: Hasher, digests: list[bytes]) -> dict[bytes, Hit]:
    """One query per identity: the baseline the bulk path must agree with."""
    snapshot = active_snapshot(conn)
    expected: dict[bytes, Hit] = {}
    for i, digest in enumerate(digests):
        status = Ledger(conn, hasher).status("phone", phone(i))
        hit = lookup(conn, snapshot, [digest]) if snapshot else None
        if status.entries or hit:
            expected[digest] = Hit(
                status, Reservation(hit.reserved_phone, hit.reserved_post) if hit else None
            )
    return expected


@pytest.mark.parametrize(
    "sizes",
    [{}, {"copy_chunk": 300, "round_size": 1_000}],
    ids=["one round", "many rounds of small COPY chunks"],
)
def test_screening_many_identities_returns_exactly_the_held_ones(
    engine: Engine, hasher: Hasher, tmp_path: Path, sizes: dict[str, int]
) -> None:
    with engine.begin() as conn:
        digests = _fill(conn, hasher, tmp_path)
    with engine.begin() as conn:
        found = dict(screen(conn, iter(digests), **sizes))
        expected = _naive(conn, hasher, digests)
    held = {digests[i] for i in range(PEOPLE) if in_ledger(i) or in_register(i)}
    assert set(found) == held
    assert found == expected
    for i in (0, 5, 7, 49):
        hit = found[digests[i]]
        assert bool(hit.ledger.entries) == in_ledger(i)
        assert (hit.register is not None) == in_register(i)
    assert [e.reason for e in found[digests[49]].ledger.entries] == [OBJECTION, UNSUBSCRIBE]
    assert found[digests[0]].register == Reservation(reserved_phone=True, reserved_post=False)
    assert found[digests[5]].register == Reservation(reserved_phone=False, reserved_post=True)
    assert found[digests[10]].register == Reservation(reserved_phone=True, reserved_post=True)


def test_hits_come_back_in_digest_order_with_times_in_utc(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        digests = _fill(conn, hasher, tmp_path)
        found = list(screen(conn, digests))
    assert [d for d, _ in found] == sorted(d for d, _ in found)
    entry = dict(found)[digests[7]].ledger.entries[0]
    assert entry.occurred_at == T0 + timedelta(minutes=7)
    assert entry.occurred_at.utcoffset() == timedelta(0)


def test_a_few_identities_take_the_in_list_path_with_the_same_answer(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        digests = _fill(conn, hasher, tmp_path)
        sample = digests[:30]
        assert len(sample) < screening.SMALL
        found = dict(screen(conn, sample))
        assert found == _naive(conn, hasher, sample)
    assert set(found) == {digests[i] for i in range(30) if in_ledger(i) or in_register(i)}


def test_a_digest_given_twice_is_reported_once(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        digests = _fill(conn, hasher, tmp_path)
        found = [d for d, _ in screen(conn, digests + digests[:100])]
    assert len(found) == len(set(found))


def test_without_a_snapshot_only_the_ledger_answers(engine: Engine, hasher: Hasher) -> None:
    digests = [hasher.digest("phone", phone(i)) for i in range(PEOPLE)]
    with engine.begin() as conn:
        Ledger(conn, hasher).add(
            hasher.hash(phone_identity(phone(3))),
            "phone",
            scope="sms",
            reason=UNSUBSCRIBE,
            source="link",
            now=NOW,
        )
        found = dict(screen(conn, digests))
    assert list(found) == [digests[3]]
    assert found[digests[3]].register is None


def test_register_false_screens_the_ledger_only(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        digests = _fill(conn, hasher, tmp_path)
        found = dict(screen(conn, digests, register=False))
    assert set(found) == {digests[i] for i in range(PEOPLE) if in_ledger(i)}
    assert all(hit.register is None for hit in found.values())


def test_nothing_to_screen_yields_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        assert list(screen(conn, [])) == []


def test_the_input_is_consumed_lazily(engine: Engine, hasher: Hasher) -> None:
    consumed = 0

    def digests() -> Iterator[bytes]:
        nonlocal consumed
        for i in range(PEOPLE):
            consumed += 1
            yield hasher.digest("phone", phone(i))

    with engine.begin() as conn:
        stream = screen(conn, digests())
        assert consumed == 0
        assert list(stream) == []
    assert consumed == PEOPLE


def test_two_screenings_may_be_open_in_one_transaction(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        digests = _fill(conn, hasher, tmp_path)
        first = screen(conn, digests)
        head = next(first)
        second = dict(screen(conn, digests))
        rest = dict(first)
    assert {head[0], *rest} == set(second)


@pytest.mark.parametrize("count", [1, screening.SMALL], ids=["IN list", "COPY"])
def test_a_digest_of_the_wrong_size_is_refused(engine: Engine, count: int) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="32-byte"):
        list(screen(conn, [b"\x00" * 32] * count + [b"short"]))


def test_ledger_screen_gives_the_status_of_each_hit(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        digests = _fill(conn, hasher, tmp_path)
        Ledger(conn, hasher).add(
            hasher.hash(phone_identity(phone(1))),
            "phone",
            kind="exclusion",
            scope="all",
            reason=ALARM_CONTACT,
            source="crm",
            now=NOW,
        )
        found = dict(Ledger(conn, hasher).screen(digests))
    assert set(found) == {digests[i] for i in range(PEOPLE) if in_ledger(i) or i == 1}
    assert all(isinstance(s, Status) for s in found.values())
    assert found[digests[1]].blocking("email")[0].reason == ALARM_CONTACT
