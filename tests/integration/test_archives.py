"""Archived partner files: an erasure rewrites them without the person, and they expire.
Files refused whole (the errors folder): an erasure deletes those holding the person, and
they expire by their mtime.

Each test runs on SQLite and PostgreSQL, and against a real SFTP server on loopback
(asyncssh, as in test_sftp_polling; paramiko as the client) and a local inbox folder.
Files are delivered and archived by the poller itself; every instant is the test clock's.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, RowMapping, select

from campaigns import people
from campaigns.archives import (
    DELETED,
    FAILED,
    GONE,
    REJECTED,
    REWRITTEN,
    Matches,
    erase,
    expire,
    imports_of,
)
from campaigns.polling import ARCHIVED, poll_partner
from campaigns.polling import REJECTED as REFUSED_WHOLE
from campaigns.rejected import erase_rejected
from campaigns.schema import archived_files, imports
from campaigns.sources import csvfile
from campaigns.sources.leadreader import LeadReader
from campaigns.sources.partner import LeadFormat
from campaigns.sources.partners_config import PartnerConfig, SftpConfig
from suppression.errors import RowError
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from tests import partner_files
from tests.clock import NOW, TestClock
from tests.partner_files import e164, person
from tests.sftp_server import SftpServer, sftp_server

pytestmark = pytest.mark.integration

NAME = "boligpartner"


@dataclass
class Site:
    """A partner's folders as the partner sees them, and the partner's configuration."""

    root: Path
    partner: PartnerConfig
    server: SftpServer | None = None

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def errors(self) -> Path:
        return self.root / "errors"

    @property
    def partners(self) -> dict[str, PartnerConfig]:
        return {self.partner.name: self.partner}


def sftp_partner(server: SftpServer, **changes: object) -> PartnerConfig:
    sftp = SftpConfig(
        host=server.host,
        port=server.port,
        user=NAME,
        private_key=server.client_key_path,
        known_hosts=server.known_hosts_path,
        inbox="/inbox",
        archive="/archive",
        errors="/errors",
        timeout_seconds=10,
    )
    sftp = sftp.model_copy(update=changes)
    return PartnerConfig(name=NAME, display_name="Boligpartner AS", sftp=sftp)


def _folders(root: Path) -> Path:
    for folder in ("inbox", "archive", "errors"):
        (root / folder).mkdir(parents=True)
    return root


@pytest.fixture(params=["sftp", "local"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    root = _folders(tmp_path / "partner-root")
    if request.param == "local":
        yield Site(root, PartnerConfig(name=NAME, display_name="Boligpartner AS", local_dir=root))
        return
    with sftp_server(root) as server:
        yield Site(root, sftp_partner(server), server)


@pytest.fixture
def sftp_site(tmp_path: Path) -> Iterator[Site]:
    root = _folders(tmp_path / "sftp-root")
    with sftp_server(root) as server:
        yield Site(root, sftp_partner(server), server)


def deliver(
    site: Site,
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    clock: TestClock,
    name: str,
    data: bytes,
) -> str:
    """The partner uploads `name` with a `.done` marker; the poller imports and archives it."""
    return _poll(site, engine, hasher, policy, clock, name, data, ARCHIVED)


def refuse(
    site: Site,
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    clock: TestClock,
    name: str,
    data: bytes,
) -> str:
    """The partner uploads `name`; the poller refuses it whole: to the errors folder."""
    return _poll(site, engine, hasher, policy, clock, name, data, REFUSED_WHOLE)


def _poll(
    site: Site,
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    clock: TestClock,
    name: str,
    data: bytes,
    outcome: str,
) -> str:
    (site.inbox / name).write_bytes(data)
    (site.inbox / (name + ".done")).touch()
    result = poll_partner(engine, hasher, policy, site.partner, now=clock())
    assert result.error is None, result.error
    assert [f.outcome for f in result.files] == [outcome]
    (filed,) = result.files
    moved, report = filed.archived_as, filed.report
    folder = site.archive if outcome == ARCHIVED else site.errors
    assert moved is not None and (folder / moved).exists()
    assert report is not None and (site.errors / report).exists()
    # Written by the poller at the test clock's instant, not the machine's.
    stamp(clock(), folder / moved, site.errors / report)
    return moved


def stamp(moment: datetime, *paths: Path) -> None:
    """Set the files' mtime (whole seconds: what SFTP reports)."""
    seconds = int(moment.timestamp())
    for path in paths:
        os.utime(path, (seconds, seconds))


