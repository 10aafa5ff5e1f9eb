"""`outreach explain --json` prints every time in one form on both stores: ISO 8601 in
UTC with its offset (2026-11-24T08:00:00+00:00), whatever the database session's time
zone (PostgreSQL answers in it; SQLite hands back what was stored, without an offset)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns.campaign_schema import recipients
from suppression.identity import email_identity
from suppression.ledger import Ledger
from suppression.policy import PolicyConfig
from tests.clock import UTC_NOW
from tests.conftest import ORG_NAME, Cli, _truncate_all
from tests.integration.test_explain_and_forget import EMAIL, HASHER, add_person
from worker import db

pytestmark = pytest.mark.integration

TEMPLATE = "Hei fra {{ organisation.name }}! {{ source_notice }} Avmeld: {{ unsubscribe_url }}"
ONE_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?\+00:00")
LOOKS_LIKE_A_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d")


@pytest.fixture(autouse=True)
def oslo_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL sessions in Oslo time, as a server configured for Norway has them."""
    monkeypatch.setenv("PGTZ", "Europe/Oslo")


def _person_in_a_campaign(engine: Engine, policy: PolicyConfig) -> int:
    """Ola with a source, a consent, a ledger entry and a campaign checked and sent, every
    time fixed (the suite's instant), so that two stores hold the same times."""
    add_person(engine)
    with engine.begin() as conn:
        Ledger(conn, HASHER).add(
            HASHER.hash(email_identity(EMAIL)), "email", scope="sms", reason="unsubscribe",
            source="test", occurred_at=UTC_NOW, now=UTC_NOW,
        )  # fmt: skip
        campaign_id = campaign_mod.create(
            conn, name="Vinter", channel="email", purpose="alarm", template_text=TEMPLATE,
            organisation_name=ORG_NAME, now=UTC_NOW,
        ).id  # fmt: skip
        launch_mod.launch(conn, HASHER, policy, campaign_id, now=UTC_NOW)
        conn.execute(
            update(recipients)
            .where(recipients.c.campaign_id == campaign_id)
            .values(checked_at=UTC_NOW, sent_at=UTC_NOW, state="sent")
        )
    return campaign_id


def _explained(cli: Cli, campaign_id: int) -> dict[str, Any]:
    result = cli("explain", "--email", EMAIL, "--campaign", str(campaign_id), "--json")
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output)
    return payload


def _times(value: Any, path: str = "") -> dict[str, str]:
    """Every string in the payload that looks like a time, by where it is."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _times(item, f"{path}.{key}").items()
        }
    if isinstance(value, list):
        return {
            k: v for n, item in enumerate(value) for k, v in _times(item, f"{path}[{n}]").items()
        }
    if isinstance(value, str) and LOOKS_LIKE_A_TIME.match(value):
        return {path: value}
    return {}


def test_explain_json_prints_every_time_in_utc_with_its_offset(
    cli: Cli, engine: Engine, policy_config: PolicyConfig
) -> None:
    payload = _explained(cli, _person_in_a_campaign(engine, policy_config))
    times = _times(payload)
    assert {".contact.created_at", ".consents[0].given_at", ".ledger[0].occurred_at"} <= set(times)
    assert {".campaign.at_send.checked_at", ".campaign.sent_at"} <= set(times)
    assert {path: t for path, t in times.items() if not ONE_FORM.fullmatch(t)} == {}
    expected = UTC_NOW.astimezone(UTC).isoformat()
    assert payload["contact"]["created_at"] == expected
    assert payload["campaign"]["sent_at"] == expected


@pytest.fixture
def both_stores(
    tmp_path: Path, sqlite_template: Path, postgres_url: str
) -> Iterator[dict[str, str]]:
    path = tmp_path / "outreach.db"
    shutil.copy(sqlite_template, path)
    engine = db.engine_for(postgres_url)
    _truncate_all(engine)
    engine.dispose()
    yield {"sqlite": f"sqlite:///{path}", "postgresql": postgres_url}


def test_explain_json_prints_the_same_times_on_sqlite_and_postgresql(
    both_stores: dict[str, str], policy_config: PolicyConfig
) -> None:
    printed = {}
    for store, url in both_stores.items():
        engine = db.engine_for(url)
        try:
            printed[store] = _times(
                _explained(Cli(url), _person_in_a_campaign(engine, policy_config))
            )
        finally:
            engine.dispose()
    assert printed["sqlite"] == printed["postgresql"]
    assert len(printed["sqlite"]) >= 8
