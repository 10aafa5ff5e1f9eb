"""Every check that can refuse a campaign's sends or its call list runs at `campaign create`
and again at launch, before anyone is decided or counted (issue 19, point 2): ES-4,
ALL-7, GD-1, SM-3, TP-6, TP-2. A refusal names the rule and what to do; create exits 5
for a template file refused (docs/cli.md), 6 for the rest; launch exits 6. SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import campaigns, recipients
from campaigns.schema import contacts
from suppression.keys import Hasher
from tests.clock import NOW, TODAY
from tests.conftest import ORG_NAME, Cli
from tests.factories import add_person
from worker.output import EXIT_INPUT_REFUSED, EXIT_REFUSED

pytestmark = pytest.mark.integration

LANDLINE = "22 12 34 56"
GOOD = "{{ organisation.name }}: tilbud. {{ source_notice }} Avmelding: {{ unsubscribe_url }}"
# What each rule refuses, as a template (or the option) that breaks only that rule.
NO_LINK = "{{ organisation.name }}: tilbud. {{ source_notice }}"
NO_SENDER = "Tilbud til deg. {{ source_notice }} Avmelding: {{ unsubscribe_url }}"
NO_NOTICE = "{{ organisation.name }}: tilbud. Avmelding: {{ unsubscribe_url }}"
LONG = GOOD + " Mer tekst." * 40


@pytest.fixture
def people(engine: Engine, hasher: Hasher) -> None:
    with engine.begin() as conn:
        for n in range(4):
            add_person(conn, hasher, n, consent_channels="email,sms,call")


def load_register(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text("telefon;reservasjon\n+4799999999;begge\n", encoding="utf-8")
    result = cli("register", "load", str(path), "--date", TODAY.isoformat())
    assert result.exit_code == 0, result.output


def create(cli: Cli, tmp_path: Path, channel: str, template: str, *extra: str) -> tuple[int, str]:
    path = tmp_path / f"{channel}.txt"
    path.write_text(("Subject: Tilbud\n" if channel == "email" else "") + template, "utf-8")
    result = cli(
        "campaign", "create", "--name", "Vinter", "--channel", channel, "--purpose", "alarm",
        "--template", str(path), "--json", *extra,
    )  # fmt: skip
    if result.exit_code:
        return result.exit_code, result.output
    import json

    return 0, str(json.loads(result.output)["id"])


def nothing_counted(engine: Engine) -> bool:
    """No campaign launched, no recipient stored, no contact counted as contacted."""
    with engine.connect() as conn:
        launched = conn.execute(
            select(func.count()).where(campaigns.c.state != campaign_mod.DRAFT)
        ).scalar_one()
        stored = conn.execute(select(func.count()).select_from(recipients)).scalar_one()
        contacted = conn.execute(
            select(func.count()).where(contacts.c.first_contacted_at.is_not(None))
        ).scalar_one()
    return (launched, stored, contacted) == (0, 0, 0)


@pytest.mark.parametrize(
    ("channel", "template", "extra", "rule", "code"),
    [
        ("email", NO_LINK, (), "ES-4", EXIT_INPUT_REFUSED),
        ("sms", NO_SENDER, (), "ALL-7", EXIT_INPUT_REFUSED),
        ("email", NO_NOTICE, (), "GD-1", EXIT_INPUT_REFUSED),
        ("sms", LONG, ("--segment-limit", "2"), "SM-3", EXIT_INPUT_REFUSED),
        ("call", GOOD, (), "TP-6", EXIT_REFUSED),  # no caller id
        ("call", GOOD, ("--caller-id", "skjult"), "TP-6", EXIT_REFUSED),
        ("call", GOOD, ("--caller-id", "412 34 567"), "TP-6", EXIT_REFUSED),  # a mobile
    ],
)
def test_create_refuses_what_a_send_or_the_export_would_refuse(
    cli: Cli,
    engine: Engine,
    people: None,
    tmp_path: Path,
    channel: str,
    template: str,
    extra: tuple[str, ...],
    rule: str,
    code: int,
) -> None:
    load_register(cli, tmp_path)

    exit_code, output = create(cli, tmp_path, channel, template, *extra)

    assert exit_code == code, output
    assert output.startswith("error:") and rule in output and len(output.splitlines()) == 1
    with engine.connect() as conn:
        assert conn.execute(select(campaigns.c.id)).first() is None


def test_create_says_what_to_do_about_a_caller_id_and_a_missing_register(
    cli: Cli, people: None, tmp_path: Path
) -> None:
    without_register = create(cli, tmp_path, "call", GOOD, "--caller-id", LANDLINE)
    load_register(cli, tmp_path)
    without_caller_id = create(cli, tmp_path, "call", GOOD)

    assert without_register[0] == EXIT_REFUSED
    assert "TP-2" in without_register[1] and "outreach register load" in without_register[1]
    assert "--caller-id" in without_caller_id[1]
    assert create(cli, tmp_path, "call", GOOD, "--caller-id", LANDLINE)[0] == 0


def _draft(cli: Cli, tmp_path: Path, channel: str, *extra: str) -> int:
    exit_code, found = create(cli, tmp_path, channel, GOOD, *extra)
    assert exit_code == 0, found
    return int(found)


def _change(engine: Engine, campaign_id: int, **values: object) -> None:
    """What `campaign edit`, or a draft made before these checks, can leave in a draft."""
    with engine.begin() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(**values))


@pytest.mark.parametrize(
    ("channel", "change", "rule"),
    [
        ("email", {"template": "Subject: Tilbud\n" + NO_LINK}, "ES-4"),
        ("sms", {"template": NO_NOTICE}, "GD-1"),
        ("sms", {"template": LONG, "segment_limit": 2}, "SM-3"),
        ("call", {"sender": campaign_mod.Sender(caller_id="").to_json()}, "TP-6"),
        ("call", {"sender": campaign_mod.Sender(caller_id="+4791234567").to_json()}, "TP-6"),
    ],
)
def test_launch_checks_again_before_anyone_is_counted(
    cli: Cli,
    engine: Engine,
    people: None,
    tmp_path: Path,
    channel: str,
    change: dict[str, object],
    rule: str,
) -> None:
    load_register(cli, tmp_path)
    campaign_id = _draft(cli, tmp_path, channel, "--caller-id", LANDLINE)
    _change(engine, campaign_id, **change)

    result = cli("campaign", "launch", str(campaign_id), "--no-wait")

    assert result.exit_code == EXIT_REFUSED, result.output
    assert f"campaign {campaign_id} cannot be launched" in result.output and rule in result.output
    assert nothing_counted(engine)


def test_launch_refuses_when_the_organisation_named_by_the_template_is_no_longer_ours(
    cli: Cli, engine: Engine, people: None, tmp_path: Path
) -> None:
    """ALL-7 with the settings of the launch: a template that names the company in its
    text says who it is from only while that is the company's name."""
    named = f"{ORG_NAME}: tilbud. {{{{ source_notice }}}} Avmelding: {{{{ unsubscribe_url }}}}"
    exit_code, found = create(cli, tmp_path, "sms", named)
    assert exit_code == 0, found
    cli.env["OUTREACH_ORGANISATION_NAME"] = "Et Annet Selskap AS"

    result = cli("campaign", "launch", found, "--no-wait")

    assert result.exit_code == EXIT_REFUSED, result.output
    assert "ALL-7" in result.output and "campaign edit" in result.output
    assert nothing_counted(engine)