def matches_of(hasher: Hasher, n: int) -> Matches:
    """Person n's identities as forget writes them: keyed hashes under every key."""
    return Matches.of_values(hasher, [("email", f"lead{n}@example.no"), ("phone", e164(n))])


def spellings(n: int) -> list[str]:
    """Person n's email and phone as the test looks for them in the bytes of a file."""
    national = f"{41000000 + n}"
    spaced = f"{national[:3]} {national[3:5]} {national[5:]}"
    return [f"lead{n}@example.no", e164(n), national, f"+47 {spaced}", spaced]


def assert_nowhere(data: bytes, values: list[str]) -> None:
    """None of `values` in `data` in any case, as ASCII/UTF-8/Windows-1252 or UTF-16 bytes."""
    for value in values:
        for spelled in {value, value.upper(), value.lower()}:
            for codec in ("utf-8", "utf-16-le", "utf-16-be"):
                assert spelled.encode(codec) not in data, f"{spelled!r} ({codec}) is still there"


def leads_of(path: Path, hasher: Hasher, policy: PolicyConfig) -> dict[str, tuple[Any, ...]]:
    """The leads an import reads from a file, by lead id, without their row numbers."""
    shape = csvfile.inspect(path)
    rows = csvfile.records(path, shape)
    header = next(rows)
    reader = LeadReader(path.name, header[1], LeadFormat(), hasher, policy, NOW)
    found: dict[str, tuple[Any, ...]] = {}
    errors: list[RowError] = []
    for row, cells in rows:
        lead = reader.read(row, cells, errors)
        if lead is not None:
            assert lead.lead_id is not None
            found[lead.lead_id] = tuple(lead)[1:]
    return found


def archived_rows(engine: Engine) -> list[RowMapping]:
    with engine.connect() as conn:
        return [
            r._mapping for r in conn.execute(select(archived_files).order_by(archived_files.c.id))
        ]


def assert_same_instant(stored: datetime, expected: datetime) -> None:
    """SQLite hands back the UTC time it stored without the zone; PostgreSQL an aware one."""
    assert (stored if stored.tzinfo else stored.replace(tzinfo=UTC)) == expected


# Person 2, besides their row: a row refused for its email that holds their phone spelled
# with spaces, and a row refused for its phone that holds their email in upper case. And
# a refused row of someone else, which must stay as it was.
THEIR_BAD_ROWS = [
    person(2, **{"E-post": "ikke-en-epost", "Mobil": "+47 410 00 002"}),
    person(2, **{"E-post": "LEAD2@EXAMPLE.NO", "Mobil": "123"}),
]
SOMEONE_ELSES_BAD_ROW = person(9, **{"E-post": "ikke-en-epost"})


@pytest.mark.parametrize("shape", ["excel_nb", "unicode_text", "sheets"])
def test_an_erasure_rewrites_the_archived_file_without_the_person_in_any_spelling(
    site: Site,
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    clock: TestClock,
    tmp_path: Path,
    shape: str,
) -> None:
    """Acceptance: the archived file of 3 people loses person 2's rows, the others stay
    byte for byte, and the file still imports the same leads for them."""
    rows = [person(1), THEIR_BAD_ROWS[0], person(2), SOMEONE_ELSES_BAD_ROW, THEIR_BAD_ROWS[1]]
    rows.append(person(3))
    original = partner_files.render(rows, shape)
    archived = deliver(site, engine, hasher, policy_config, clock, "leads.csv", original)
    text = original.decode(partner_files.SHAPES[shape][0])
    assert all(value in text for value in ("lead2@example.no", "41000002", "+47 410 00 002"))
    assert "LEAD2@EXAMPLE.NO" in text

    # The caller (forget) reads the imports before the erasure deletes the sources.
    with engine.begin() as conn:
        person2 = people.find(conn, hasher, email_identity("lead2@example.no"))
        assert person2.contact is not None
        import_ids = imports_of(conn, int(person2.contact["id"]))
        assert len(import_ids) == 1
        people.forget(conn, hasher, email_identity("lead2@example.no"), now=clock(), actor="test")
        assert imports_of(conn, int(person2.contact["id"])) == []  # hence: before forget

    traces = erase(
        engine, site.partners, import_ids, matches_of(hasher, 2), policy=policy_config, now=clock()
    )
    assert [(t.file, t.action, t.rows_removed) for t in traces] == [(archived, REWRITTEN, 3)]
    assert all(t.reason == "" for t in traces)

    data = (site.archive / archived).read_bytes()
    assert_nowhere(data, spellings(2))
    # The others' rows as the partner wrote them: same encoding, BOM, delimiter, line ends.
    kept = [person(1), SOMEONE_ELSES_BAD_ROW, person(3)]
    assert data == partner_files.render(kept, shape)
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    before.write_bytes(original)
    after.write_bytes(data)
    shape_before, shape_after = csvfile.inspect(before), csvfile.inspect(after)
    assert (shape_after.encoding, shape_after.delimiter) == (
        shape_before.encoding,
        shape_before.delimiter,
    )
    expected = leads_of(before, hasher, policy_config)
    del expected["L-00002"]
    assert leads_of(after, hasher, policy_config) == expected
    assert set(expected) == {"L-00001", "L-00003"}
    assert not list(site.archive.glob("*.part"))
    assert archived_rows(engine)[0]["rewritten_at"] is not None

    # Again: nothing of the person left, the file is not touched.
    again = erase(
        engine, site.partners, import_ids, matches_of(hasher, 2), policy=policy_config, now=clock()
    )
    assert [(t.action, t.rows_removed) for t in again] == [(REWRITTEN, 0)]
    assert (site.archive / archived).read_bytes() == data


