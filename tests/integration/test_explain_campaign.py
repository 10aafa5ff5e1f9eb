"""`outreach explain --campaign ID` in text says what the campaign did with the person
(issue 19, point 5): the decision at launch with its rule, the send-time re-check (ALL-6)
and the outcome; every time in Europe/Oslo (the JSON form stays UTC ISO 8601, see
test_explain_json_form); no "ref=None". SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, update

from campaigns.campaign_schema import recipients
from campaigns.optouts.schema import delivery_events
from campaigns.schema import contact_sources
from suppression.calendar import OSLO
from suppression.policy import PolicyConfig
from tests.clock import UTC_NOW
from tests.conftest import Cli
from tests.integration import test_wrong_number as wrong
from tests.integration.test_explain_and_forget import EMAIL
from tests.integration.test_explain_json_form import _person_in_a_campaign

pytestmark = pytest.mark.integration


def oslo(moment: datetime) -> str:
    return moment.astimezone(OSLO).strftime("%Y-%m-%d %H:%M:%S %Z")


def text_of(cli: Cli, *args: str) -> str:
    result = cli("explain", *args)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # the console wraps at its width


def test_explain_of_a_campaign_shows_launch_send_check_and_outcome(
    cli: Cli, engine: Engine, policy_config: PolicyConfig
) -> None:
    campaign_id = _person_in_a_campaign(engine, policy_config)

    with_campaign = text_of(cli, "--email", EMAIL, "--campaign", str(campaign_id))
    without = text_of(cli, "--email", EMAIL)

    assert with_campaign != without and "at launch" not in without
    assert f"campaign {campaign_id}: Vinter (email)" in with_campaign
    assert "at launch: send by ES-1, basis consent" in with_campaign
    assert f"at send (ALL-6): checked {oslo(UTC_NOW)}: send" in with_campaign
    assert f"outcome: sent {oslo(UTC_NOW)}" in with_campaign


def test_a_recipient_stopped_at_send_says_so_with_the_rule(
    cli: Cli, engine: Engine, policy_config: PolicyConfig
) -> None:
    campaign_id = _person_in_a_campaign(engine, policy_config)
    with engine.begin() as conn:
        conn.execute(
            update(recipients).values(
                state="excluded_at_send", sent_at=None, send_decision="stop", send_rule="ALL-2"
            )
        )

    shown = text_of(cli, "--email", EMAIL, "--campaign", str(campaign_id))

    assert f"at send (ALL-6): checked {oslo(UTC_NOW)}: stopped by ALL-2" in shown
    assert "outcome: not contacted (suppressed at send)" in shown


def test_what_the_provider_reported_is_shown(
    cli: Cli, engine: Engine, policy_config: PolicyConfig
) -> None:
    campaign_id = _person_in_a_campaign(engine, policy_config)
    with engine.begin() as conn:
        conn.execute(update(recipients).values(provider_id="SM" + "0" * 32))
        conn.execute(
            insert(delivery_events).values(
                provider="twilio", provider_message_id="SM" + "0" * 32, status="delivered",
                received_at=UTC_NOW, raw="{}",
            )
        )  # fmt: skip

    shown = text_of(cli, "--email", EMAIL, "--campaign", str(campaign_id))
    payload = json.loads(
        cli("explain", "--email", EMAIL, "--campaign", str(campaign_id), "--json").output
    )

    assert f"provider: delivered at {oslo(UTC_NOW)}" in shown
    assert [d["status"] for d in payload["campaign"]["delivery"]] == ["delivered"]
    assert (payload["campaign"]["name"], payload["campaign"]["channel"]) == ("Vinter", "email")


def test_a_call_campaign_shows_the_call_centres_outcome(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    _contact, campaign_id = wrong.ola_with_a_wrong_number(engine, cli, tmp_path)

    shown = text_of(cli, "--email", wrong.EMAIL, "--campaign", str(campaign_id))

    assert f"campaign {campaign_id}: Ringerunde (call)" in shown
    assert f"call centre: wrong_number reported {oslo(wrong.REPORTED)}" in shown


def test_someone_outside_the_audience_is_told_so(
    cli: Cli, engine: Engine, policy_config: PolicyConfig
) -> None:
    campaign_id = _person_in_a_campaign(engine, policy_config)
    shown = text_of(cli, "--email", "stranger@example.com", "--campaign", str(campaign_id))
    assert "not in the store (never imported or erased)" in shown
    assert "no such campaign" in text_of(cli, "--email", EMAIL, "--campaign", "999")


def test_text_times_are_in_oslo_and_no_reference_reads_none(
    cli: Cli, engine: Engine, policy_config: PolicyConfig
) -> None:
    campaign_id = _person_in_a_campaign(engine, policy_config)
    with engine.begin() as conn:
        conn.execute(update(contact_sources).values(source_ref=None))

    shown = text_of(cli, "--email", EMAIL, "--campaign", str(campaign_id))

    assert "ref=None" not in shown and "None" not in shown
    assert "+00:00" not in shown and f"created_at: {oslo(UTC_NOW)}" in shown
    assert f"source: partner:boligpartner imported {oslo(UTC_NOW)}" in shown
