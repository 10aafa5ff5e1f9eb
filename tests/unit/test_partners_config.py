"""The partners file validated whole (docs/partners.md): every error listed, each naming
the partner and the key; `outreach partners check` exits 3 on any, 0 on none."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from campaigns.sources.partners_config import (
    SETTING,
    PartnersFileInvalid,
    check_partners,
    load_partners,
    parse_partners,
)
from tests.conftest import SECRET
from worker.output import EXIT_CONFIGURATION

DOC = Path(__file__).resolve().parents[2] / "docs" / "partners.md"
FILE = Path("/etc/outreach/partners.toml")


def documented_example() -> str:
    match = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, "docs/partners.md has no TOML example"
    return match[1]


def laid_out(tmp_path: Path) -> Path:
    """The documented example as a partners file, with the folders and keys it names."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "boligpartner_ed25519").write_text("not a real key\n")
    (tmp_path / "keys" / "known_hosts").write_text("sftp.example.no ssh-ed25519 AAAA\n")
    (tmp_path / "partners" / "stromselskap").mkdir(parents=True)
    path = tmp_path / "partners.toml"
    path.write_text(documented_example(), encoding="utf-8")
    return path


def test_the_documented_example_is_a_good_partners_file(tmp_path: Path) -> None:
    found = load_partners(laid_out(tmp_path))
    assert sorted(found) == ["boligpartner", "naboforeningen", "stromselskap"]
    assert found["boligpartner"].date_formats == ["%d/%m/%Y %H:%M", "%d/%m/%Y"]
    assert found["stromselskap"].local_dir == tmp_path / "partners" / "stromselskap"
    assert check_partners(found) == []


@pytest.mark.parametrize(
    "fmt",
    [
        "%d.%m.%Q %H:%M",  # no such directive
        "%d.%m.%Y %",  # a stray %
        "%d.%m %H:%M",  # no year
        "%d.%m.%Y %I:%M",  # a 12-hour clock without AM/PM reads 13:45 as 01:45
        "dd.mm.yyyy",  # no directive at all
    ],
)
def test_a_date_format_that_cannot_read_a_date_is_refused_naming_the_partner_and_key(
    fmt: str,
) -> None:
    text = f'[partners.bolig]\ndisplay_name = "B"\ndate_formats = ["%d.%m.%Y", {fmt!r}]\n'
    with pytest.raises(PartnersFileInvalid) as caught:
        parse_partners(text.replace("'", '"'), FILE)
    assert caught.value.setting == SETTING
    assert caught.value.problems == (
        f"partner 'bolig', key 'date_formats': {fmt!r} is not a strptime format of a day, "
        "month and year (like %d.%m.%Y %H:%M)",
    )


def test_every_error_of_the_file_is_listed_not_only_the_first() -> None:
    text = """
[partners.a]
display_name = "A"
delimiter = "|"
sftp_host = "h"

[partners.b]
encoding = "ebcdic"

[partners.c]
display_name = "C"
name = "d"

[partner.x]
display_name = "X"
"""
    with pytest.raises(PartnersFileInvalid) as caught:
        parse_partners(text, FILE)
    problems = caught.value.problems
    assert [p.split(":", 1)[0] for p in problems] == [
        "partner 'c', key 'name'",
        "partner 'a', key 'delimiter'",
        "partner 'a', key 'sftp_host'",
        "partner 'b', key 'display_name'",
        "partner 'b', key 'encoding'",
        "unknown key 'partner' (only [partners.NAME])",
    ]
    assert f"{FILE}: 6 errors: " in caught.value.reason


def test_a_local_dir_that_does_not_exist_is_an_error_of_the_check(tmp_path: Path) -> None:
    path = tmp_path / "partners.toml"
    path.write_text('[partners.bolig]\ndisplay_name = "B"\nlocal_dir = "inboxes/bolig"\n')
    (tmp_path / "not-a-folder").write_text("")
    found = load_partners(path)
    assert check_partners(found) == [
        f"partner 'bolig', key 'local_dir': {tmp_path / 'inboxes' / 'bolig'} does not exist"
    ]


def test_sftp_key_files_that_do_not_exist_are_errors_of_the_check(tmp_path: Path) -> None:
    path = tmp_path / "partners.toml"
    path.write_text(
        '[partners.bolig]\ndisplay_name = "B"\n[partners.bolig.sftp]\nhost = "h"\n'
        'user = "u"\nprivate_key = "keys/id"\nknown_hosts = "keys/known_hosts"\n'
    )
    assert check_partners(load_partners(path)) == [
        f"partner 'bolig', key 'sftp.private_key': {tmp_path / 'keys' / 'id'}: no such file",
        f"partner 'bolig', key 'sftp.known_hosts': {tmp_path / 'keys' / 'known_hosts'}: "
        "no such file",
    ]


def check(tmp_path: Path, partners_file: Path, *args: str) -> Result:
    from worker.cli import main

    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'outreach.db'}",  # never opened by the check
        "OUTREACH_SECRET_KEY": SECRET,
        "OUTREACH_PARTNERS_FILE": str(partners_file),
    }
    return CliRunner().invoke(main, ["partners", "check", *args], env=env)


def test_partners_check_exits_0_and_lists_the_partners_of_a_good_file(tmp_path: Path) -> None:
    result = check(tmp_path, laid_out(tmp_path))
    assert result.exit_code == 0, result.output
    assert "3 partners, no errors" in result.output
    assert "naboforeningen: no inbox" in result.output


def test_partners_check_exits_3_naming_each_partner_and_key(tmp_path: Path) -> None:
    path = tmp_path / "partners.toml"
    path.write_text(
        '[partners.bolig]\ndisplay_name = "B"\nlocal_dir = "missing"\n\n'
        '[partners.strom]\ndisplay_name = "S"\ndate_formats = ["%d.%m %H:%M"]\n'
    )
    result = check(tmp_path, path)
    assert result.exit_code == EXIT_CONFIGURATION
    lines = [" ".join(line.split()) for line in result.output.splitlines() if line.strip()]
    assert lines == [
        f"error: setting {SETTING}: {path}: partner 'strom', key 'date_formats': "
        "'%d.%m %H:%M' is not a strptime format of a day, month and year (like %d.%m.%Y %H:%M)"
    ]
    path.write_text('[partners.bolig]\ndisplay_name = "B"\nlocal_dir = "missing"\n')
    result = check(tmp_path, path, "--json")
    assert result.exit_code == EXIT_CONFIGURATION
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["errors"] == [
        f"{path}: partner 'bolig', key 'local_dir': {tmp_path / 'missing'} does not exist"
    ]
    assert "Traceback" not in result.output


def test_partners_check_of_a_missing_file_exits_3(tmp_path: Path) -> None:
    result = check(tmp_path, tmp_path / "nowhere.toml")
    assert result.exit_code == EXIT_CONFIGURATION
    assert "nowhere.toml: no such file" in result.output
