"""The send-time check's plan on PostgreSQL when the statistics are behind: a campaign
launched since the last ANALYZE looks empty to the planner, and a frequency-cap look-up
that let it choose the campaign's index scanned all of that campaign's rows once per
recipient (107 s for a sub-batch of 500 against a million rows). The check must probe
the (contact_id, campaign_id) index, one probe per campaign in the window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import Engine, text

from campaigns import campaign as campaign_mod
from campaigns.sendcheck import SendCheck
from suppression.policy import PolicyConfig
from tests.clock import working_morning
from tests.conftest import ORG_NAME, _truncate_all
from worker import db

pytestmark = [pytest.mark.integration, pytest.mark.travel]

PEOPLE = 20_000
# The launches and the send-time check: a working-day morning (in UTC, as the worker's clock).
NOW = working_morning().astimezone(UTC)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    eng = db.engine_for(postgres_url)
    _truncate_all(eng)
    with eng.begin() as conn:
        # As between a launch and autovacuum's next pass: nothing analyses behind our back.
        conn.execute(text("ALTER TABLE recipients SET (autovacuum_enabled = false)"))
    yield eng
    with eng.begin() as conn:
        conn.execute(text("ALTER TABLE recipients RESET (autovacuum_enabled)"))
    _truncate_all(eng)
    eng.dispose()


def _campaign(engine: Engine) -> int:
    with engine.begin() as conn:
        camp = campaign_mod.create(
            conn, name="Plan", channel="email", purpose="alarm",
            template_text="{{ organisation.name }} {{ source_notice }} {{ unsubscribe_url }}",
            organisation_name=ORG_NAME, now=NOW,
        )  # fmt: skip
        conn.execute(
            text("UPDATE campaigns SET state = 'running', launched_at = :at WHERE id = :id"),
            {"at": NOW, "id": camp.id},
        )
    return camp.id


def _recipients(engine: Engine, campaign_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO recipients (campaign_id, contact_id, key_hash, decision, rule,"
                " basis, evidence, state, batch_no, sent_at, updated_at)"
                " SELECT :cid, c.id, c.email_hash, 'send', 'ES-1', 'consent', '', 'sent',"
                " (c.id - 1) / 500, :at, :at FROM contacts c"
            ),
            {"cid": campaign_id, "at": NOW},
        )


def test_the_frequency_cap_probes_the_contact_index_for_a_campaign_not_yet_analysed(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contacts (email_hash, key_id, is_partner_lead, is_customer,"
                " created_at, updated_at)"
                " SELECT sha256(n::text::bytea), 'k1', true, false, :at, :at"
                " FROM generate_series(1, :n) AS n"
            ),
            {"n": PEOPLE, "at": NOW},
        )
    sending, fresh = _campaign(engine), _campaign(engine)
    _recipients(engine, sending)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    _recipients(engine, fresh)  # launched after the ANALYZE: the planner thinks it empty

    # a cap of one: the fresh campaign's send to each of them is one too many
    config = PolicyConfig(organisation_name=ORG_NAME, frequency_cap=1)
    check = SendCheck(engine, config, lambda: NOW)
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                text("SELECT id FROM recipients WHERE campaign_id = :c AND batch_no = 0"),
                {"c": sending},
            ).scalars()
        )
        compiled = check._query(ids, NOW, [sending, fresh]).compile(
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
        )
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("EXPLAIN " + compiled.string, compiled.params)
            plan = "\n".join(line for (line,) in cur.fetchall())
        camp = campaign_mod.get(conn, sending)
    stopped, _ = check.recheck(camp, ids)
    conds = [line.strip() for line in plan.splitlines() if "Index Cond" in line]
    assert any("campaign_id = in_window.cid" in line for line in conds), plan
    assert "Index Scan using uq_recipients_contact_id_campaign_id on recipients earlier" in plan, (
        plan
    )
    assert len(ids) == 500 and stopped == dict.fromkeys(ids, "ALL-8")
