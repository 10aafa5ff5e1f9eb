"""The foundation issue's acceptance, through the real CLI on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, select, text

from campaigns.schema import contacts
from suppression.keys import Hasher
from tests.clock import UTC_NOW
from tests.conftest import Cli
from worker.output import EXIT_CONFIGURATION

pytestmark = pytest.mark.integration


def test_an_email_suppressed_in_one_spelling_is_suppressed_in_another(cli: Cli) -> None:
    assert (
        cli(
            "suppress", "add", "--email", "Ola.Nordmann@Example.com", "--reason", "unsubscribe"
        ).exit_code
        == 0
    )
    assert cli("suppress", "check", "--email", "ola.nordmann@example.com").exit_code == 1
    assert cli("suppress", "check", "--email", "kari.nordmann@example.com").exit_code == 0


def test_a_phone_suppressed_in_one_spelling_is_suppressed_in_another(cli: Cli) -> None:
    assert cli("suppress", "add", "--phone", "41234567", "--reason", "unsubscribe").exit_code == 0
    assert cli("suppress", "check", "--phone", "+47 412 34 567").exit_code == 1
    assert cli("suppress", "check", "--phone", "0047 41234567").exit_code == 1
    assert cli("suppress", "check", "--phone", "41234568").exit_code == 0


def test_adding_the_same_opt_out_twice_changes_nothing(cli: Cli, engine: Engine) -> None:
    for _ in range(2):
        cli(
            "suppress",
            "add",
            "--email",
            "ola@example.com",
            "--reason",
            "unsubscribe",
            "--channel",
            "email",
        )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one() == 1


def test_a_channel_opt_out_leaves_other_channels_contactable(cli: Cli) -> None:
    cli("suppress", "add", "--phone", "41234567", "--reason", "unsubscribe", "--channel", "sms")
    assert cli("suppress", "check", "--phone", "41234567", "--channel", "sms").exit_code == 1
    assert cli("suppress", "check", "--phone", "41234567", "--channel", "phone").exit_code == 0


def test_forget_leaves_no_plaintext_and_keeps_the_suppression(
    cli: Cli, engine: Engine, hasher: Hasher
) -> None:
    address = "ola.nordmann@example.com"
    now = UTC_NOW
    with engine.begin() as conn:
        conn.execute(
            contacts.insert().values(
                email=address,
                email_hash=hasher.digest("email", address),
                key_id=hasher.key_id,
                first_name="Ola",
                last_name="Nordmann",
                street="Storgata 1",
                postal_code="0155",
                city="Oslo",
                is_partner_lead=True,
                is_customer=False,
                created_at=now,
                updated_at=now,
            )
        )
    cli("suppress", "add", "--email", "Ola.Nordmann@Example.com", "--reason", "unsubscribe")
    result = cli("forget", "--email", address)
    assert result.exit_code == 0, result.output
    assert cli("suppress", "check", "--email", address).exit_code == 1
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    assert address not in str(value).lower(), f"plaintext left in {table}"
                    assert "Nordmann" not in str(value), f"name left in {table}"
        assert conn.execute(select(contacts.c.email_hash)).scalar_one() is not None


def test_a_missing_secret_key_names_the_variable(cli: Cli) -> None:
    del cli.env["OUTREACH_SECRET_KEY"]
    cli.env["OUTREACH_SECRET_KEY"] = ""
    result = cli("suppress", "check", "--email", "ola@example.com")
    assert result.exit_code == EXIT_CONFIGURATION
    assert "OUTREACH_SECRET_KEY" in result.output


def test_a_malformed_database_url_names_the_variable(cli: Cli) -> None:
    cli.env["DATABASE_URL"] = "mysql://nope"
    result = cli("suppress", "check", "--email", "ola@example.com")
    assert result.exit_code == EXIT_CONFIGURATION
    assert "DATABASE_URL" in result.output
