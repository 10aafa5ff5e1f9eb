"""Polling a partner's SFTP inbox: a real SFTP server (asyncssh) on loopback, paramiko as
the client, each test on SQLite and PostgreSQL. No test waits for time to pass: a
file's stability is counted in polls."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from campaigns.importresult import ALREADY_IMPORTED, IMPORTED
from campaigns.intake import import_lead_file
from campaigns.polling import (
    ARCHIVED,
    INCOMPLETE_GRACE,
    NEXT_POLL,
    REJECTED,
    PollResult,
    poll,
    poll_now,
    poll_partner,
)
from campaigns.schema import consent_records, contacts, imports, sftp_observations
from campaigns.sources.partners_config import PartnerConfig, SftpConfig
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from tests import partner_files
from tests.clock import NOW, TestClock
from tests.conftest import Cli
from tests.partner_files import person
from tests.sftp_server import SftpServer, known_hosts_line, new_key, sftp_server

pytestmark = pytest.mark.integration


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "sftp-root"
    for folder in ("inbox", "archive", "errors"):
        (root / folder).mkdir(parents=True)
    return root


@pytest.fixture
def server(root: Path) -> Iterator[SftpServer]:
    with sftp_server(root) as running:
        yield running


def partner_for(server: SftpServer, **changes: object) -> PartnerConfig:
    sftp = SftpConfig(
        host=server.host,
        port=server.port,
        user="boligpartner",
        private_key=server.client_key_path,
        known_hosts=server.known_hosts_path,
        inbox="/inbox",
        archive="/archive",
        errors="/errors",
        timeout_seconds=10,
    )
    sftp = sftp.model_copy(update=changes)
    return PartnerConfig(name="boligpartner", display_name="Boligpartner AS", sftp=sftp)


class Poller:
    """Polls the partner as the clock process does: a poll a minute, from the test clock."""

    def __init__(
        self,
        engine: Engine,
        hasher: Hasher,
        policy: PolicyConfig,
        partner: PartnerConfig,
        clock: TestClock,
    ) -> None:
        self.engine, self.hasher, self.policy, self.partner = engine, hasher, policy, partner
        self.clock = clock

    def __call__(self) -> PollResult:
        result = poll_partner(self.engine, self.hasher, self.policy, self.partner, now=self.clock())
        self.clock.advance(timedelta(minutes=1))
        assert result.error is None, result.error
        return result


@pytest.fixture
def poller(
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    server: SftpServer,
    clock: TestClock,
) -> Poller:
    return Poller(engine, hasher, policy_config, partner_for(server), clock)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def report_rows(path: Path) -> list[tuple[str, str, str]]:
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    assert rows[0] == ["row", "field", "reason"]
    return [(r[0], r[1], r[2]) for r in rows[1:]]


ROWS = [
    person(1),
    person(2, Mobil="123"),
    person(3),
    person(4, Selskap="Annet Firma AS", Kanaler="fax"),
]


def test_a_file_is_taken_once_it_stood_still_across_two_polls(
    poller: Poller, root: Path, engine: Engine
) -> None:
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    first = poller()
    assert (first.waiting, first.files) == (["leads.csv"], [])
    assert count(engine, imports) == 0
    second = poller()
    assert [(f.name, f.outcome) for f in second.files] == [("leads.csv", ARCHIVED)]
    assert second.files[0].result is not None and second.files[0].result.accepted == 2
    assert (root / "archive" / "leads.csv").exists()
    assert not (root / "inbox" / "leads.csv").exists()
    assert count(engine, sftp_observations) == 0


def test_a_file_still_growing_is_not_touched_until_it_stops(
    poller: Poller, root: Path, engine: Engine
) -> None:
    data = partner_files.render([person(n) for n in range(50)])
    path = root / "inbox" / "leads.csv"
    path.write_bytes(data[: len(data) // 2])
    assert poller().waiting == ["leads.csv"]
    path.write_bytes(data)  # the upload went on between the polls
    assert poller().waiting == ["leads.csv"]
    assert count(engine, imports) == 0
    taken = poller()
    assert taken.files[0].result is not None
    assert (taken.files[0].result.rows, taken.files[0].result.accepted) == (50, 50)


def test_a_part_file_is_never_taken_and_its_final_name_is_after_it_stood_still(
    poller: Poller, root: Path, engine: Engine
) -> None:
    part = partner_files.write(root / "inbox" / "leads.csv.part", ROWS)
    for _ in range(3):
        result = poller()
        assert (result.files, result.waiting) == ([], [])
    part.rename(root / "inbox" / "leads.csv")
    assert poller().waiting == ["leads.csv"]
    assert poller().files[0].outcome == ARCHIVED
    assert count(engine, imports) == 1


def test_a_done_marker_lets_a_file_be_taken_at_the_first_poll_and_is_removed(
    poller: Poller, root: Path
) -> None:
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    (root / "inbox" / "leads.csv.done").write_bytes(b"")
    result = poller()
    assert [f.outcome for f in result.files] == [ARCHIVED]
    assert list((root / "inbox").iterdir()) == []


def test_the_same_file_delivered_twice_imports_once_and_each_report_lists_the_refused_rows(
    poller: Poller, root: Path, engine: Engine
) -> None:
    """Acceptance: one import; the error report lists each refused row with its reason."""
    data = partner_files.render(ROWS)
    (root / "inbox" / "leads-mai.csv").write_bytes(data)
    poller()
    first = poller()
    (root / "inbox" / "leads-mai-igjen.csv").write_bytes(data)
    poller()
    again = poller()
    assert first.files[0].result is not None and first.files[0].result.status == IMPORTED
    assert again.files[0].result is not None and again.files[0].result.status == ALREADY_IMPORTED
    assert count(engine, imports) == 1
    assert count(engine, consent_records) == 2
    refused = [
        ("3", "Mobil", "invalid_phone"),
        ("5", "Kanaler", "unknown_channel"),
        ("5", "Selskap", "company_not_us"),
    ]
    assert report_rows(root / "errors" / "leads-mai.csv.errors.csv") == refused
    assert report_rows(root / "errors" / "leads-mai-igjen.csv.errors.csv") == [
        ("0", "file", "already_imported"),
        *refused,
    ]
    assert sorted(p.name for p in (root / "archive").iterdir()) == [
        "leads-mai-igjen.csv",
        "leads-mai.csv",
    ]


def test_an_error_report_holds_no_personal_data(poller: Poller, root: Path) -> None:
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    (root / "inbox" / "leads.csv.done").touch()
    poller()
    report = (root / "errors" / "leads.csv.errors.csv").read_bytes().decode("utf-8-sig")
    for row in ROWS:
        for value in (
            row["E-post"],
            row["Mobil"],
            row["Fornavn"],
            row["Etternavn"],
            row["Adresse"],
        ):
            assert value not in report


def test_a_crash_between_commit_and_move_never_imports_twice(
    poller: Poller, root: Path, engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    inbox_file = partner_files.write(root / "inbox" / "leads.csv", ROWS)
    # The poller's import committed, then the process died before the move:
    committed = import_lead_file(
        engine, hasher, policy_config, poller.partner.source, poller.partner.lead_format, inbox_file,
        filename="leads.csv", now=poller.clock(),
    )  # fmt: skip
    assert committed.status == IMPORTED
    (root / "inbox" / "leads.csv.done").touch()
    result = poller()
    assert [(f.outcome, f.result.status if f.result else None) for f in result.files] == [
        (ARCHIVED, ALREADY_IMPORTED)
    ]
    assert count(engine, imports) == 1 and count(engine, contacts) == 2
    assert report_rows(root / "errors" / "leads.csv.errors.csv")[0] == (
        "3",
        "Mobil",
        "invalid_phone",
    )


def test_a_file_refused_whole_goes_to_the_errors_folder_with_its_report(
    poller: Poller, root: Path, engine: Engine
) -> None:
    (root / "inbox" / "notes.csv").write_bytes("Fornavn;Etternavn\nÅse;Ødegård\n".encode("cp1252"))
    (root / "inbox" / "notes.csv.done").touch()
    result = poller()
    assert [f.outcome for f in result.files] == [REJECTED]
    assert (root / "errors" / "notes.csv").exists()
    assert report_rows(root / "errors" / "notes.csv.errors.csv") == [
        ("0", "file", "missing_column: needs an email or a phone column")
    ]
    assert count(engine, imports) == 0


def cut_in_its_last_row(rows: list[dict[str, str]]) -> tuple[bytes, bytes]:
    """(the whole file, the file cut in the middle of its last row's third field)."""
    data = partner_files.render(rows)
    last = data.rindex(b"\r\n", 0, len(data) - 2) + 2
    cut = data.index(b";", data.index(b";", last) + 1) + 3
    return data, data[:cut]


def test_a_file_that_ends_inside_a_row_waits_then_is_refused_once_it_stood_still_long_enough(
    poller: Poller, root: Path, engine: Engine
) -> None:
    _, cut = cut_in_its_last_row(ROWS)
    (root / "inbox" / "leads.csv").write_bytes(cut)
    assert poller().waiting == ["leads.csv"]  # first seen
    paused = poller()  # stood still one poll: taken, but it ends inside a row
    assert (paused.files, paused.waiting) == ([], ["leads.csv"])
    reason = "truncated: line 5: the file ends inside a row (3 of 13 fields and no line ending)"
    assert paused.incomplete == {"leads.csv": reason}
    assert (root / "inbox" / "leads.csv").exists() and not list((root / "errors").iterdir())
    poller.clock.advance(INCOMPLETE_GRACE)
    refused = poller()
    assert [f.outcome for f in refused.files] == [REJECTED]
    assert report_rows(root / "errors" / "leads.csv.errors.csv") == [("0", "file", reason)]
    assert (root / "errors" / "leads.csv").exists() and not (root / "inbox" / "leads.csv").exists()
    assert count(engine, imports) == 0 and count(engine, sftp_observations) == 0


def test_an_upload_that_paused_inside_a_row_is_imported_whole_when_the_rest_arrives(
    poller: Poller, root: Path, engine: Engine
) -> None:
    whole, cut = cut_in_its_last_row(ROWS)
    path = root / "inbox" / "leads.csv"
    path.write_bytes(cut)
    poller()
    assert list(poller().incomplete) == ["leads.csv"]
    path.write_bytes(whole)  # the upload went on
    assert poller().waiting == ["leads.csv"]
    taken = poller()
    assert [f.outcome for f in taken.files] == [ARCHIVED]
    assert taken.files[0].result is not None
    assert (taken.files[0].result.rows, taken.files[0].result.accepted) == (4, 2)
    assert count(engine, imports) == 1


def test_a_file_with_a_done_marker_that_ends_inside_a_row_is_refused_at_once(
    poller: Poller, root: Path, engine: Engine
) -> None:
    _, cut = cut_in_its_last_row(ROWS)
    (root / "inbox" / "leads.csv").write_bytes(cut)
    (root / "inbox" / "leads.csv.done").touch()
    result = poller()
    assert [f.outcome for f in result.files] == [REJECTED]
    assert report_rows(root / "errors" / "leads.csv.errors.csv")[0][2].startswith("truncated:")
    assert count(engine, imports) == 0


def test_a_changed_host_key_refuses_to_connect_and_says_so(
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    server: SftpServer,
    root: Path,
    tmp_path: Path,
) -> None:
    pinned = tmp_path / "known_hosts"
    pinned.write_text(known_hosts_line(server.host, server.port, new_key()))
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    (root / "inbox" / "leads.csv.done").touch()
    result = poll_partner(
        engine, hasher, policy_config, partner_for(server, known_hosts=pinned), now=NOW
    )
    assert result.error is not None and "does not match the key pinned" in result.error
    assert not result.ok and result.files == []
    assert (root / "inbox" / "leads.csv").exists()
    assert count(engine, imports) == 0


def test_an_unknown_host_key_refuses_to_connect_and_says_so(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, server: SftpServer, tmp_path: Path
) -> None:
    pinned = tmp_path / "known_hosts"
    pinned.write_text(known_hosts_line("sftp.example.no", 22, new_key()))
    result = poll_partner(
        engine, hasher, policy_config, partner_for(server, known_hosts=pinned), now=NOW
    )
    assert result.error is not None and "is not pinned" in result.error


def test_a_key_the_server_does_not_know_is_refused(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, server: SftpServer, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger_ed25519"
    stranger.write_bytes(new_key().export_private_key("openssh"))
    result = poll_partner(
        engine, hasher, policy_config, partner_for(server, private_key=stranger), now=NOW
    )
    assert result.error is not None and "refused our key" in result.error


def test_a_partner_nobody_listens_for_fails_within_the_timeout_and_others_are_still_polled(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, server: SftpServer, root: Path
) -> None:
    closed = partner_for(server, port=1).model_copy(update={"name": "borte"})
    good = partner_for(server)
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    (root / "inbox" / "leads.csv.done").touch()
    results = poll(engine, hasher, policy_config, {"borte": closed, "boligpartner": good}, now=NOW)
    assert results[0].error is not None and "cannot reach" in results[0].error
    assert results[1].ok and [f.outcome for f in results[1].files] == [ARCHIVED]


# Issue 19 point 6: the first poll names when a file can be taken; `--now` takes a file
# whose size stood still between its two looks, in the same command.


def test_a_file_first_seen_says_it_is_taken_at_the_next_poll_and_from_when(
    poller: Poller, root: Path, clock: TestClock
) -> None:
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    seen_at = clock()
    first = poller()
    assert first.waiting == ["leads.csv"]
    assert first.earliest == {"leads.csv": seen_at + NEXT_POLL}
    assert first.as_dict()["earliest"] == {"leads.csv": (seen_at + NEXT_POLL).isoformat()}


def test_a_file_that_ends_inside_a_row_says_it_waits_for_the_grace(
    poller: Poller, root: Path, clock: TestClock
) -> None:
    _, cut = cut_in_its_last_row(ROWS)
    (root / "inbox" / "leads.csv").write_bytes(cut)
    seen_at = clock()
    poller()
    stood = poller()
    assert "leads.csv" in stood.incomplete
    assert stood.earliest["leads.csv"] == seen_at + INCOMPLETE_GRACE


def poll_now_with(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    partner: PartnerConfig,
    clock: TestClock,
    between: object = None,
) -> PollResult:
    """`poll_now` with a settle that moves the test clock (and runs `between` first: the
    upload going on while the poller waits)."""

    def settle() -> datetime:
        if callable(between):
            between()
        return clock.advance(timedelta(seconds=3))

    (result,) = poll_now(
        engine, hasher, policy, {partner.name: partner}, partner.name, now=clock(), settle=settle
    )
    assert result.error is None, result.error
    return result


def test_poll_now_takes_a_file_first_seen_once_its_size_stood_still_between_two_looks(
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    server: SftpServer,
    root: Path,
    clock: TestClock,
) -> None:
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    result = poll_now_with(engine, hasher, policy_config, partner_for(server), clock)
    assert [(f.name, f.outcome) for f in result.files] == [("leads.csv", ARCHIVED)]
    assert result.waiting == [] and result.earliest == {}
    assert count(engine, imports) == 1
    assert (root / "archive" / "leads.csv").exists()


def test_poll_now_leaves_a_file_that_grew_between_its_two_looks(
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    server: SftpServer,
    root: Path,
    clock: TestClock,
) -> None:
    data = partner_files.render([person(n) for n in range(20)])
    path = root / "inbox" / "leads.csv"
    path.write_bytes(data[: len(data) // 2])
    result = poll_now_with(
        engine, hasher, policy_config, partner_for(server), clock, lambda: path.write_bytes(data)
    )
    assert (result.files, result.waiting) == ([], ["leads.csv"])
    assert count(engine, imports) == 0


def test_poll_now_without_a_waiting_file_looks_once(
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    server: SftpServer,
    root: Path,
    clock: TestClock,
) -> None:
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    (root / "inbox" / "leads.csv.done").write_bytes(b"")

    def settle() -> datetime:
        raise AssertionError("nothing waited: no second look")

    (result,) = poll_now(
        engine,
        hasher,
        policy_config,
        {"boligpartner": partner_for(server)},
        now=clock(),
        settle=settle,
    )
    assert [f.outcome for f in result.files] == [ARCHIVED]


def sftp_partners_file(tmp_path: Path, server: SftpServer) -> Path:
    path = tmp_path / "partners.toml"
    path.write_text(
        f"""
[partners.boligpartner]
display_name = "Boligpartner AS"
[partners.boligpartner.sftp]
host = "{server.host}"
port = {server.port}
user = "boligpartner"
private_key = "{server.client_key_path}"
known_hosts = "{server.known_hosts_path}"
inbox = "/inbox"
archive = "/archive"
errors = "/errors"
""",
        encoding="utf-8",
    )
    return path


def test_the_cli_names_the_file_and_when_it_is_taken_then_poll_now_takes_it(
    cli: Cli, server: SftpServer, root: Path, tmp_path: Path
) -> None:
    cli.env["OUTREACH_PARTNERS_FILE"] = str(sftp_partners_file(tmp_path, server))
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    first = cli("partners", "poll")
    assert first.exit_code == 0, first.output
    assert "leads.csv: still arriving" in first.output
    assert "taken at the next poll from " in first.output and "Europe/Oslo" in first.output
    assert "partners poll --now" in first.output
    taken = cli("partners", "poll", "--now", "--settle", "0")
    assert taken.exit_code == 0, taken.output
    assert "leads.csv: imported, 2 accepted, 2 refused" in taken.output
    assert (root / "archive" / "leads.csv").exists()


def test_the_cli_poll_now_takes_a_new_file_in_one_command(
    cli: Cli, server: SftpServer, root: Path, tmp_path: Path
) -> None:
    cli.env["OUTREACH_PARTNERS_FILE"] = str(sftp_partners_file(tmp_path, server))
    partner_files.write(root / "inbox" / "leads.csv", ROWS)
    result = cli("partners", "poll", "--now", "--settle", "0.2", "--json")
    assert result.exit_code == 0, result.output
    (polled,) = json.loads(result.stdout)  # the SSH libraries log on stderr
    assert [f["outcome"] for f in polled["files"]] == [ARCHIVED]
    assert polled["waiting"] == []
