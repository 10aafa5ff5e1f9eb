"""Bad files never leak through (issue 18): each file of tests/data/bad/{register, alarm,
customers, optouts} goes through its import on the command line, on both stores, and is
refused whole: exit 5, one reason naming the file and what is wrong, no traceback, and
not a row of any table written. So are a field over the csv module's limit and a small
good file cut at every byte of its last row (both made here).

The store holds a register snapshot, a customer, alarm contacts and an opt-out before
each bad file: a refused block list leaves the previous one in force (guarantee 5).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Engine, func, select

from suppression.schema import metadata
from tests.clock import TODAY
from tests.conftest import Cli
from worker.output import EXIT_INPUT_REFUSED

pytestmark = pytest.mark.integration

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"

# Small good files: the seed of the store, and the files cut at every byte of their last row.
GOOD = {
    "register": "telefon;navn;adresse;postnummer;reservasjon\n41230001;;;;telefon\n41230002;;;;begge\n",
    "alarm": "kundenummer;navn;telefon;e-post\nK-1;Nabo;41230011;\nK-1;Bror;41230012;\n",
    "customers": (
        "customer_id;email;contract_status;email_source;opt_out_offered\n"
        "K-1;kari@example.com;active;sale;yes\nK-2;ola@example.com;active;sale;yes\n"
    ),
    "optouts": "ola.nordmann@example.com\nbjørn@example.com\n",
}
# The same files, another day: they do not repeat a content already imported.
CUT = {
    "register": "telefon;reservasjon\n41230003;telefon\n41230004;begge\n",
    "alarm": "kundenummer;navn;telefon;e-post\nK-1;Nabo;41230011;\nK-1;Bror;41230012;\nK-2;Søster;41230013;\n",
    "customers": (
        "customer_id;email;contract_status;email_source;opt_out_offered\n"
        "K-3;per@example.com;active;sale;yes\nK-4;anne@example.com;ended;web;no\n"
    ),
    "optouts": "Navn;E-post\nPer;per@example.com\nBjørn;bjørn.ås@example.com\n",
}

# What each bad file is refused as: the start of the reason, after the file's name.
EXPECTED = {
    "register": {
        "binary.csv": "not_text: line 3 holds binary data (NUL bytes)",
        "duplicate_header.csv": "duplicate_column: line 1, header: columns 1 and 3 are both 'telefon'",
        "empty.csv": "empty_file: the file is empty",
        "header_only.csv": "empty_file: a header and no rows, nothing replaced",
        "mixed_encoding.csv": "mixed_encoding: line 3",
        "truncated_in_quoted_field.csv": "truncated: line 3",
        "unbalanced_quote.csv": "unbalanced_quote: line 2: a quote opened there never closes",
        "unknown_column.csv": "unknown_column: line 1, header: column 2 'mobil'",
        "utf16_no_bom.csv": "not_text: the file looks like UTF-16 (little-endian) without its",
    },
    "alarm": {
        "binary.csv": "not_text:",
        "duplicate_header.csv": "duplicate_column: row 1: columns 3 and 4 both map to phone",
        "empty.csv": "empty_file:",
        "header_only.csv": "empty_file: a header and no rows",
        "mixed_encoding.csv": "mixed_encoding: line 3",
        "truncated_in_quoted_field.csv": "truncated: line 3",
        "unbalanced_quote.csv": "unbalanced_quote: line 2",
        "utf16_no_bom.csv": "not_text: the file looks like UTF-16 (little-endian) without its",
        "wrong_field_count.csv": "bad_rows: 1 of its rows cannot be read, nothing imported and the "
        "previous alarm contacts stay in force: row 3, row: wrong_field_count",
    },
    "customers": {
        "binary.csv": "not_text:",
        "duplicate_header.csv": "duplicate_column: row 1: columns 4 and 14 both map to email",
        "empty.csv": "empty_file:",
        "header_only.csv": "empty_file: a header and no rows",
        "mixed_encoding.csv": "mixed_encoding: line 3",
        "truncated_in_quoted_field.csv": "truncated: line 3",
        "unbalanced_quote.csv": "unbalanced_quote: line 2",
        "utf16_no_bom.csv": "not_text: the file looks like UTF-16 (little-endian) without its",
    },
    "optouts": {
        "binary.bin": "not_text: line 3 holds binary data (NUL bytes)",
        "duplicate_header.csv": "duplicate_column: line 1, header: columns 1 and 3 are both 'E-post'",
        "empty.txt": "empty_file: the file is empty",
        "header_only.csv": "empty_file: a header and no rows",
        "mixed_encoding.txt": "mixed_encoding: line 2",
        "truncated_in_quoted_field.csv": "truncated: line 3",
        "unbalanced_quote.csv": "unbalanced_quote: line 2: a quote opened there never closes",
        "utf16_no_bom.txt": "not_text: the file looks like UTF-16 (little-endian) without its",
    },
}
CASES = [(kind, name) for kind, files in EXPECTED.items() for name in files]


class Imports:
    """The four imports on the command line, against a store seeded with good files."""

    def __init__(self, cli: Cli, folder: Path) -> None:
        self.cli = cli
        self.folder = folder
        self.crm = self.write("crm.csv", GOOD["customers"])
        self.ok("register", "load", str(self.write("register.csv", GOOD["register"])))
        self.ok(
            "customers",
            "import",
            str(self.crm),
            "--alarm-contacts",
            str(self.write("alarm.csv", GOOD["alarm"])),
        )
        self.ok("suppress", "import", str(self.write("optouts.txt", GOOD["optouts"])))

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def ok(self, *args: str) -> None:
        result = self.run(*args)
        assert result.exit_code == 0, result.output

    def run(self, *args: str) -> Result:
        if args[:2] == ("register", "load"):
            args = (*args, "--date", TODAY.isoformat())
        elif args[:2] == ("suppress", "import"):
            args = (*args, "--reason", "unsubscribe")
        return self.cli(*args)

    def of(self, kind: str, path: Path) -> Result:
        """`path` through the import of `kind` (alarm contacts beside the good export)."""
        commands: dict[str, Callable[[], Result]] = {
            "register": lambda: self.run("register", "load", str(path)),
            "alarm": lambda: self.run(
                "customers", "import", str(self.crm), "--alarm-contacts", str(path)
            ),
            "customers": lambda: self.run("customers", "import", str(path)),
            "optouts": lambda: self.run("suppress", "import", str(path)),
        }
        return commands[kind]()


@pytest.fixture
def imports(cli: Cli, tmp_path: Path) -> Imports:
    return Imports(cli, tmp_path)


def row_counts(engine: Engine) -> dict[str, int]:
    """The rows of every table there is: nothing written means none of these moved."""
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
        }


def assert_refused_whole(result: Result, path: Path, reason: str) -> None:
    said = " ".join(result.output.split())
    assert result.exit_code == EXIT_INPUT_REFUSED, said
    assert f"{path.name}: {reason}" in said
    assert "Traceback" not in result.output and "Error:" not in result.output


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}/{n}" for k, n in CASES])
def test_a_bad_file_is_refused_whole_naming_it_and_writes_nothing(
    imports: Imports, engine: Engine, kind: str, name: str
) -> None:
    before = row_counts(engine)
    path = BAD / kind / name
    assert_refused_whole(imports.of(kind, path), path, EXPECTED[kind][name])
    assert row_counts(engine) == before


def test_every_file_of_the_corpus_has_its_expected_reason() -> None:
    on_disk = {(p.parent.name, p.name) for k in EXPECTED for p in (BAD / k).iterdir()}
    assert on_disk == set(CASES)


OVERSIZE = {
    # kind: (file name, the header and a good row, the row holding the huge field, "line N")
    "register": ("register2.csv", "telefon;reservasjon\n41230005;telefon\n", "{};telefon\n"),
    "alarm": ("alarm2.csv", "kundenummer;navn;telefon\nK-1;Nabo;41230011\n", "K-2;{};41230014\n"),
    "customers": (
        "crm2.csv",
        "customer_id;email;contract_status;email_source;opt_out_offered\n"
        "K-5;eva@example.com;active;sale;yes\n",
        'K-6;eva6@example.com;active;"{}";yes\n',
    ),
    "optouts": ("optouts2.csv", "E-post;Navn\nper@example.com;Per\n", "kari@example.com;{}\n"),
}


@pytest.mark.parametrize("kind", OVERSIZE)
def test_a_field_over_the_csv_limit_is_refused_naming_the_line_not_a_traceback(
    imports: Imports, engine: Engine, kind: str
) -> None:
    name, head, row = OVERSIZE[kind]
    huge = "x" * (csv.field_size_limit() + 1)
    path = imports.write(name, head + row.format(huge))
    before = row_counts(engine)
    result = imports.of(kind, path)
    assert_refused_whole(result, path, "malformed_csv: line 3: a field is longer than 131072")
    assert huge[:1000] not in result.output
    assert row_counts(engine) == before


@pytest.mark.parametrize("kind", CUT)
def test_a_good_file_cut_at_any_byte_of_its_last_row_is_refused_whole(
    imports: Imports, engine: Engine, kind: str
) -> None:
    data = CUT[kind].encode()
    last_row = data.rstrip(b"\n").rindex(b"\n") + 1
    before = row_counts(engine)
    for end in range(last_row + 1, len(data)):
        path = imports.write(f"cut-{kind}-{end}.csv", data[:end])
        result = imports.of(kind, path)
        said = " ".join(result.output.split())
        assert result.exit_code == EXIT_INPUT_REFUSED, (end, said)
        assert f"{path.name}: truncated: " in said, (end, said)
        assert "Traceback" not in result.output
        assert row_counts(engine) == before, end
    whole = imports.write(f"whole-{kind}.csv", data)
    assert imports.of(kind, whole).exit_code == 0  # the file itself is good
