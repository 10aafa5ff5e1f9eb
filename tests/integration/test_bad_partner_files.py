"""Bad partner files are refused whole, with one error naming the file, the line and the
reason, and nothing written: the corpus in tests/data/bad/partner (one file per way a
file goes wrong, see its README) and generated cases (a field past the csv module's
limit, a good file cut at every byte of its last row), through the intake and through
`outreach leads import`. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

import worker.db  # noqa: F401  (registers every table on the metadata)
from campaigns.importresult import IMPORTED, REFUSED, ImportResult
from campaigns.intake import import_lead_file
from campaigns.sources.partner import LeadFormat
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from suppression.schema import metadata
from tests import clock, partner_files
from tests.conftest import Cli
from tests.partner_files import person

pytestmark = pytest.mark.integration
CORPUS = Path(__file__).parents[1] / "data" / "bad" / "partner"
INPUT_REFUSED = 5  # the exit code of a refused file (worker.cli)
SOURCE = "partner:boligpartner"

# Each file of the corpus and the start of the one reason it is refused for.
REFUSALS = {
    "binary_junk.csv": "not_text: the file holds binary data (control characters), not text",
    "blank_lines.csv": "empty_file: no header row",
    "duplicate_headers.csv": "duplicate_column: 'Telefon' and another column both map to phone",
    "empty.csv": "empty_file: no header row",
    "excel_workbook.csv": "not_text: the file is a ZIP archive (an Excel workbook?), not CSV text",
    "header_only.csv": "no_rows: the file has a header row and no rows",
    "misspelled_header.csv": (
        "missing_column: no column for consent_at (ES-1); headers that matched nothing: "
        "'Samtykketidspkt' (closest: 'samtykketidspunkt')"
    ),
    "mixed_encoding.csv": (
        "mixed_encoding: line 5 (byte offset 603): a byte that is not UTF-8 in a file that "
        "also holds UTF-8"
    ),
    "not_windows_1252.csv": (
        "not_text: line 5 (byte offset 594): the file is not UTF-8 or Windows-1252 text"
    ),
    "quote_swallows_rows.csv": "unbalanced_quote: line 3: a quoted field from there holds",
    "quote_then_text.csv": "unbalanced_quote: line 3: a quote inside a quoted field",
    "truncated_character.csv": (
        "truncated: line 3 (byte offset 291): the file ends inside a character"
    ),
    "truncated_in_quotes.csv": "truncated: line 4: the file ends inside a quoted field",
    "truncated_row.csv": (
        "truncated: line 4: the file ends inside a row (5 of 13 fields and no line ending)"
    ),
    "unbalanced_quote.csv": "unbalanced_quote: line 3: a quote opened there never closes",
    "utf16_without_bom.csv": (
        "not_text: the file looks like UTF-16 (little-endian) without its byte order mark"
    ),
}


def rows_of_every_table(engine: Engine) -> dict[str, int]:
    """The row count of every table of the store, in one statement."""
    tables = metadata.sorted_tables
    query = select(*(select(func.count()).select_from(t).scalar_subquery() for t in tables))
    with engine.connect() as conn:
        counts = conn.execute(query).one()
    return {t.name: int(n) for t, n in zip(tables, counts, strict=True)}


def run(engine: Engine, hasher: Hasher, policy: PolicyConfig, path: Path) -> ImportResult:
    return import_lead_file(engine, hasher, policy, SOURCE, LeadFormat(), path, now=clock.NOW)


@pytest.fixture
def stocked(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> dict[str, int]:
    """A store that holds an import already; its row counts."""
    good = partner_files.write(tmp_path / "good.csv", [person(n) for n in range(50, 53)])
    assert run(engine, hasher, policy_config, good).status == IMPORTED
    return rows_of_every_table(engine)


@pytest.fixture
def partners_file(tmp_path: Path, cli: Cli) -> Path:
    path = tmp_path / "partners.toml"
    path.write_text('[partners.boligpartner]\ndisplay_name = "Boligpartner AS"\n')
    cli.env["OUTREACH_PARTNERS_FILE"] = str(path)
    return path


@pytest.fixture
def stocked_by_cli(cli: Cli, partners_file: Path, engine: Engine, tmp_path: Path) -> dict[str, int]:
    """A store that holds an import by `outreach leads import` (which also registers the
    secret key's id on its first run); its row counts."""
    good = partner_files.write(tmp_path / "good.csv", [person(n) for n in range(50, 53)])
    assert cli("leads", "import", str(good), "--partner", "boligpartner").exit_code == 0
    return rows_of_every_table(engine)


def words(text: str) -> str:
    return " ".join(text.split())  # rich wraps lines at the terminal's width


def test_every_file_of_the_corpus_has_its_reason_here() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.csv")) == sorted(REFUSALS)


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_bad_file_is_refused_whole_by_the_intake_with_one_named_error(
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    stocked: dict[str, int],
    name: str,
) -> None:
    result = run(engine, hasher, policy_config, CORPUS / name)
    assert (result.status, result.accepted) == (REFUSED, 0)
    assert len(result.errors) == 1
    assert (result.errors[0].row, result.errors[0].field) == (0, "file")
    assert result.errors[0].reason.startswith(REFUSALS[name])
    assert rows_of_every_table(engine) == stocked


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_bad_file_is_refused_by_leads_import_with_exit_5_and_no_traceback(
    cli: Cli, engine: Engine, stocked_by_cli: dict[str, int], name: str
) -> None:
    result = cli("leads", "import", str(CORPUS / name), "--partner", "boligpartner")
    assert result.exit_code == INPUT_REFUSED, result.output
    assert f"{name}: {words(REFUSALS[name])}" in words(result.output)
    assert "nothing imported" in words(result.output)
    assert "Traceback" not in result.output
    assert rows_of_every_table(engine) == stocked_by_cli


def test_a_field_longer_than_the_csv_limit_refuses_the_file_naming_its_line(
    cli: Cli,
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    stocked_by_cli: dict[str, int],
    tmp_path: Path,
) -> None:
    huge = person(2, Adresse="Kongens gate " + "1" * 140_000)
    path = partner_files.write(tmp_path / "huge.csv", [person(1), huge, person(3)])
    reason = "malformed_csv: line 3: a field is longer than 131072 characters"
    result = run(engine, hasher, policy_config, path)
    assert (result.status, [e.reason for e in result.errors]) == (REFUSED, [reason])
    said = cli("leads", "import", str(path), "--partner", "boligpartner")
    assert said.exit_code == INPUT_REFUSED
    assert f"huge.csv: {reason}" in words(said.output) and "Traceback" not in said.output
    assert rows_of_every_table(engine) == stocked_by_cli


def good_file(quoting: int) -> tuple[bytes, int, int]:
    """A small good UTF-8 file (æøå: characters of two bytes), and where its last row
    starts and where its last field ends (before the line ending)."""
    data = partner_files.render([person(1), person(2)], "sheets", quoting=quoting)
    start = data.rindex(b"\n", 0, len(data) - 1) + 1
    end = len(data) - 1
    if quoting == csv.QUOTE_MINIMAL:
        # A cut inside an unquoted last field leaves a line that reads as whole (a file
        # need not end with a line ending): only cuts up to that field's start are told.
        end = data.rindex(b",", start) + 2
    return data, start, end


@pytest.mark.parametrize(
    "quoting", [csv.QUOTE_ALL, csv.QUOTE_MINIMAL], ids=["every-field-quoted", "as-excel-quotes"]
)
def test_a_good_file_cut_at_every_byte_of_its_last_row_is_refused_whole(
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    stocked: dict[str, int],
    tmp_path: Path,
    quoting: int,
) -> None:
    data, start, end = good_file(quoting)
    path = tmp_path / "cut.csv"
    for cut in range(start + 1, end):
        path.write_bytes(data[:cut])
        result = run(engine, hasher, policy_config, path)
        assert result.status == REFUSED, (cut, result.errors)
        assert [e.row for e in result.errors] == [0]
        assert result.errors[0].reason.startswith("truncated: line 3"), (cut, result.errors)
    assert rows_of_every_table(engine) == stocked


def test_a_file_cut_at_a_line_end_or_only_without_its_last_line_ending_is_whole(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    data, start, _ = good_file(csv.QUOTE_ALL)
    (tmp_path / "one.csv").write_bytes(data[:start])
    (tmp_path / "two.csv").write_bytes(data[:-1])  # no line ending after the last row
    assert run(engine, hasher, policy_config, tmp_path / "one.csv").accepted == 1
    assert run(engine, hasher, policy_config, tmp_path / "two.csv").accepted == 2


@pytest.mark.parametrize("where", ["after-a-field", "in-quotes", "in-a-character"])
def test_leads_import_of_a_cut_file_exits_5_and_names_the_line(
    cli: Cli, engine: Engine, stocked_by_cli: dict[str, int], tmp_path: Path, where: str
) -> None:
    data, start, _ = good_file(csv.QUOTE_ALL)
    cut = {
        "after-a-field": data.index(b",", start),  # "L-00002" and no more
        "in-quotes": start + 3,
        "in-a-character": data.index("æ".encode(), start) + 1,  # person 2 is Kjærsti
    }[where]
    path = tmp_path / "cut.csv"
    path.write_bytes(data[:cut])
    result = cli("leads", "import", str(path), "--partner", "boligpartner")
    assert result.exit_code == INPUT_REFUSED
    assert "cut.csv: truncated: line 3" in words(result.output)
    assert "Traceback" not in result.output
    assert rows_of_every_table(engine) == stocked_by_cli
