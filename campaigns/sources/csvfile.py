"""CSV files as Norwegian spreadsheets write them: decoding, sniffing, reading records.

Encodings: UTF-8 with or without BOM, Windows-1252 (Excel's "CSV (semikolon-delimited)"
on Norwegian Windows) and UTF-16 with BOM (Excel's "Unicode text"). Delimiters: `;`,
`,` or tab, sniffed from the header line unless configured. Quoted fields may hold
newlines. Row numbers are spreadsheet rows: the header is row 1, the first record row 2.

Files are read as streams, never whole, so a file of millions of rows costs the
memory of one batch. A file that cannot be read as text or as CSV is refused whole
(`FileRefused`, naming the file and, where there is one, the row).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from suppression.errors import FileRefused

CHUNK = 1 << 20
DELIMITERS = (";", "\t", ",")
# Windows-1252 leaves these five bytes undefined: a file holding one is not Windows-1252.
# Looked for one by one (`in`, memchr): a tenth of the time of a character class.
_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
_ENCODING_NAMES = {
    "utf-8": "utf-8-sig",  # a BOM is stripped whether or not the partner says it is there
    "utf8": "utf-8-sig",
    "utf-8-sig": "utf-8-sig",
    "windows-1252": "cp1252",
    "cp1252": "cp1252",
    "latin-1": "cp1252",  # what people call Windows-1252 in practice
    "iso-8859-1": "cp1252",
    "utf-16": "utf-16",
}


def encoding_name(name: str) -> str:
    """Our codec for a configured encoding name; ValueError when we do not read it."""
    key = name.strip().lower().replace("_", "-")
    if key not in _ENCODING_NAMES:
        raise ValueError(f"unsupported encoding {name!r} (use utf-8, windows-1252 or utf-16)")
    return _ENCODING_NAMES[key]


@dataclass(frozen=True, slots=True)
class Shape:
    """What a first pass over a file found: its digest, size, encoding and delimiter."""

    sha256: str
    size: int
    encoding: str  # a Python codec name
    delimiter: str
    header_line: str
    rows_estimate: int = 0  # from the line length of the file's first megabyte


def inspect(path: Path, *, encoding: str | None = None, delimiter: str | None = None) -> Shape:
    """One pass over the file: SHA-256, size and whether it decodes; then the delimiter.

    With `encoding` None the encoding is detected: a BOM decides; otherwise UTF-8 if
    the whole file is valid UTF-8, else Windows-1252.
    """
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        first = f.read(CHUNK)
        codec = encoding_name(encoding) if encoding else _bom_codec(first)
        decoder = codecs.getincrementaldecoder(codec or "utf-8-sig")("strict")
        decodes = True
        cp1252_ok = codec is None
        chunk = first
        while chunk:
            digest.update(chunk)
            size += len(chunk)
            if decodes:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    decodes = False
            if cp1252_ok and any(byte in chunk for byte in _CP1252_UNDEFINED):
                cp1252_ok = False
            chunk = f.read(CHUNK)
        if decodes:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                decodes = False
    if decodes:
        chosen = codec or "utf-8-sig"
    elif codec is None and cp1252_ok:
        chosen = "cp1252"
    else:
        which = codec or "UTF-8 or Windows-1252"
        raise FileRefused(path.name, f"not_text: the file is not {which} text")
    head = codecs.getincrementaldecoder(chosen)("replace").decode(first)
    header_line = head.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if not header_line.strip():
        raise FileRefused(path.name, "empty_file: no header row")
    lines = first.count(b"\n")
    return Shape(
        sha256=digest.hexdigest(),
        size=size,
        encoding=chosen,
        delimiter=delimiter or sniff_delimiter(header_line),
        header_line=header_line,
        rows_estimate=size * lines // len(first) if lines else 1,
    )


def _bom_codec(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def sniff_delimiter(header_line: str) -> str:
    """The candidate delimiter seen most often outside quotes in the header line."""
    outside = re.sub(r'"[^"]*"', "", header_line)
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class _Counting(io.RawIOBase):
    """A binary file that reports how many bytes were read, for progress bars."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None]) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self._progress(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def records(
    path: Path, shape: Shape, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(row number, fields) for every record, the header first (row 1).

    Blank lines count as rows (as in the spreadsheet) but are not yielded.
    """
    raw: IO[bytes] = path.open("rb")
    if progress is not None:
        raw = io.BufferedReader(_Counting(raw, progress), CHUNK)
    text = io.TextIOWrapper(raw, encoding=shape.encoding, errors="strict", newline="")
    row = 0
    try:
        reader = csv.reader(text, delimiter=shape.delimiter, strict=False)
        for fields in reader:
            row += 1
            if fields:
                yield row, fields
    except csv.Error as exc:
        raise FileRefused(path.name, f"malformed_csv: row {row + 1}: {exc}") from None
    except UnicodeDecodeError:
        raise FileRefused(
            path.name, f"not_text: row {row + 1} is not {shape.encoding} text"
        ) from None
    finally:
        text.close()
