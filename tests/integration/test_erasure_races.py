"""An erasure and an import of the same person, each waiting for the other (ALL-4).

Whichever comes first, the end is the same: the person's no under every identity the
store held of them, no plaintext, no source and no consent record left. On PostgreSQL
the two meet at the contact's row lock; on SQLite at the database's write lock, which
the erasure takes before it reads (`campaigns.contactlookup.lock_for_writing`).

Each test waits until the second transaction is seen waiting (PostgreSQL: in
pg_stat_activity; SQLite: its statement trace shows it at a write lock) before the first
commits, so the interleaving is the one named, every run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text

from campaigns import people
from campaigns.importresult import IMPORTED
from campaigns.intake import import_lead_file, import_leads
from campaigns.schema import consent_records, contact_sources, contacts
from campaigns.sources import csvfile
from campaigns.sources.partner import LeadFormat
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.ledger import ERASURE, Ledger
from suppression.policy import PolicyConfig
from tests import clock, partner_files
from tests.partner_files import e164, person
from worker import db

pytestmark = pytest.mark.integration
NOW = clock.NOW
EMAIL = "lead1@example.no"  # partner_files.person(1)
WRITES = ("BEGIN IMMEDIATE", "INSERT", "UPDATE", "DELETE")


class Other:
    """A second engine on the same store for the other transaction's thread; on SQLite
    every statement its connections start is traced, with the thread that started it."""

    def __init__(self, url: str) -> None:
        self.engine = db.engine_for(url)
        self.url = url
        self.statements: list[tuple[str, str]] = []
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", self._trace)

    def _trace(self, dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(
            lambda sql: self.statements.append((threading.current_thread().name, sql))
        )

    def run(self, work: Callable[[Engine], Any]) -> tuple[threading.Thread, dict[str, Any]]:
        out: dict[str, Any] = {}

        def target() -> None:
            try:
                out["result"] = work(self.engine)
            except Exception as exc:  # the test asserts on it
                out["error"] = exc

        thread = threading.Thread(target=target, name="other")
        thread.start()
        return thread, out

    def waiting(self, probe: Engine, out: dict[str, Any]) -> None:
        """Returns once the other transaction waits for a lock this thread holds."""
        for _ in range(1000):
            assert "result" not in out and "error" not in out, out  # it did not wait
            if self.engine.dialect.name == "postgresql":
                with probe.connect() as conn:
                    waits = conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'"
                        )
                    ).scalar_one()
                if waits:
                    return
            elif any(
                name == "other" and sql.lstrip().upper().startswith(WRITES)
                for name, sql in list(self.statements)
            ):
                return  # it is at a write, which waits for this thread's commit
            time.sleep(0.01)
        raise AssertionError("the other transaction never waited")

    def first_write(self) -> str:
        for name, sql in self.statements:
            if name == "other" and sql.lstrip().upper().startswith(WRITES):
                return sql.strip()
        raise AssertionError("the other transaction wrote nothing")


@pytest.fixture
def other(store_url: str) -> Iterator[Other]:
    found = Other(store_url)
    yield found
    found.engine.dispose()


def _file(tmp_path: Path, name: str, **changes: str) -> Path:
    return partner_files.write(tmp_path / name, [person(1, **changes)])


def _import(
    engine: Engine, hasher: Hasher, policy: PolicyConfig, path: Path
) -> Any:  # an ImportResult
    result = import_lead_file(engine, hasher, policy, "partner:a", LeadFormat(), path, now=NOW)
    assert result.status == IMPORTED, result
    return result


def _left(engine: Engine, hasher: Hasher) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(contacts)).one()
        count = select(func.count())
        return {
            "plaintext": (row.email, row.phone, row.first_name, row.street, row.postal_code),
            "sources": conn.execute(count.select_from(contact_sources)).scalar_one(),
            "consents": conn.execute(count.select_from(consent_records)).scalar_one(),
            "email_no": [e.reason for e in Ledger(conn, hasher).status("email", EMAIL).entries],
            "phone_no": [e.reason for e in Ledger(conn, hasher).status("phone", e164(1)).entries],
        }


ERASED = {
    "plaintext": (None, None, None, None, None),
    "sources": 0,
    "consents": 0,
    "email_no": [ERASURE],
    "phone_no": [ERASURE],
}


def test_an_erasure_waits_for_an_import_that_joined_the_person_and_erases_what_it_added(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path, other: Other
) -> None:
    """The import gave the person a phone and a second consent; the erasure, started
    before the import's commit, must suppress that phone too and leave no consent."""
    _import(engine, hasher, policy_config, _file(tmp_path, "first.csv", Mobil=""))
    path = _file(tmp_path, "second.csv")
    with engine.begin() as importing:
        shape = csvfile.inspect(path)
        result = import_leads(
            importing, hasher, policy_config, "partner:a", LeadFormat(), path, shape,
            filename=path.name, now=NOW,
        )  # fmt: skip
        assert (result.status, result.merged) == (IMPORTED, 1)
        erasing, out = other.run(
            lambda eng: _forget(eng, hasher)  # its own transaction, on the other engine
        )
        other.waiting(engine, out)
    erasing.join(timeout=60)
    assert "error" not in out, out.get("error")
    assert _left(engine, hasher) == ERASED
    assert out["result"]["consents_deleted"] == 2
    if engine.dialect.name == "sqlite":
        # It took the lock before it read (what it read is what the import committed).
        assert other.first_write() == "BEGIN IMMEDIATE"


def _forget(engine: Engine, hasher: Hasher) -> dict[str, int]:
    with engine.begin() as conn:
        return people.forget(conn, hasher, email_identity(EMAIL), now=NOW, actor="test")


def test_an_import_that_waited_for_an_erasure_attaches_nothing_to_the_erased_person(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path, other: Other
) -> None:
    """The erasure committed while the import waited: the import finds an erased contact
    and adds no plaintext, no source and no consent record to it (ALL-4)."""
    _import(engine, hasher, policy_config, _file(tmp_path, "first.csv"))
    again = _file(tmp_path, "again.csv", LeadID="L-again")
    with engine.begin() as erasing:
        people.forget(erasing, hasher, email_identity(EMAIL), now=NOW, actor="test")
        importing, out = other.run(lambda eng: _import(eng, hasher, policy_config, again))
        other.waiting(engine, out)
    importing.join(timeout=60)
    assert "error" not in out, out.get("error")
    assert (out["result"].accepted, out["result"].merged, out["result"].new_contacts) == (1, 1, 0)
    assert _left(engine, hasher) == ERASED


def test_an_import_after_an_erasure_attaches_nothing_to_the_erased_person(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    """Without a race: a partner sends an erased person again. They stay erased and
    suppressed; the file is still imported (its other rows count)."""
    _import(engine, hasher, policy_config, _file(tmp_path, "first.csv"))
    _forget(engine, hasher)
    path = partner_files.write(tmp_path / "again.csv", [person(1, LeadID="L-x"), person(2)])
    result = _import(engine, hasher, policy_config, path)
    assert (result.accepted, result.merged, result.new_contacts) == (2, 1, 1)
    with engine.connect() as conn:
        erased_id = conn.execute(
            select(contacts.c.id).where(contacts.c.email.is_(None))
        ).scalar_one()
        attached = select(func.count()).where(consent_records.c.contact_id == erased_id)
        assert conn.execute(attached.select_from(consent_records)).scalar_one() == 0
        sources = select(func.count()).where(contact_sources.c.contact_id == erased_id)
        assert conn.execute(sources.select_from(contact_sources)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(consent_records)).scalar_one() == 1
