"""The run shared by the end-to-end scenarios: services, processes and the partner's leads.

The stack starts once for the module: redis-server, a throwaway PostgreSQL database
migrated by `outreach db upgrade` (the Procfile's release), the fakes, the SFTP server,
`outreach serve` (through the TCP proxy), `outreach clock`; then the partner's file
arrives over SFTP and `outreach partners poll` imports it; then two `outreach worker`
processes start. Each scenario sends its own campaign to its own group of leads (told
apart by postal code), so that no scenario's opt-outs or frequency cap touch another's.
Teardown stops every process group, whatever happened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from tests import clock, partner_files
from tests.e2e import evidence
from tests.e2e.stack import PARTNER, PG_HOST, PG_PORT, Stack, need_redis_server
from tests.services import throwaway_postgres
from tests.sftp_server import sftp_server
from tests.tcp_proxy import TcpProxy


@dataclass(frozen=True)
class Group:
    postal_prefix: str
    first: int  # lead numbers first .. first + size - 1
    size: int

    def numbers(self) -> range:
        return range(self.first, self.first + self.size)


# The scenarios' leads, by postal-code prefix (a campaign's audience filter).
GROUPS = {
    "opt-outs": Group("11", 1, 2500),
    "worker kills": Group("22", 3001, 2000),
    "redis restart": Group("33", 6001, 2000),
    "database cut": Group("44", 9001, 400),
    "email": Group("55", 10001, 150),
}
REFUSED = range(20001, 20006)  # rows without consent evidence: refused, in the error report


def phone_spelling(n: int) -> str:
    """Lead n's mobile number, written the ways partners' spreadsheets write them."""
    national = f"{41000000 + n}"
    spaced = f"{national[:3]} {national[3:5]} {national[5:]}"
    return (national, f"+47 {spaced}", f"0047 {national}", spaced)[n % 4]


def lead_rows(demo_start: datetime) -> list[dict[str, str]]:
    """The partner's file: every group's leads, with a consent two days before the run's
    demo time starts; and the rows without consent evidence."""
    consent = clock.days_ago(2, since=demo_start).strftime("%d.%m.%Y %H:%M")
    rows = []
    for group in GROUPS.values():
        for n in group.numbers():
            rows.append(
                partner_files.person(
                    n,
                    Mobil=phone_spelling(n),
                    Postnummer=f"{group.postal_prefix}{n % 100:02d}",
                    Samtykke_tidspunkt=consent,
                )
            )
    rows.extend(
        partner_files.person(n, Mobil=phone_spelling(n), Samtykke_tidspunkt="") for n in REFUSED
    )
    return rows


def used_identities() -> tuple[set[str], set[str]]:
    """(emails, national numbers) of every lead in the partner's file."""
    numbers = [n for g in GROUPS.values() for n in g.numbers()] + list(REFUSED)
    return {f"lead{n}@example.no" for n in numbers}, {f"{41000000 + n}" for n in numbers}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need_redis_server()
    root = tmp_path_factory.mktemp("e2e")
    with ExitStack() as contexts:
        url = contexts.enter_context(throwaway_postgres("outreach_e2e"))
        sftp_root = root / "sftp"
        for folder in ("inbox", "archive", "errors"):
            (sftp_root / folder).mkdir(parents=True)
        sftp = contexts.enter_context(sftp_server(sftp_root))
        proxy = contexts.enter_context(TcpProxy(PG_HOST, PG_PORT))
        s = Stack(root, url, sftp, proxy)
        contexts.callback(s.close)
        evidence.start_summary(
            {
                "logs": str(s.logs),
                "test_now": clock.NOW.isoformat(),
                "demo_now": s.demo_start.isoformat(),
            }
        )
        s.write_partners_file()
        s.start_redis()
        s.cli("db", "upgrade")
        s.twilio_url = s.start_fake("tests.fakes.twilio")
        s.mailchimp_url = s.start_fake("tests.fakes.mailchimp")
        s.start_web()
        s.start_clock()
        _partner_file_arrives(s, sftp_root)
        s.start_workers(2)
        yield s


def _partner_file_arrives(s: Stack, sftp_root: Path) -> None:
    """The partner uploads its spreadsheet export (Windows-1252, `;`) over SFTP; one poll
    imports it whole, archives it and writes the refused rows' report next to it."""
    rows = lead_rows(s.demo_start)
    s.upload("leads-uke-47.csv", partner_files.render(rows, "excel_nb"))
    polled = json.loads(s.cli("partners", "poll", "--partner", PARTNER, "--json"))
    assert [f["outcome"] for f in polled[0]["files"]] == ["archived"], polled
    imported = polled[0]["files"][0]["import"]
    assert imported["accepted"] == len(rows) - len(REFUSED)
    assert imported["refused"] == len(REFUSED)
    assert (sftp_root / "archive" / "leads-uke-47.csv").exists()
    assert list((sftp_root / "errors").iterdir()), "no error report for the refused rows"