def test_a_file_left_without_a_row_is_deleted_and_then_gone(
    site: Site, engine: Engine, hasher: Hasher, policy_config: PolicyConfig, clock: TestClock
) -> None:
    mine = deliver(
        site, engine, hasher, policy_config, clock, "bare-meg.csv",
        partner_files.render([person(2)]),
    )  # fmt: skip
    others = deliver(
        site, engine, hasher, policy_config, clock, "leads.csv",
        partner_files.render([person(1), person(2), person(3)]),
    )  # fmt: skip
    with engine.connect() as conn:
        person2 = people.find(conn, hasher, email_identity("lead2@example.no"))
        assert person2.contact is not None
        import_ids = imports_of(conn, int(person2.contact["id"]))
    assert len(import_ids) == 2
    traces = erase(
        engine, site.partners, import_ids, matches_of(hasher, 2), policy=policy_config, now=clock()
    )
    assert sorted((t.file, t.action, t.rows_removed) for t in traces) == [
        (mine, DELETED, 1),
        (others, REWRITTEN, 1),
    ]
    assert not (site.archive / mine).exists()
    assert_nowhere((site.archive / others).read_bytes(), spellings(2))
    recorded = {r["archived_as"]: r for r in archived_rows(engine)}
    assert recorded[mine]["deleted_at"] is not None
    assert recorded[others]["deleted_at"] is None

    again = erase(
        engine, site.partners, import_ids, matches_of(hasher, 2), policy=policy_config, now=clock()
    )
    assert sorted((t.file, t.action) for t in again) == [(mine, GONE), (others, REWRITTEN)]


def test_content_delivered_twice_is_one_import_and_both_archived_copies_are_erased(
    site: Site, engine: Engine, hasher: Hasher, policy_config: PolicyConfig, clock: TestClock
) -> None:
    data = partner_files.render([person(1), person(2), person(3)])
    first = deliver(site, engine, hasher, policy_config, clock, "leads-mai.csv", data)
    second = deliver(site, engine, hasher, policy_config, clock, "leads-mai-igjen.csv", data)
    rows = archived_rows(engine)
    assert [r["archived_as"] for r in rows] == [first, second]
    assert rows[0]["import_id"] == rows[1]["import_id"] is not None
    traces = erase(
        engine,
        site.partners,
        [int(rows[0]["import_id"])],
        matches_of(hasher, 2),
        policy=policy_config,
        now=clock(),
    )
    assert [(t.file, t.action, t.rows_removed) for t in traces] == [
        (first, REWRITTEN, 1),
        (second, REWRITTEN, 1),
    ]
    for name in (first, second):
        data_now = (site.archive / name).read_bytes()
        assert_nowhere(data_now, spellings(2))
        assert data_now == partner_files.render([person(1), person(3)])


