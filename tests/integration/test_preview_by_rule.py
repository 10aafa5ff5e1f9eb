"""`campaign preview`: the samples are grouped by rule id, as the counts are, so that
every row of the counts (decision and rule) shows its own sample contacts."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from sqlalchemy import Engine

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from tests.clock import working_morning
from tests.conftest import ORG_NAME, Cli
from tests.factories import add_person

pytestmark = [pytest.mark.integration, pytest.mark.travel]

TEMPLATE = "Hei fra {{ organisation.name }}! {{ source_notice }} Avmeld: {{ unsubscribe_url }}"
NOW = working_morning().astimezone(UTC)
NO_CONSENT = "excluded:no_consent"


def _audience(engine: Engine, hasher: Hasher) -> int:
    """Ola0 with consent (ES-1: send); Ola1-4 without (ES-1: no consent); Ola5-6 customers
    of another product without consent (ES-2: no consent, the same decision as Ola1-4)."""
    with engine.begin() as conn:
        add_person(conn, hasher, 0)
        for n in range(1, 5):
            add_person(conn, hasher, n, consent_channels=None)
        for n in (5, 6):
            add_person(
                conn, hasher, n, consent_channels=None, partner=None,
                customer={"product_categories": "smoke_detector"},
            )  # fmt: skip
        return campaign_mod.create(
            conn, name="Vinter", channel="email", purpose="alarm", template_text=TEMPLATE,
            organisation_name=ORG_NAME, now=NOW,
        ).id  # fmt: skip


def test_preview_samples_are_grouped_by_rule_id_like_the_counts(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    campaign_id = _audience(engine, hasher)
    with engine.connect() as conn:
        summary = launch_mod.preview(conn, hasher, policy_config, campaign_id, now=NOW)
    assert summary.by_decision == {
        ("send", "ES-1"): 1,
        (NO_CONSENT, "ES-1"): 4,
        (NO_CONSENT, "ES-2"): 2,
    }
    assert set(summary.samples) == {"ES-1", "ES-2"}
    es2 = summary.samples["ES-2"]
    assert [(s["name"], s["decision"]) for s in es2] == [
        ("Ola5 Nordmann", NO_CONSENT),
        ("Ola6 Nordmann", NO_CONSENT),
    ]
    es1 = [(s["decision"], s["name"]) for s in summary.samples["ES-1"]]
    assert ("send", "Ola0 Nordmann") in es1
    assert sum(1 for decision, _ in es1 if decision == NO_CONSENT) == launch_mod.SAMPLES_PER_REASON


def test_preview_json_and_table_show_each_rules_own_samples(
    engine: Engine, hasher: Hasher, cli: Cli
) -> None:
    campaign_id = _audience(engine, hasher)
    result = cli("campaign", "preview", str(campaign_id), "--json")
    assert result.exit_code == 0, result.output
    samples = json.loads(result.output)["samples"]
    assert [s["name"] for s in samples["ES-2"]] == ["Ola5 Nordmann", "Ola6 Nordmann"]
    assert {s["rule"] for rule in samples for s in samples[rule] if rule == "ES-1"} == {"ES-1"}
    table = cli("campaign", "preview", str(campaign_id)).output
    (es2_row,) = [line for line in table.splitlines() if "ES-2" in line]
    assert "Ola5 Nordmann" in es2_row
