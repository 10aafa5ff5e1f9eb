"""`outreach leads`, `outreach partners` and `outreach customers` through the real CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests import partner_files
from tests.conftest import Cli
from tests.partner_files import CONSENT_AT, person

pytestmark = pytest.mark.integration


@pytest.fixture
def partners_file(tmp_path: Path, cli: Cli) -> Path:
    path = tmp_path / "partners.toml"
    path.write_text(
        """
[partners.boligpartner]
display_name = "Boligpartner AS"
local_dir = "boligpartner"

[partners.stromselskap]
display_name = "Strømselskapet AS"
encoding = "windows-1252"
delimiter = ";"
[partners.stromselskap.columns]
"Telefon privat" = "phone"
""",
        encoding="utf-8",
    )
    cli.env["OUTREACH_PARTNERS_FILE"] = str(path)
    return path


ROWS = [
    person(1),
    person(2),
    person(3, Mobil="123"),
    # person 1 again, with a consent the partner recorded a week earlier
    person(1, Samtykke_tidspunkt=(CONSENT_AT - timedelta(weeks=1)).strftime("%d.%m.%Y %H:%M")),
]


def test_leads_import_prints_a_json_summary_and_a_second_run_changes_nothing(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "leads.csv", ROWS)
    result = cli("leads", "import", str(path), "--partner", "boligpartner", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {k: summary[k] for k in ("status", "accepted", "refused", "duplicates", "merged")} == {
        "status": "imported",
        "accepted": 3,
        "refused": 1,
        "duplicates": 1,
        "merged": 0,
    }
    assert summary["by_reason"] == {"invalid_phone": 1}
    assert summary["errors"] == [{"row": 4, "field": "Mobil", "reason": "invalid_phone"}]
    again = json.loads(
        cli("leads", "import", str(path), "--partner", "boligpartner", "--json").output
    )
    assert again["status"] == "already_imported"


def test_leads_import_writes_the_error_report_on_request(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "leads.csv", ROWS)
    report = tmp_path / "report.csv"
    result = cli("leads", "import", str(path), "--partner", "boligpartner", "--report", str(report))
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "3 accepted" in said and "row 4, Mobil: invalid_phone" in said
    assert (
        report.read_bytes().decode("utf-8-sig") == "row,field,reason\r\n4,Mobil,invalid_phone\r\n"
    )


def test_leads_import_uses_the_partners_column_mapping(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    header = [("Telefon privat" if h == "Mobil" else h) for h in partner_files.HEADER]
    rows = [{("Telefon privat" if k == "Mobil" else k): v for k, v in person(1).items()}]
    path = partner_files.write(tmp_path / "leads.csv", rows, header=header)
    result = json.loads(
        cli("leads", "import", str(path), "--partner", "stromselskap", "--json").output
    )
    assert (result["accepted"], result["refused"]) == (1, 0)


def test_a_file_refused_whole_exits_1_and_says_why(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("Fornavn\nÅse\n")
    result = cli("leads", "import", str(path), "--partner", "boligpartner")
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # rich wraps lines at the terminal's width
    assert "missing_column" in said and "nothing imported" in said


def test_an_unknown_partner_stops_with_the_known_ones_named(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "leads.csv", ROWS)
    result = cli("leads", "import", str(path), "--partner", "ukjent")
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "no partner 'ukjent'" in said and "boligpartner, stromselskap" in said


def test_a_wrong_partners_file_stops_naming_the_partner_and_the_key(
    cli: Cli, partners_file: Path
) -> None:
    partners_file.write_text('[partners.boligpartner]\ndisplay_name = "B"\ndelimiter = "|"\n')
    result = cli("partners", "list")
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "OUTREACH_PARTNERS_FILE" in said
    assert "partner 'boligpartner', key 'delimiter'" in said


def test_partners_poll_takes_finished_files_from_a_local_inbox(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "boligpartner" / "inbox"
    inbox.mkdir(parents=True)
    partner_files.write(inbox / "leads.csv", ROWS)
    first = json.loads(cli("partners", "poll", "--partner", "boligpartner", "--json").output)
    assert first[0]["waiting"] == ["leads.csv"]
    result = cli("partners", "poll", "--json")
    assert result.exit_code == 0, result.output
    polled = json.loads(result.output)
    assert [(p["partner"], [f["outcome"] for f in p["files"]]) for p in polled] == [
        ("boligpartner", ["archived"])
    ]
    assert polled[0]["files"][0]["import"]["accepted"] == 3
    assert (tmp_path / "boligpartner" / "archive" / "leads.csv").exists()
    assert (tmp_path / "boligpartner" / "errors" / "leads.csv.errors.csv").exists()


def test_partners_list_shows_where_each_partners_files_arrive(
    cli: Cli, partners_file: Path
) -> None:
    listed = json.loads(cli("partners", "list", "--json").output)
    assert [(p["name"], p["inbox"] is not None) for p in listed] == [
        ("boligpartner", True),
        ("stromselskap", False),
    ]


def test_customers_import_with_alarm_contacts_prints_both_summaries(
    cli: Cli, tmp_path: Path
) -> None:
    crm = tmp_path / "crm.csv"
    crm.write_text(
        "kundenummer;e-post;kontraktstatus;produktkategorier;e-post_kilde;reservasjon_tilbudt\n"
        "K-1;kari@example.no;aktiv;alarm;salg;ja\nK-2;ikke-en-adresse;aktiv;alarm;salg;ja\n"
    )
    alarm = tmp_path / "alarm.csv"
    alarm.write_text("kundenummer;navn;telefon\nK-1;Nabo;41234567\n")
    result = cli("customers", "import", str(crm), "--alarm-contacts", str(alarm), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["customers"]["accepted"], out["customers"]["customers_added"]) == (1, 1)
    assert out["customers"]["errors"] == [{"row": 3, "field": "e-post", "reason": "invalid_email"}]
    assert out["alarm_contacts"]["exclusions_added"] == 1
    assert cli("suppress", "check", "--phone", "41234567").exit_code == 1


@pytest.mark.travel
def test_leads_notice_due_and_purge_report_in_json(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "leads.csv", [person(1)])
    cli("leads", "import", str(path), "--partner", "boligpartner")
    due = json.loads(cli("leads", "notice-due", "--json").output)
    assert due == {"due": [], "marked_sent": 0}  # imported today: not due yet
    purged = json.loads(cli("leads", "purge", "--json").output)
    assert purged == {
        "retention_days": 365,
        "contacts": 0,
        "consent_records": 0,
        "contact_sources": 0,
    }