def test_an_archived_file_expires_after_the_retention_period_and_is_kept_before(
    site: Site, engine: Engine, hasher: Hasher, policy_config: PolicyConfig, clock: TestClock
) -> None:
    start = clock()
    archived = deliver(
        site, engine, hasher, policy_config, clock, "leads.csv", partner_files.render([person(1)])
    )
    # Archived before migration 0010: nothing records it.
    (site.archive / "gammel.csv").write_bytes(partner_files.render([person(5)]))

    early = expire(engine, site.partners, now=start + timedelta(days=29))
    assert [r.as_dict() for r in early] == [
        {
            "partner": NAME, "ok": True, "error": None, "deleted": 0, "kept": 1, "gone": 0,
            "found": 1, "failed": 0, "rejected_deleted": 0, "rejected_kept": 0,
            "reports_deleted": 0,
        }
    ]  # fmt: skip
    assert (site.archive / archived).exists() and (site.archive / "gammel.csv").exists()

    later = start + timedelta(days=31)
    (result,) = expire(engine, site.partners, now=later)
    assert (result.deleted, result.kept, result.error) == (1, 1, None)
    assert not (site.archive / archived).exists()
    assert (site.archive / "gammel.csv").exists()  # 2 days after it was found
    recorded = {r["archived_as"]: r for r in archived_rows(engine)}
    assert recorded[archived]["deleted_at"] is not None
    assert_same_instant(recorded[archived]["deleted_at"], later)
    assert recorded["gammel.csv"]["deleted_at"] is None
    assert recorded["gammel.csv"]["import_id"] is None

    # The erasure of a person whose file expired: gone, nothing to do.
    with engine.connect() as conn:
        (import_id,) = conn.execute(select(imports.c.id)).scalars().all()
    traces = erase(
        engine, site.partners, [import_id], matches_of(hasher, 1), policy=policy_config, now=later
    )
    assert [(t.file, t.action) for t in traces if t.import_id == import_id] == [(archived, GONE)]

    (last,) = expire(engine, site.partners, now=start + timedelta(days=29 + 31))
    assert (last.deleted, last.kept) == (1, 0)
    assert list(site.archive.iterdir()) == []
    assert (result.reports_deleted, last.reports_deleted) == (1, 0)  # leads.csv's report
    assert list(site.errors.iterdir()) == []


def test_a_file_found_in_the_archive_is_linked_to_the_import_its_name_says(
    site: Site, engine: Engine, hasher: Hasher, policy_config: PolicyConfig, clock: TestClock
) -> None:
    """A poller that died between the move and the record: the next expiry records it, and
    the person's erasure finds it by its import."""
    archived = deliver(
        site, engine, hasher, policy_config, clock, "leads.csv",
        partner_files.render([person(1), person(2)]),
    )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(archived_files.delete())
    (result,) = expire(engine, site.partners, now=clock())
    assert (result.found, result.kept) == (1, 0)
    (row,) = archived_rows(engine)
    assert row["archived_as"] == archived and row["import_id"] is not None
    traces = erase(
        engine,
        site.partners,
        [int(row["import_id"])],
        matches_of(hasher, 1),
        policy=policy_config,
        now=clock(),
    )
    assert [(t.action, t.rows_removed) for t in traces] == [(REWRITTEN, 1)]
    assert_nowhere((site.archive / archived).read_bytes(), spellings(1))


def test_an_unreachable_sftp_partner_is_reported_and_the_others_go_on(
    sftp_site: Site,
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    clock: TestClock,
) -> None:
    assert sftp_site.server is not None
    start = clock()
    archived = deliver(
        sftp_site, engine, hasher, policy_config, clock, "leads.csv",
        partner_files.render([person(1), person(2)]),
    )  # fmt: skip
    closed = sftp_partner(sftp_site.server, port=1)
    # The same partner's archive, now unreachable, and a second partner that answers.
    other = sftp_partner(sftp_site.server).model_copy(update={"name": "andre"})
    later = start + timedelta(days=31)
    results = expire(engine, {NAME: closed, "andre": other}, now=later)
    assert [(r.partner, r.ok) for r in results] == [(NAME, False), ("andre", True)]
    assert results[0].error is not None and "cannot reach" in results[0].error
    assert (sftp_site.archive / archived).exists()

    with engine.connect() as conn:
        (import_id,) = conn.execute(select(imports.c.id)).scalars().all()
    traces = erase(
        engine, {NAME: closed}, [import_id], matches_of(hasher, 2), policy=policy_config, now=later
    )
    assert [(t.file, t.action) for t in traces] == [(archived, FAILED)]
    assert "cannot reach" in traces[0].reason
    for value in spellings(2):
        assert value not in traces[0].reason
    assert_nowhere(traces[0].reason.encode(), spellings(2))

    # Reachable again: the retry does it.
    traces = erase(
        engine, sftp_site.partners, [import_id], matches_of(hasher, 2), policy=policy_config,
        now=later,
    )  # fmt: skip
    assert [(t.action, t.rows_removed) for t in traces] == [(REWRITTEN, 1)]
    (result,) = expire(engine, sftp_site.partners, now=later)
    assert (result.deleted, result.error) == (1, None)
    assert not (sftp_site.archive / archived).exists()


