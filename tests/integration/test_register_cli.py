"""`outreach register load` and `register status` through the real CLI, on both stores."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.clock import TODAY
from tests.conftest import Cli
from worker.output import EXIT_INPUT_REFUSED

pytestmark = pytest.mark.integration


GOOD = "telefon;reservasjon\n+47 412 34 567;telefon\n41234568;begge\n"
# Snapshot dates: an older wash and today's (the commands run at the suite's instant).
FIRST = (TODAY - timedelta(days=30)).isoformat()
SECOND = TODAY.isoformat()


def test_register_load_reports_date_checksum_and_counts_as_json(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text(GOOD, encoding="utf-8")
    result = cli("register", "load", str(path), "--date", FIRST, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["snapshot_date"] == FIRST
    assert payload["sha256"] == hashlib.sha256(GOOD.encode()).hexdigest()
    assert (payload["rows"], payload["phone_reservations"], payload["post_reservations"]) == (
        2,
        2,
        1,
    )
    status = json.loads(cli("register", "status", "--json").output)
    assert status["snapshot_date"] == FIRST
    assert status["sha256"] == payload["sha256"]


def test_register_load_without_json_says_what_it_loaded(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text(GOOD, encoding="utf-8")
    result = cli("register", "load", str(path), "--date", SECOND)
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 phone numbers (2 reserved against calls, 1 against post)" in result.output


def test_a_bad_register_file_exits_5_naming_the_line_and_field_and_keeps_the_old_one(
    cli: Cli, tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8")
    assert cli("register", "load", str(good), "--date", FIRST).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("telefon;reservasjon\n41234569;telefon\n41234570;kanskje\n", encoding="utf-8")
    result = cli("register", "load", str(bad), "--date", SECOND)
    assert result.exit_code == EXIT_INPUT_REFUSED
    assert "line 3, reservasjon" in result.output
    assert "41234570" not in result.output
    status = json.loads(cli("register", "status", "--json").output)
    assert status["snapshot_date"] == FIRST


# Three rows: one a phone number with a name and address, one a name and address only,
# one both again; reservations against calls (telefon), post, or both (begge).
MIXED = (
    "telefon;navn;adresse;postnummer;reservasjon\n"
    "41234567;Kari Nordmann;Storgata 1;0155;begge\n"
    ";Ola Nordmann;Storgata 2;0155;post\n"
    "41234568;Per Hansen;Storgata 3;0155;begge\n"
)


def test_register_load_says_rows_and_what_each_became_not_keys(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text(MIXED, encoding="utf-8")
    result = cli("register", "load", str(path), "--date", SECOND)
    assert result.exit_code == 0, result.output
    assert (
        "3 rows: 2 phone numbers (2 reserved against calls, 2 against post), "
        "3 names with address (2 reserved against calls, 3 against post)"
    ) in result.output
    assert "keys" not in result.output
    payload = json.loads(cli("register", "load", str(path), "--date", SECOND, "--json").output)
    assert (payload["rows"], payload["keys"]) == (3, 5)
    assert payload["phone_numbers"] == {"count": 2, "reserved_phone": 2, "reserved_post": 2}
    assert payload["names_with_address"] == {"count": 3, "reserved_phone": 2, "reserved_post": 3}


def test_register_load_needs_a_valid_date(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text(GOOD, encoding="utf-8")
    result = cli("register", "load", str(path), "--date", "2. mars")
    assert result.exit_code == 2
    assert "--date" in result.output


def test_a_field_over_the_csv_limit_is_refused_naming_the_file_and_line_not_a_traceback(
    cli: Cli, tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8")
    assert cli("register", "load", str(good), "--date", FIRST).exit_code == 0
    huge = tmp_path / "huge.csv"
    field = "4" * (csv.field_size_limit() + 1)
    huge.write_text(f"telefon;reservasjon\n41234569;telefon\n{field};telefon\n", encoding="utf-8")
    result = cli("register", "load", str(huge), "--date", SECOND)
    assert result.exit_code == EXIT_INPUT_REFUSED
    said = " ".join(result.output.split())
    assert f"{huge}: malformed_csv: line 3: a field is longer than" in said
    assert "Traceback" not in result.output and field not in result.output
    assert json.loads(cli("register", "status", "--json").output)["snapshot_date"] == FIRST


def test_a_second_telefon_column_refuses_the_file_naming_the_column(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "register.csv"
    path.write_text("telefon;reservasjon;telefon\n41234567;telefon;41234599\n", encoding="utf-8")
    result = cli("register", "load", str(path), "--date", SECOND)
    assert result.exit_code == EXIT_INPUT_REFUSED
    said = " ".join(result.output.split())
    assert "duplicate_column: line 1, header: columns 1 and 3 are both 'telefon'" in said
    assert json.loads(cli("register", "status", "--json").output) is None
