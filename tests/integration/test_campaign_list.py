"""`outreach campaign list`, `campaign show` and `campaign edit` through the real CLI, on
SQLite and PostgreSQL (issue 19, point 7)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.clock import NOW, OSLO
from tests.conftest import ORG_NAME, Cli
from tests.factories import add_person

pytestmark = pytest.mark.integration
INPUT_REFUSED = 5  # docs/cli.md: a template file refused
REFUSED = 6  # docs/cli.md: an operation refused by a state or a rule

EMAIL = (
    "Subject: Vinter hos {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n{{ source_notice }}\nAvmeld: {{ unsubscribe_url }}\n"
)
SMS = (
    "{{ organisation.name }}: Alarm til halv pris! {{ source_notice }} Stopp: {{ unsubscribe_url }}"
)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "email.txt").write_text(EMAIL, encoding="utf-8")
    (tmp_path / "sms.txt").write_text(SMS, encoding="utf-8")
    (tmp_path / "no-link.txt").write_text("{{ organisation.name }}: hei\n", encoding="utf-8")
    return tmp_path


def create(cli: Cli, folder: Path, name: str, channel: str, *extra: str) -> int:
    template = folder / ("email.txt" if channel == "email" else "sms.txt")
    result = cli(
        "campaign", "create", "--name", name, "--channel", channel, "--purpose", "alarm",
        "--template", str(template), *extra, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return int(json.loads(result.stdout)["id"])


def test_list_shows_each_campaign_newest_first_with_its_counts_and_oslo_times(
    cli: Cli, templates: Path, engine: Engine, hasher: object
) -> None:
    with engine.begin() as conn:
        for n in (1, 2, 3):
            add_person(conn, hasher, n)  # type: ignore[arg-type]
    draft = create(cli, templates, "Vinter e-post", "email")
    launched = create(cli, templates, "Vinter SMS", "sms", "--segment-limit", "3")
    assert cli("campaign", "launch", str(launched), "--no-wait").exit_code == 0
    listed = json.loads(cli("campaign", "list", "--json").stdout)
    assert [c["id"] for c in listed] == [launched, draft]
    by_id = {c["id"]: c for c in listed}
    assert by_id[draft]["state"] == "draft" and by_id[draft]["audience"] is None
    assert by_id[launched]["state"] == "running" and by_id[launched]["audience"] == 3
    assert by_id[draft]["for"] == "customers and partner leads"
    assert by_id[draft]["created_by"] is None  # the store does not record who
    created = datetime.fromisoformat(by_id[draft]["created_at"])
    assert created.utcoffset() == NOW.astimezone(OSLO).utcoffset()  # ISO 8601, Oslo offset
    assert abs((created - NOW).total_seconds()) < 300
    text = cli("campaign", "list")
    assert text.exit_code == 0, text.output
    assert "Vinter SMS" in text.output and "not recorded" in text.output
    assert f"{NOW.astimezone(OSLO):%Y-%m-%d}" in text.output


def test_list_by_state(cli: Cli, templates: Path) -> None:
    first = create(cli, templates, "A", "email")
    second = create(cli, templates, "B", "email")
    assert cli("campaign", "cancel", str(first)).exit_code == 0
    drafts = json.loads(cli("campaign", "list", "--state", "draft", "--json").stdout)
    assert [c["id"] for c in drafts] == [second]
    none = cli("campaign", "list", "--state", "done")
    assert none.exit_code == 0 and "no campaigns in state done" in none.output


def test_show_renders_the_message_for_an_example_of_each_kind_of_recipient(
    cli: Cli, templates: Path
) -> None:
    campaign_id = create(cli, templates, "Vinter", "email")
    shown = json.loads(cli("campaign", "show", str(campaign_id), "--json").stdout)
    assert shown["template"] == EMAIL
    customer, lead = shown["examples"]
    assert (customer["recipient"], lead["recipient"]) == ("customer", "partner lead")
    assert all(e["example"] is True and "not a real person" in e["note"] for e in shown["examples"])
    assert customer["subject"] == f"Vinter hos {ORG_NAME}"
    assert "Hei Eksempel!" in customer["body"] and "{{" not in customer["body"]
    assert "Vi fikk kontaktinformasjonen din fra" not in customer["body"]
    assert "Vi fikk kontaktinformasjonen din fra Eksempelpartner AS" in lead["body"]  # GD-1
    assert "/u/EKSEMPEL" in lead["body"]  # a placeholder link, not a token
    text = cli("campaign", "show", str(campaign_id))
    assert text.exit_code == 0, text.output
    assert "EXAMPLE for a customer" in text.output and "Hei Eksempel!" in text.output


def test_show_of_an_sms_counts_its_segments(cli: Cli, templates: Path) -> None:
    campaign_id = create(cli, templates, "SMS", "sms", "--audience", "customers")
    shown = json.loads(cli("campaign", "show", str(campaign_id), "--json").stdout)
    (example,) = shown["examples"]
    assert example["subject"] is None and example["segments"] >= 1


def test_show_of_no_such_campaign_exits_6(cli: Cli) -> None:
    result = cli("campaign", "show", "99")
    assert result.exit_code == REFUSED
    assert "no such campaign" in result.stderr and "Traceback" not in result.output


def test_edit_changes_a_draft_and_its_checks_run_again(cli: Cli, templates: Path) -> None:
    campaign_id = create(cli, templates, "Vinter", "sms", "--segment-limit", "3")
    changed = cli(
        "campaign", "edit", str(campaign_id), "--name", "Vinter 2", "--segment-limit", "2",
        "--sms-sender", "TryggHjem",
    )  # fmt: skip
    assert changed.exit_code == 0, changed.output
    shown = json.loads(cli("campaign", "show", str(campaign_id), "--json").stdout)
    assert (shown["name"], shown["segment_limit"]) == ("Vinter 2", 2)
    assert shown["sender"]["sms_sender"] == "TryggHjem"
    # SM-3 again: a limit the message does not fit is refused (a rule: exit 6), and
    # nothing changes.
    refused = cli("campaign", "edit", str(campaign_id), "--segment-limit", "1", "--name", "x")
    assert refused.exit_code == REFUSED, refused.output
    assert "SM-3" in refused.stderr
    # ES-4 again: a template file without the unsubscribe link is refused (a file: exit 5).
    no_link = cli(
        "campaign", "edit", str(campaign_id), "--template", str(templates / "no-link.txt")
    )
    assert no_link.exit_code == INPUT_REFUSED and "ES-4" in no_link.stderr
    after = json.loads(cli("campaign", "show", str(campaign_id), "--json").stdout)
    assert (after["name"], after["segment_limit"], after["template"]) == ("Vinter 2", 2, SMS)


def test_edit_of_a_launched_campaign_is_refused_with_exit_6(
    cli: Cli, templates: Path, engine: Engine, hasher: object
) -> None:
    with engine.begin() as conn:
        add_person(conn, hasher, 1)  # type: ignore[arg-type]
    campaign_id = create(cli, templates, "Vinter", "email")
    assert cli("campaign", "launch", str(campaign_id), "--no-wait").exit_code == 0
    result = cli("campaign", "edit", str(campaign_id), "--name", "Sommer")
    assert result.exit_code == REFUSED
    assert "only a draft can be edited" in result.stderr and "Traceback" not in result.output
    shown = json.loads(cli("campaign", "show", str(campaign_id), "--json").stdout)
    assert shown["name"] == "Vinter"


def test_edit_with_nothing_to_change_is_refused(cli: Cli, templates: Path) -> None:
    campaign_id = create(cli, templates, "Vinter", "email")
    result = cli("campaign", "edit", str(campaign_id))
    assert result.exit_code == REFUSED and "nothing to change" in result.stderr
