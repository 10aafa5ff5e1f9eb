"""PreparedCopy: rows formatted in one thread, written by another, in the caller's transaction."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from campaigns.bulkcopy import PreparedCopy
from campaigns.schema import contacts
from tests.clock import UTC_NOW

pytestmark = pytest.mark.integration
NOW = UTC_NOW  # the rows' times: the suite's instant (in UTC, as an import stores them)
COLUMNS = (
    "id",
    "email",
    "email_hash",
    "key_id",
    "first_name",
    "city",
    "is_partner_lead",
    "is_customer",
    "created_at",
    "updated_at",
)


def _row(n: int, first_name: str | None) -> tuple[object, ...]:
    email = f"person{n}@example.com"
    return (n, email, bytes([n]) * 32, "k1", first_name, None, True, False, NOW, NOW)


def _utc(value: object) -> object:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def test_rows_formatted_here_are_written_by_another_thread_when_called(engine: Engine) -> None:
    rows = [_row(1, "Åse Ødegård"), _row(2, None), _row(3, "tab\tand\nnewline\\")]
    with engine.begin() as conn:
        prepared = PreparedCopy(conn, contacts, COLUMNS, iter(rows))
        assert prepared.count == 3
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 0
        done: list[int] = []
        writing = threading.Thread(target=lambda: done.append(prepared()))
        writing.start()
        writing.join()
        assert done == [3]
        stored = conn.execute(
            select(*(contacts.c[name] for name in COLUMNS)).order_by(contacts.c.id)
        ).all()
    # SQLite hands times back without their zone (stored as UTC)
    assert [tuple(_utc(v) for v in r) for r in stored] == rows


def test_a_unique_violation_is_raised_when_called_and_rolls_the_transaction_back(
    engine: Engine,
) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        PreparedCopy(conn, contacts, COLUMNS, [_row(1, "A")])()
        again = PreparedCopy(conn, contacts, COLUMNS, [_row(2, "B"), _row(1, "A")])
        again()  # the id (and email hash) of the first row again
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 0