def test_the_archive_methods_of_both_inboxes(site: Site, tmp_path: Path) -> None:
    from campaigns.polling import open_inbox

    (site.archive / "a.csv").write_bytes(b"one")
    local = tmp_path / "new"
    local.write_bytes(b"two\r\n")
    with open_inbox(site.partner) as inbox:
        assert [f.name for f in inbox.list_archive()] == ["a.csv"]
        dest = tmp_path / "fetched"
        assert inbox.fetch_archived("a.csv", dest) == 3 and dest.read_bytes() == b"one"
        inbox.replace_archived("a.csv", local)
        assert (site.archive / "a.csv").read_bytes() == b"two\r\n"
        assert inbox.delete_archived("a.csv") is True
        assert inbox.delete_archived("a.csv") is False
        with pytest.raises(FileNotFoundError):
            inbox.fetch_archived("a.csv", dest)
        assert inbox.list_archive() == []


# -- files refused whole: the errors folder ---------------------------------------------

# Refused whole for its header (no email or phone column): the cells hold them anyway.
NO_CONTACT_COLUMNS = ("Fornavn", "Etternavn", "Kontakt", "Notat")


def refused_csv(*contacts: str) -> bytes:
    """A partner file refused whole (missing_column) whose cells hold `contacts`."""
    rows = [{"Fornavn": "Åse", "Kontakt": c, "Notat": "ring etter kl. 16"} for c in contacts]
    return partner_files.render(rows, header=NO_CONTACT_COLUMNS)


def workbook(*cells: str) -> bytes:
    """A minimal Excel workbook (a zip of XML, compressed): refused whole, not CSV text."""
    strings = "".join(f"<si><t>{c}</t></si>" for c in cells)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        book.writestr("xl/sharedStrings.xml", f'<?xml version="1.0"?><sst>{strings}</sst>')
    return out.getvalue()


def test_a_rejected_file_expires_by_its_mtime_and_a_young_one_is_kept(
    site: Site, engine: Engine, hasher: Hasher, policy_config: PolicyConfig, clock: TestClock
) -> None:
    start = clock()
    old = refuse(
        site, engine, hasher, policy_config, clock, "gammel.csv", refused_csv("lead1@example.no")
    )
    clock.advance(timedelta(days=2))
    young = refuse(
        site, engine, hasher, policy_config, clock, "ny.csv", refused_csv("lead3@example.no")
    )
    assert sorted(p.name for p in site.errors.iterdir()) == [
        "gammel.csv", "gammel.csv.errors.csv", "ny.csv", "ny.csv.errors.csv",
    ]  # fmt: skip

    (result,) = expire(engine, site.partners, now=start + timedelta(days=31))
    assert result.as_dict() == {
        "partner": NAME, "ok": True, "error": None, "deleted": 0, "kept": 0, "gone": 0,
        "found": 0, "failed": 0, "rejected_deleted": 1, "rejected_kept": 1,
        "reports_deleted": 1,
    }  # fmt: skip
    assert not (site.errors / old).exists()
    assert sorted(p.name for p in site.errors.iterdir()) == [young, "ny.csv.errors.csv"]

    (later,) = expire(engine, site.partners, now=start + timedelta(days=32, seconds=1))
    assert (later.rejected_deleted, later.rejected_kept, later.reports_deleted) == (1, 0, 1)
    assert list(site.errors.iterdir()) == []


