"""GD-1 (the source notice for leads not contacted within 30 days) and GD-2 (retention)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from campaigns.customers import import_customer_files
from campaigns.intake import import_lead_file
from campaigns.retention import mark_notice_sent, notice_due, purge_expired_leads
from campaigns.schema import consent_records, contact_sources, contacts
from campaigns.sources.partner import LeadFormat
from suppression.identity import phone_identity
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.policy import PolicyConfig
from suppression.schema import ledger_entries
from tests import clock, partner_files
from tests.partner_files import e164, person

pytestmark = [pytest.mark.integration, pytest.mark.travel]
# The first import: the suite's instant, after the consent times of tests.partner_files.
# In UTC, so that `T0 + timedelta(days=n)` is n days of real time, as the retention
# periods are counted, whatever DST does in between.
T0 = clock.UTC_NOW


def lead_import(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    path: Path,
    partner: str,
    when: datetime,
    *rows: dict[str, str],
) -> None:
    partner_files.write(path, rows)
    result = import_lead_file(
        engine, hasher, policy, f"partner:{partner}", LeadFormat(), path, now=when
    )
    assert result.refused == 0


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def due_ids(engine: Engine, now: datetime) -> list[int]:
    with engine.connect() as conn:
        return [d.contact_id for d in notice_due(conn, now)]


def test_a_lead_not_contacted_within_30_days_of_import_needs_a_source_notice_gd1(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    lead_import(
        engine, hasher, policy_config, tmp_path / "a.csv", "boligpartner", T0, person(1), person(2)
    )
    with engine.begin() as conn:
        conn.execute(
            update(contacts)
            .where(contacts.c.email == "lead2@example.no")
            .values(first_contacted_at=T0 + timedelta(days=3))
        )
    assert due_ids(engine, T0 + timedelta(days=29)) == []
    with engine.connect() as conn:
        due = notice_due(conn, T0 + timedelta(days=30))
    assert [(d.partners, d.first_name, d.email) for d in due] == [
        (("boligpartner",), person(1)["Fornavn"], "lead1@example.no")
    ]


def test_a_lead_whose_notice_was_sent_is_flagged_again_by_a_later_partner_gd1(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    lead_import(engine, hasher, policy_config, tmp_path / "a.csv", "a", T0, person(1))
    day31 = T0 + timedelta(days=31)
    ids = due_ids(engine, day31)
    with engine.begin() as conn:
        assert mark_notice_sent(conn, ids, day31) == 1
    assert due_ids(engine, day31) == []
    lead_import(
        engine, hasher, policy_config, tmp_path / "b.csv", "b", day31 + timedelta(days=1), person(1)
    )
    assert due_ids(engine, day31 + timedelta(days=20)) == []
    with engine.connect() as conn:
        due = notice_due(conn, day31 + timedelta(days=31))
    assert [d.partners for d in due] == [("a", "b")]


def test_partner_leads_never_converted_are_deleted_after_the_period_keeping_the_ledger_gd2(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    lead_import(
        engine,
        hasher,
        policy_config,
        tmp_path / "old.csv",
        "a",
        T0,
        person(1),
        person(2),
        person(3),
    )
    with engine.begin() as conn:
        # person 1 objected: the no must outlive the data (ALL-4)
        key = hasher.hash(phone_identity(e164(1)))
        Ledger(conn, hasher).add(
            key, "phone", scope="all", reason="objection", source="test", now=T0
        )
        # person 2 was contacted lawfully later: the period runs from that contact
        conn.execute(
            update(contacts)
            .where(contacts.c.email == "lead2@example.no")
            .values(last_contacted_at=T0 + timedelta(days=300))
        )
    # person 3 is also a customer now
    crm = tmp_path / "crm.csv"
    crm.write_text(
        "customer_id;email;contract_status;email_source;opt_out_offered\n"
        "K-3;lead3@example.no;active;sale;yes\n"
    )
    import_customer_files(engine, hasher, crm, now=T0 + timedelta(days=10))
    ledger_before = count(engine, ledger_entries)
    with engine.begin() as conn:
        assert purge_expired_leads(conn, T0 + timedelta(days=364), 365).contacts == 0
    with engine.begin() as conn:
        purged = purge_expired_leads(conn, T0 + timedelta(days=366), 365)
    assert (purged.contacts, purged.consent_records, purged.contact_sources) == (1, 1, 1)
    with engine.connect() as conn:
        left = sorted(conn.execute(select(contacts.c.email)).scalars())
        kept = {
            row.contact_id
            for table in (consent_records, contact_sources)
            for row in conn.execute(select(table.c.contact_id))
        }
        ids = set(conn.execute(select(contacts.c.id)).scalars())
        objection = Ledger(conn, hasher).status("phone", e164(1))
    assert left == ["lead2@example.no", "lead3@example.no"]
    assert kept == ids  # no consent record or source left of the deleted lead
    assert count(engine, ledger_entries) == ledger_before
    assert objection.suppressed("sms")
