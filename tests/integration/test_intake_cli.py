"""`outreach leads`, `outreach partners` and `outreach customers` through the real CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests import clock, partner_files
from tests.conftest import Cli
from tests.partner_files import CONSENT_AT, person

pytestmark = pytest.mark.integration
# Exit codes (worker.cli): a setting missing or wrong; a file refused.
CONFIGURATION = 3
INPUT_REFUSED = 5


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


def test_a_file_refused_whole_exits_5_and_says_why(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("Fornavn\nÅse\n")
    result = cli("leads", "import", str(path), "--partner", "boligpartner")
    assert result.exit_code == INPUT_REFUSED
    said = " ".join(result.output.split())  # rich wraps lines at the terminal's width
    assert "notes.csv: missing_column" in said and "nothing imported" in said
    assert "Traceback" not in result.output


def test_leads_import_json_lists_the_refused_rows_and_the_report_path(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "leads.csv", ROWS)
    report = tmp_path / "report.csv"
    args = ("leads", "import", str(path), "--partner", "boligpartner")
    result = cli(*args, "--report", str(report), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["refused_rows"] == [{"row": 4, "field": "Mobil", "reason": "invalid_phone"}]
    assert summary["report"] == str(report) and report.exists()
    assert json.loads(cli(*args, "--json").stdout)["report"] is None


def test_a_repeated_import_says_when_and_as_which_import_it_was_done(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "leads.csv", ROWS)
    args = ("leads", "import", str(path), "--partner", "boligpartner")
    first = json.loads(cli(*args, "--json").stdout)
    again = json.loads(cli(*args, "--json").stdout)
    day = clock.NOW.astimezone(clock.OSLO).date().isoformat()
    said = (
        f"already imported on {day} as import {first['import_id']} (same content); nothing changed"
    )
    assert (again["status"], again["note"]) == ("already_imported", said)
    human = cli(*args)
    assert human.exit_code == 0
    assert said in " ".join(human.output.split())


def test_a_file_in_two_encodings_is_refused_and_imports_with_the_encoding_given(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    # person 1's row in UTF-8, person 2's (æøå in the names) pasted in from Windows-1252
    utf8 = partner_files.render([person(1)], "sheets")
    cp1252 = partner_files.render([person(2)], "sheets").decode().split("\n", 1)[1]
    path = tmp_path / "leads.csv"
    path.write_bytes(utf8 + cp1252.encode("cp1252"))
    args = ("leads", "import", str(path), "--partner", "boligpartner")
    refused = cli(*args)
    assert refused.exit_code == INPUT_REFUSED
    assert "mixed_encoding: line 3 (byte offset" in " ".join(refused.output.split())
    imported = json.loads(cli(*args, "--encoding", "windows-1252", "--json").stdout)
    assert (imported["status"], imported["accepted"]) == ("imported", 2)
    again = json.loads(cli(*args, "--encoding", "windows-1252", "--json").stdout)
    assert again["status"] == "already_imported"
    assert cli(*args).exit_code == INPUT_REFUSED  # as detected: still two encodings


def test_an_encoding_we_do_not_read_is_a_usage_error(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "leads.csv", ROWS)
    result = cli("leads", "import", str(path), "--partner", "boligpartner", "--encoding", "ebcdic")
    assert result.exit_code == 2
    assert "unsupported encoding 'ebcdic'" in result.output


def test_an_unknown_partner_stops_with_the_known_ones_named(
    cli: Cli, partners_file: Path, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "leads.csv", ROWS)
    result = cli("leads", "import", str(path), "--partner", "ukjent")
    assert result.exit_code == CONFIGURATION
    said = " ".join(result.output.split())
    assert "no partner 'ukjent'" in said and "boligpartner, stromselskap" in said


def test_a_wrong_partners_file_stops_naming_the_partner_and_the_key(
    cli: Cli, partners_file: Path
) -> None:
    partners_file.write_text('[partners.boligpartner]\ndisplay_name = "B"\ndelimiter = "|"\n')
    result = cli("partners", "list")
    assert result.exit_code == CONFIGURATION
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