def test_launch_refuses_a_call_campaign_whose_register_snapshot_went_stale(
    cli: Cli, engine: Engine, people: None, tmp_path: Path
) -> None:
    """TP-2 at launch: a draft made on this month's snapshot, launched 40 days later, is
    refused before anyone is listed (the export would refuse the list)."""
    load_register(cli, tmp_path)
    campaign_id = _draft(cli, tmp_path, "call", "--caller-id", LANDLINE)
    cli.env["OUTREACH_DEMO_NOW"] = (NOW + timedelta(days=40)).isoformat()

    result = cli("campaign", "launch", str(campaign_id), "--no-wait")

    assert result.exit_code == EXIT_REFUSED, result.output
    assert "TP-2" in result.output and "register load" in result.output
    assert nothing_counted(engine)


def test_a_draft_that_passes_every_check_launches(
    cli: Cli, engine: Engine, people: None, tmp_path: Path
) -> None:
    load_register(cli, tmp_path)
    campaign_id = _draft(cli, tmp_path, "call", "--caller-id", LANDLINE)

    result = cli("campaign", "launch", str(campaign_id), "--no-wait", "--json")

    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        state = conn.execute(
            select(campaigns.c.state).where(campaigns.c.id == campaign_id)
        ).scalar_one()
    assert state == campaign_mod.RUNNING
