"""The partners file: a wrong one stops with a message naming the partner and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.sources.partners_config import parse_partners, partner
from suppression.errors import ConfigurationError

FILE = Path("/etc/outreach/partners.toml")

GOOD = """
[partners.boligpartner]
display_name = "Boligpartner AS"
encoding = "Windows-1252"
delimiter = "tab"
date_formats = ["%d/%m/%Y %H:%M"]

[partners.boligpartner.columns]
"Samtykke gitt" = "consent_at"

[partners.boligpartner.defaults]
company_named = "Trygg Hjem Alarm AS"

[partners.boligpartner.sftp]
host = "127.0.0.1"
port = 2222
user = "trygghjem"
private_key = "keys/id_ed25519"
known_hosts = "/abs/known_hosts"
inbox = "/inbox"

[partners.demo]
display_name = "Demo"
local_dir = "demo/partners/demo"
"""


def test_a_good_partners_file_is_read_with_paths_relative_to_it() -> None:
    found = parse_partners(GOOD, FILE)
    bolig = found["boligpartner"]
    assert bolig.source == "partner:boligpartner"
    assert (bolig.encoding, bolig.delimiter) == ("cp1252", "\t")
    assert bolig.sftp is not None
    assert bolig.sftp.private_key == Path("/etc/outreach/keys/id_ed25519")
    assert bolig.sftp.known_hosts == Path("/abs/known_hosts")
    assert (bolig.sftp.archive, bolig.sftp.errors) == ("archive", "errors")
    assert bolig.lead_format.columns == {"Samtykke gitt": "consent_at"}
    assert found["demo"].local_dir == Path("/etc/outreach/demo/partners/demo")


@pytest.mark.parametrize(
    ("body", "partner_name", "key"),
    [
        ('display_name = "X"\nsftp_host = "a"', "p", "sftp_host"),
        ('display_name = "X"\n[partners.p.columns]\n"Mobil" = "telefon"', "p", "columns.Mobil"),
        ('display_name = "X"\ndelimiter = "|"', "p", "delimiter"),
        ('display_name = "X"\nencoding = "ebcdic"', "p", "encoding"),
        ('display_name = "X"\ndate_formats = ["dd.mm.yyyy"]', "p", "date_formats"),
        ('display_name = "X"\n[partners.p.defaults]\nemail = "a@example.no"', "p", "defaults"),
        ("encoding = 'utf-8'", "p", "display_name"),
        (
            'display_name = "X"\n[partners.p.sftp]\nuser = "u"\nprivate_key = "k"\nknown_hosts = "h"',
            "p",
            "sftp.host",
        ),
        (
            'display_name = "X"\n[partners.p.sftp]\nhost = "h"\nport = 0\nuser = "u"\nprivate_key = "k"\nknown_hosts = "h"',
            "p",
            "sftp.port",
        ),
    ],
)
def test_a_wrong_key_names_the_partner_and_the_key(body: str, partner_name: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_partners(f"[partners.{partner_name}]\n{body}\n", FILE)
    assert caught.value.setting == "OUTREACH_PARTNERS_FILE"
    assert f"partner {partner_name!r}" in caught.value.reason
    assert f"key {key!r}" in caught.value.reason


def test_sftp_and_a_local_folder_together_are_refused() -> None:
    text = """
[partners.both]
display_name = "B"
local_dir = "x"

[partners.both.sftp]
host = "h"
user = "u"
private_key = "k"
known_hosts = "h"
"""
    with pytest.raises(ConfigurationError, match=r"partner 'both'.*either sftp or local_dir"):
        parse_partners(text, FILE)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[partners.Bolig Partner]\n", "not valid TOML"),
        ('[partners."Bolig Partner"]\ndisplay_name = "x"\n', "partner 'Bolig Partner': the name"),
        ('[partner.x]\ndisplay_name = "x"\n', "unknown key 'partner'"),
        ('partners = "x"\n', "partners must be a table"),
    ],
)
def test_a_malformed_partners_file_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_partners(text, FILE)


def test_an_unknown_partner_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"no partner 'x' \(known: boligpartner, demo\)"):
        partner(parse_partners(GOOD, FILE), "x")
