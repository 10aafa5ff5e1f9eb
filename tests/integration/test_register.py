"""Register snapshots (Reservasjonsregisteret) on both stores: a load replaces the previous
snapshot atomically, keeps date, SHA-256 and counts, stores keyed hashes only (TP-1, GD-4),
and a bad file replaces nothing, naming the line and the field."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path

import pytest
from faker import Faker
from sqlalchemy import Engine, func, inspect, select, text

from suppression.errors import FileRefused
from suppression.keys import Hasher
from suppression.register import (
    MAX_ERRORS_SHOWN,
    RegisterHit,
    active_snapshot,
    load_snapshot,
    lookup,
    name_address_key,
)
from suppression.schema import register_entries, register_snapshots
from tests.clock import NOW, TODAY

pytestmark = pytest.mark.integration

# The snapshots' dates: an older wash and today's, both loaded at the suite's instant.
SECOND = TODAY
FIRST = SECOND - timedelta(days=30)


def plaintext_left(engine: Engine, needles: list[str]) -> list[tuple[str, str]]:
    """(table, needle) for every needle found in any column of any table."""
    found = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                cells = " ".join(str(v) for v in row).casefold()
                found += [(table, n) for n in needles if n.casefold() in cells]
    return found


def write(tmp_path: Path, content: str | bytes, name: str = "register.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def load(engine: Engine, hasher: Hasher, path: Path, day: date = FIRST) -> None:
    with engine.begin() as conn:
        load_snapshot(conn, hasher, path, day, now=NOW)


def hit(engine: Engine, hasher: Hasher, e164: str) -> RegisterHit | None:
    with engine.connect() as conn:
        snapshot = active_snapshot(conn)
        assert snapshot is not None
        return lookup(conn, snapshot, hasher.all_digests("phone", e164))


GOOD = "telefon;navn;adresse;postnummer;reservasjon\n+47 412 34 567;;;;telefon\n41234568;;;;post\n"


def test_a_load_keeps_the_date_the_sha256_and_the_counts(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    content = (
        "telefon;navn;adresse;postnummer;reservasjon\n"
        "412 34 567;;;;telefon\n"
        ";Kari Nordmann;Storgata 1;0155;post\n"
        "0047 41234569;Ola Nordmann;Bakkeveien 2;5003;begge\n"
    )
    path = write(tmp_path, content)
    with engine.begin() as conn:
        snap = load_snapshot(conn, hasher, path, FIRST, now=NOW)
    assert snap.snapshot_date == FIRST
    assert snap.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # Counts are of stored keys: the last row gives a phone key and a name+address key.
    assert (snap.row_count, snap.phone_reservations, snap.post_reservations) == (4, 3, 3)
    with engine.connect() as conn:
        assert active_snapshot(conn) == snap
        assert conn.execute(select(func.count()).select_from(register_entries)).scalar_one() == 4


def test_reservations_are_found_by_phone_in_any_spelling_and_by_name_and_address(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    content = (
        "telefon;navn;adresse;postnummer;reservasjon\n"
        "412 34 567;;;;telefon\n"
        ";Kari Nordmann;Storgata 1;0155;post\n"
    )
    load(engine, hasher, write(tmp_path, content))
    assert hit(engine, hasher, "+4741234567") == RegisterHit(True, False, FIRST)
    assert hit(engine, hasher, "+4741234599") is None
    key = name_address_key("KARI  NORDMANN", "Storgata 1.", "01 55")
    with engine.connect() as conn:
        snapshot = active_snapshot(conn)
        assert snapshot is not None
        assert lookup(conn, snapshot, [hasher.digest("name_address", key)]) == RegisterHit(
            False, True, FIRST
        )


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ";"), ("utf-8-sig", ","), ("cp1252", "\t")],
)
def test_windows_1252_and_bom_files_with_any_delimiter_give_the_same_keys(
    engine: Engine, hasher: Hasher, tmp_path: Path, encoding: str, delimiter: str
) -> None:
    rows = [
        ["navn", "adresse", "postnummer", "reservasjon"],
        ["Bjørn Ås", "Øvre gate 3", "0551", "post"],
    ]
    content = "\r\n".join(delimiter.join(r) for r in rows) + "\r\n"
    load(engine, hasher, write(tmp_path, content.encode(encoding)))
    digest = hasher.digest("name_address", name_address_key("Bjørn Ås", "Øvre gate 3", "0551"))
    with engine.connect() as conn:
        snapshot = active_snapshot(conn)
        assert snapshot is not None
        assert lookup(conn, snapshot, [digest]) is not None


def test_a_second_load_replaces_the_first(engine: Engine, hasher: Hasher, tmp_path: Path) -> None:
    load(
        engine,
        hasher,
        write(tmp_path, "telefon;reservasjon\n41234567;telefon\n41234568;telefon\n", "a.csv"),
    )
    load(
        engine,
        hasher,
        write(tmp_path, "telefon;reservasjon\n41234568;post\n41234569;begge\n", "b.csv"),
        SECOND,
    )
    assert hit(engine, hasher, "+4741234567") is None
    assert hit(engine, hasher, "+4741234568") == RegisterHit(False, True, SECOND)
    assert hit(engine, hasher, "+4741234569") == RegisterHit(True, True, SECOND)
    with engine.connect() as conn:
        snapshots = conn.execute(
            select(register_snapshots.c.snapshot_date, register_snapshots.c.active).order_by(
                register_snapshots.c.id
            )
        ).all()
        entries = conn.execute(select(func.count()).select_from(register_entries)).scalar_one()
    # The wash dates stay on record; only the active snapshot's hashes are kept.
    assert [tuple(s) for s in snapshots] == [(FIRST, False), (SECOND, True)]
    assert entries == 2


BAD_FILES = {
    "bad phone": (
        "telefon;reservasjon\n41234567;telefon\n12;telefon\n",
        "line 3, telefon:",
    ),
    "bad reservation": (
        "telefon;reservasjon\n41234567;kanskje\n",
        "line 2, reservasjon: must be telefon, post or begge",
    ),
    "missing field": ("telefon;reservasjon\n41234567;telefon\n41234568\n", "line 3, row:"),
    "neither phone nor name and address": (
        "telefon;navn;adresse;reservasjon\n;Kari Nordmann;;post\n",
        "line 2, telefon: a row needs a phone or a name and address",
    ),
    "line counted after blank lines": (
        "telefon;reservasjon\n41234567;telefon\n\n\n41234568;nei\n",
        "line 5, reservasjon",
    ),
    "wrong header": (
        "phone number;kind\n41234567;telefon\n",
        "missing_column: line 1, header: no column 'reservasjon'",
    ),
    "no identity column": ("postnummer;reservasjon\n0155;post\n", "line 1, header: needs a column"),
    "empty": ("", "empty_file: the file is empty"),
    "only blank lines": ("\r\n\r\n", "empty_file: the file is empty"),
    "header only": ("telefon;reservasjon\n", "empty_file: a header and no rows, nothing replaced"),
    "undecodable bytes": (
        b"telefon;reservasjon\n41234567;telefon\n\x81\x8d;post\n",
        "not_text: line 3: not UTF-8 or Windows-1252 text",
    ),
    # A second `telefon` column was read instead of the first: the reserved number of
    # the first column became callable.
    "two telefon columns": (
        "telefon;telefon;reservasjon\n41234567;41234599;telefon\n",
        "duplicate_column: line 1, header: columns 1 and 2 are both 'telefon'",
    ),
    "telefon and phone": (
        "telefon;reservasjon;phone\n41234567;telefon;41234599\n",
        "duplicate_column: line 1, header: columns 1 and 3 are both 'phone'",
    ),
    "unknown column": (
        "telefon;mobil;reservasjon\n41234567;41234599;telefon\n",
        "unknown_column: line 1, header: column 2 'mobil' is not one of telefon, navn,",
    ),
    "unnamed column": (
        "telefon;reservasjon;\n41234567;telefon;\n",
        "unknown_column: line 1, header: column 3 (no name)",
    ),
    "cut inside the last row": (
        "telefon;reservasjon\n41234567;telefon\n41234568;tele",
        "truncated: line 3: the last line has no line ending",
    ),
    "cut inside a quoted field": (
        'telefon;navn;adresse;reservasjon\n41234567;;;telefon\n;"Kari Nordmann";"Storg',
        "truncated: line 3:",
    ),
    "quote left open": (
        'telefon;navn;adresse;reservasjon\n41234567;"Kari;;telefon\n41234568;;;begge\n',
        "unbalanced_quote: line 2: a quote opened there never closes",
    ),
    "quote not doubled": (
        'telefon;navn;adresse;reservasjon\n41234567;"Kari" N;;telefon\n',
        "unbalanced_quote: line 2: a quote inside a quoted field is not doubled",
    ),
    "quoted line break": (
        'telefon;navn;adresse;reservasjon\n41234567;;"Storgata 1\n0155 Oslo";telefon\n',
        "unbalanced_quote: line 2: a quoted field holds a line break",
    ),
    "utf-8 and windows-1252 in one file": (
        "navn;adresse;reservasjon\nBjørn Ås;Storgata 1;post\n".encode()
        + "Kåre Ødegård;Storgata 2;post\n".encode("cp1252"),
        "mixed_encoding: line 3",
    ),
    "utf-16 without its byte order mark": (
        "telefon;reservasjon\n41234567;telefon\n".encode("utf-16-le"),
        "not_text: the file looks like UTF-16 (little-endian) without its byte order mark",
    ),
    "binary": (bytes(range(256)) * 4, "not_text: line 1 holds binary data"),
    "a workbook": (b"PK\x03\x04" + bytes(range(256)), "not_text: the file is a ZIP archive"),
    "a control character": (
        "telefon;reservasjon\n41234567;telefon\n41234568\x1b;post\n",
        "not_text: line 3 holds a control character",
    ),
}


@pytest.mark.parametrize(("content", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_replaces_nothing_and_names_the_line_and_field(
    engine: Engine, hasher: Hasher, tmp_path: Path, content: str | bytes, message: str
) -> None:
    good = write(tmp_path, GOOD, "good.csv")
    load(engine, hasher, good)
    with engine.connect() as conn:
        before = active_snapshot(conn)
    bad = write(tmp_path, content, "bad.csv")
    with pytest.raises(FileRefused) as refused:
        load(engine, hasher, bad, SECOND)
    assert message in str(refused.value)
    assert refused.value.path == str(bad)
    with engine.connect() as conn:
        assert active_snapshot(conn) == before
        assert conn.execute(select(func.count()).select_from(register_snapshots)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(register_entries)).scalar_one() == 2
    assert hit(engine, hasher, "+4741234567") == RegisterHit(True, False, FIRST)


def test_many_bad_rows_are_summed_up(engine: Engine, hasher: Hasher, tmp_path: Path) -> None:
    bad_rows = MAX_ERRORS_SHOWN + 5
    content = "telefon;reservasjon\n" + "41234567;nei\n" * bad_rows
    with pytest.raises(FileRefused) as refused:
        load(engine, hasher, write(tmp_path, content))
    message = str(refused.value)
    assert f"{bad_rows} bad rows, nothing replaced" in message
    assert "(and 5 more)" in message
    assert f"line {MAX_ERRORS_SHOWN + 1}," in message
    assert f"line {MAX_ERRORS_SHOWN + 2}," not in message


def test_a_bad_file_message_carries_no_phone_number_or_name(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    content = "telefon;navn;adresse;reservasjon\n4123456;Kari Nordmann;Storgata 1;nei\n"
    with pytest.raises(FileRefused) as refused:
        load(engine, hasher, write(tmp_path, content))
    assert "4123456" not in str(refused.value)
    assert "Nordmann" not in str(refused.value)


def test_only_hashes_are_stored(engine: Engine, hasher: Hasher, tmp_path: Path) -> None:
    fake = Faker("no_NO")  # Faker names Norwegian Bokmål no_NO (it has no nb_NO)
    Faker.seed(2)
    people = [
        (
            f"41{fake.unique.random_number(digits=6, fix_len=True)}",
            fake.name(),
            fake.street_address(),
            fake.postcode(),
        )
        for _ in range(20)
    ]
    content = "telefon;navn;adresse;postnummer;reservasjon\n" + "".join(
        f"{p};{n};{a};{z};begge\n" for p, n, a, z in people
    )
    load(engine, hasher, write(tmp_path, content))
    needles = [p for p, *_ in people] + [n for _, n, _, _ in people] + [a for _, _, a, _ in people]
    assert plaintext_left(engine, needles) == []
    with engine.connect() as conn:
        snapshot = active_snapshot(conn)
        assert snapshot is not None and snapshot.row_count == 40
