"""Reading CSV files whole or not at all: encodings detected, two encodings in one file,
text that is no text, quotes left open, a file cut short (campaigns.sources.csvfile)."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from campaigns.sources import csvfile
from suppression.errors import FileRefused

HEADER = "Fornavn;Etternavn;Mobil\r\n"


def shape_of(tmp_path: Path, data: bytes, **kwargs: str) -> csvfile.Shape:
    path = tmp_path / "leads.csv"
    path.write_bytes(data)
    return csvfile.inspect(path, **kwargs)


def read(tmp_path: Path, data: bytes) -> list[list[str]]:
    path = tmp_path / "leads.csv"
    path.write_bytes(data)
    return [fields for _, fields in csvfile.records(path, csvfile.inspect(path))]


def refusal(tmp_path: Path, data: bytes, **kwargs: str) -> str:
    with pytest.raises(FileRefused) as caught:
        read(tmp_path, data) if not kwargs else shape_of(tmp_path, data, **kwargs)
    assert caught.value.path == "leads.csv"
    return caught.value.reason


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ((HEADER + "Åse;Ødegård;41234567\r\n").encode("cp1252"), "cp1252"),
        ((HEADER + "Åse;Ødegård;41234567\r\n").encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF8 + (HEADER + "Åse;Ødegård;41234567\r\n").encode(), "utf-8-sig"),
        ((HEADER + "Åse;Ødegård;41234567\r\n").encode("utf-16"), "utf-16"),
        ((HEADER + "Ola;Nordmann;41234567\r\n").encode("ascii"), "utf-8-sig"),
    ],
    ids=["windows-1252", "utf-8", "utf-8-bom", "utf-16-bom", "ascii"],
)
def test_the_encodings_spreadsheets_write_are_detected(
    tmp_path: Path, data: bytes, encoding: str
) -> None:
    assert shape_of(tmp_path, data).encoding == encoding


def test_a_windows_1252_line_in_a_utf8_file_is_refused_naming_its_line_and_byte(
    tmp_path: Path,
) -> None:
    data = (HEADER + "Åse;Ødegård;41234567\r\n").encode() + "Bjørn;Berg;41234568\r\n".encode(
        "cp1252"
    )
    at = data.index(b"\xf8")  # the ø of Bjørn, Windows-1252
    assert refusal(tmp_path, data).startswith(f"mixed_encoding: line 3 (byte offset {at}): ")


def test_utf8_after_windows_1252_further_on_than_the_first_megabyte_is_refused(
    tmp_path: Path,
) -> None:
    rows = "Bjørn;Berg;41234568\r\n".encode("cp1252") * 60_000  # past csvfile.CHUNK
    data = HEADER.encode() + rows + "Åse;Ødegård;41234567\r\n".encode()
    assert refusal(tmp_path, data).startswith("mixed_encoding: line 2 (byte offset 27): ")


def test_a_utf8_character_across_the_first_megabytes_end_is_no_second_encoding(
    tmp_path: Path,
) -> None:
    pad = b"x" * (csvfile.CHUNK - len(HEADER) - 1)
    data = HEADER.encode() + pad + "ø;Berg;41234568\r\n".encode()  # ø: bytes CHUNK-1 and CHUNK
    assert data[csvfile.CHUNK - 1 : csvfile.CHUNK + 1] == "ø".encode()
    assert shape_of(tmp_path, data).encoding == "utf-8-sig"


def test_an_encoding_given_that_the_file_is_not_is_refused_naming_the_line(
    tmp_path: Path,
) -> None:
    data = (HEADER + "Åse;Ødegård;41234567\r\n").encode("cp1252")
    reason = refusal(tmp_path, data, encoding="utf-8")
    assert reason == "not_text: line 2 (byte offset 25): not UTF-8 text"
    assert shape_of(tmp_path, data, encoding="windows-1252").encoding_given


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ((HEADER + "Åse;Ødegård;1\r\n").encode("utf-16-le"), "UTF-16 (little-endian) without"),
        ((HEADER + "Åse;Ødegård;1\r\n").encode("utf-16-be"), "UTF-16 (big-endian) without"),
        (b"PK\x03\x04" + bytes(200), "a ZIP archive (an Excel workbook?)"),
        (bytes(range(256)) * 4, "binary data (control characters)"),
        (b"Fornavn\x01;Mobil\r\n", "line 1: the header row holds control characters"),
    ],
    ids=["utf-16-le", "utf-16-be", "xlsx", "bytes", "control-in-header"],
)
def test_a_file_that_is_no_text_is_refused_saying_what_it_looks_like(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    assert refusal(tmp_path, data).startswith("not_text: ")
    assert reason in refusal(tmp_path, data)


def test_a_nul_in_a_cell_is_left_to_that_rows_check(tmp_path: Path) -> None:
    rows = read(tmp_path, (HEADER + "Os\x00lo;Berg;41234567\r\n" * 3).encode())
    assert rows[1] == ["Os\x00lo", "Berg", "41234567"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (HEADER + "Åse;Øde", "truncated: line 2: the file ends inside a row (2 of 3 fields"),
        (HEADER + "Åse;Ødegård;", "truncated: line 2: the file ends inside a row (after a"),
        (HEADER + 'Åse;"Øde', "truncated: line 2: the file ends inside a quoted field"),
    ],
    ids=["in-a-field", "after-the-last-delimiter", "in-quotes"],
)
def test_a_file_cut_in_its_last_row_is_refused_naming_the_line(
    tmp_path: Path, data: str, reason: str
) -> None:
    assert refusal(tmp_path, data.encode()).startswith(reason)


def test_a_utf8_file_cut_inside_a_character_is_refused_as_cut(tmp_path: Path) -> None:
    data = (HEADER + "Åse;Ødegård;41234567\r\nBjø").encode()[:-1]
    assert refusal(tmp_path, data) == (
        f"truncated: line 3 (byte offset {len(data) - 1}): the file ends inside a character"
    )


def test_a_last_line_without_its_line_ending_is_whole_when_all_its_fields_are_there(
    tmp_path: Path,
) -> None:
    rows = read(tmp_path, (HEADER + 'Åse;Ødegård;41234567\r\nBjørn;"";""').encode())
    assert rows[-1] == ["Bjørn", "", ""]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            HEADER + 'Åse;"Ødegård;41234567\r\nBjørn;Berg;41234568\r\n',
            "unbalanced_quote: line 2: a quote opened there never closes",
        ),
        (
            HEADER + 'Åse;"Ødegård" AS;41234567\r\n',
            "unbalanced_quote: line 2: a quote inside a quoted field is not doubled",
        ),
        (
            HEADER + 'Åse;"Ødegård;41234567\r\nBjørn;Berg";41234568\r\nKari;Hansen;1\r\n',
            "unbalanced_quote: line 2: a quoted field from there holds line breaks and 2 ",
        ),
    ],
    ids=["never-closed", "text-after-the-quote", "rows-swallowed"],
)
def test_an_unbalanced_quote_refuses_the_file_naming_its_line(
    tmp_path: Path, data: str, reason: str
) -> None:
    assert refusal(tmp_path, data.encode()).startswith(reason)


def test_a_quoted_field_on_two_lines_is_one_field_and_the_next_rows_keep_their_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(
        (HEADER + 'Åse;"Kongens gate 1\r\nOppgang B";1\r\n;;\r\nBjørn;;2\r\n').encode()
    )
    got = list(csvfile.records(path, csvfile.inspect(path)))
    assert got == [
        (1, ["Fornavn", "Etternavn", "Mobil"]),
        (2, ["Åse", "Kongens gate 1\r\nOppgang B", "1"]),
        (3, ["", "", ""]),
        (4, ["Bjørn", "", "2"]),
    ]


def test_a_field_past_the_csv_limit_refuses_the_file_naming_its_line(tmp_path: Path) -> None:
    data = HEADER + "Åse;Ødegård;1\r\n" + "Bjørn;" + "x" * 140_000 + ";2\r\n"
    assert refusal(tmp_path, data.encode()) == (
        "malformed_csv: line 3: a field is longer than 131072 characters"
    )