def test_forget_deletes_the_rejected_files_that_hold_the_person_in_any_spelling(
    site: Site,
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    clock: TestClock,
    tmp_path: Path,
) -> None:
    """Person 2 in four refused files: raw in a CSV without contact columns, the email in
    upper case, the phone with spaces and +47 in UTF-16 without its BOM, the national
    number in an Excel workbook. Person 9's refused files, here and at another partner,
    stay as they were, and so do the error reports."""

    def refused(name: str, data: bytes) -> str:
        return refuse(site, engine, hasher, policy_config, clock, name, data)

    raw = refused("raw.csv", refused_csv("lead2@example.no"))
    upper = refused("upper.csv", refused_csv("LEAD2@EXAMPLE.NO", "lead9@example.no"))
    utf16 = refused("utf16.csv", "Navn\tMobil\r\nÅse\t+47 410 00 002\r\n".encode("utf-16-le"))
    book = refused("liste.xlsx", workbook("Åse Ødegård", "41000002"))
    theirs = refused("andres.csv", refused_csv("lead9@example.no", "+47 410 00 009"))
    other_root = _folders(tmp_path / "andre-root")
    other = PartnerConfig(name="andre", display_name="Andre AS", local_dir=other_root)
    other_site = Site(other_root, other)
    elsewhere = refuse(
        other_site, engine, hasher, policy_config, clock, "andres.csv",
        refused_csv("lead9@example.no"),
    )  # fmt: skip
    reports = sorted(p.name for p in site.errors.glob("*.errors.csv"))
    assert len(reports) == 5
    before = {p: p.read_bytes() for p in (*site.errors.iterdir(), *other_root.rglob("*.*"))}

    partners = {**site.partners, "andre": other}
    traces = erase_rejected(partners, matches_of(hasher, 2))
    assert sorted((t.partner, t.file, t.action, t.kind) for t in traces) == sorted(
        (NAME, name, DELETED, REJECTED) for name in (raw, upper, utf16, book)
    )
    assert all(t.reason == "" and t.as_dict()["kind"] == "rejected" for t in traces)
    left = sorted(p.name for p in site.errors.iterdir())
    assert left == sorted([theirs, *reports])
    for path in (*site.errors.iterdir(), other_root / "errors" / elsewhere):
        assert path.read_bytes() == before[path]
        assert_nowhere(path.read_bytes(), spellings(2))

    assert erase_rejected(partners, matches_of(hasher, 2)) == []  # nothing left of them


def test_forget_reports_an_errors_folder_it_cannot_reach_and_deletes_a_damaged_workbook(
    sftp_site: Site,
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    clock: TestClock,
) -> None:
    assert sftp_site.server is not None
    damaged = workbook("lead1@example.no")
    damaged = damaged[:30] + bytes(64) + damaged[94:]  # a member's data overwritten
    book = refuse(sftp_site, engine, hasher, policy_config, clock, "liste.xlsx", damaged)
    closed = sftp_partner(sftp_site.server, port=1)
    (trace,) = erase_rejected({NAME: closed}, matches_of(hasher, 2))
    assert (trace.file, trace.action, trace.kind) == ("/errors", FAILED, REJECTED)
    assert "cannot reach" in trace.reason
    assert_nowhere(trace.reason.encode(), spellings(2))
    assert (sftp_site.errors / book).exists()

    (trace,) = erase_rejected(sftp_site.partners, matches_of(hasher, 2))
    assert (trace.file, trace.action, trace.reason) == (
        book, DELETED, "not readable: deleted whole",
    )  # fmt: skip
    assert not (sftp_site.errors / book).exists()

    missing = sftp_partner(sftp_site.server, errors="/nowhere")
    (result,) = expire(engine, {NAME: missing}, now=clock())
    assert result.error is not None and "cannot list /nowhere" in result.error


def test_the_errors_folder_methods_of_both_inboxes(
    site: Site, tmp_path: Path, clock: TestClock
) -> None:
    from campaigns.polling import open_inbox

    (site.errors / "a.csv").write_bytes(b"one")
    stamp(clock() - timedelta(days=40), site.errors / "a.csv")
    with open_inbox(site.partner) as inbox:
        (listed,) = inbox.list_errors()
        assert (listed.name, listed.size) == ("a.csv", 3)
        assert listed.modified_at == clock() - timedelta(days=40)
        dest = tmp_path / "fetched"
        assert inbox.fetch_error("a.csv", dest) == 3 and dest.read_bytes() == b"one"
        assert inbox.delete_error("a.csv") is True
        assert inbox.delete_error("a.csv") is False
        with pytest.raises(FileNotFoundError):
            inbox.fetch_error("a.csv", dest)
        assert inbox.list_errors() == []
