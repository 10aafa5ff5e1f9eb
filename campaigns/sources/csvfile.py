"""CSV files as Norwegian spreadsheets write them: decoding, sniffing, reading records.

Encodings: UTF-8 with or without BOM, Windows-1252 (Excel's "CSV (semikolon-delimited)"
on Norwegian Windows) and UTF-16 with BOM (Excel's "Unicode text"). Delimiters: `;`,
`,` or tab, sniffed from the header line unless configured. Quoted fields may hold
newlines. Row numbers are spreadsheet rows: the header is row 1, the first record row 2;
lines are the file's physical lines, counted from 1.

Files are read as streams, never whole, so a file of millions of rows costs the
memory of one batch. A file that cannot be read whole, as text and as CSV, is refused
whole (`FileRefused`, naming the file and, where there is one, the line), never read in
part (guarantee 5): not text (binary, UTF-16 without its byte order mark), two encodings
in one file, a quote left open or followed by other text, a file cut inside its last row.
The reason starts with one of the codes below, then a colon.
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

# The reason codes and the csv module's errors as refusals: one reading of a strict CSV
# file for every import (suppression.register holds them: the domain's lower layer).
from suppression.register import EMPTY_FILE as EMPTY_FILE
from suppression.register import MIXED_ENCODING, NOT_TEXT, UNBALANCED_QUOTE, csv_refusal
from suppression.register import TRUNCATED as TRUNCATED

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
_LABELS = {"utf-8-sig": "UTF-8", "cp1252": "Windows-1252", "utf-16": "UTF-16"}
# What partners upload instead of a CSV file, by its first bytes.
_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook?)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
)
# C0 controls but tab, line feed and carriage return, and DEL: no text holds many.
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_LINE_END = re.compile(r"\r\n?|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is a delimiter, not junk


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
    last: str = "\n"  # the file's last character, if ASCII (else "")
    encoding_given: bool = False  # the caller said the encoding; not detected

    @property
    def ends_line(self) -> bool:
        """The last line has its line ending."""
        return self.last in ("\n", "\r")


def inspect(path: Path, *, encoding: str | None = None, delimiter: str | None = None) -> Shape:
    """One pass over the file: SHA-256, size and whether it decodes; then the delimiter.

    With `encoding` None the encoding is detected: a BOM decides; otherwise UTF-8 if
    the whole file is valid UTF-8, else Windows-1252, unless the file also holds UTF-8
    sequences of several bytes (æøå written both ways: refused, MIXED_ENCODING).
    """
    digest = hashlib.sha256()
    size = 0
    tail = b""
    with path.open("rb") as f:
        first = f.read(CHUNK)
        codec = encoding_name(encoding) if encoding else _bom_codec(first)
        if codec is None:
            _refuse_binary(path.name, first)
        check = _Check(codec)
        chunk = first
        if codec == "utf-8-sig" and first.startswith(codecs.BOM_UTF8):
            check.offset = len(codecs.BOM_UTF8)  # checked as UTF-8 after the BOM
            chunk = first[len(codecs.BOM_UTF8) :]
            digest.update(codecs.BOM_UTF8)
            size = len(codecs.BOM_UTF8)
        while chunk:
            digest.update(chunk)
            size += len(chunk)
            tail = chunk[-2:] if len(chunk) > 1 else (tail + chunk)[-2:]
            check.feed(chunk)
            if check.decided:
                break
            chunk = f.read(CHUNK)
        else:
            check.finish()
    chosen = _chosen(path, codec, check)
    head = codecs.getincrementaldecoder(chosen)("replace").decode(first)
    header_line = _LINE_END.split(head.lstrip("\ufeff"), maxsplit=1)[0]
    if not header_line.strip():
        raise FileRefused(path.name, f"{EMPTY_FILE}: no header row")
    if _CONTROL.search(header_line):
        raise FileRefused(
            path.name, f"{NOT_TEXT}: line 1: the header row holds control characters, not text"
        )
    lines = first.count(b"\n")
    return Shape(
        sha256=digest.hexdigest(),
        size=size,
        encoding=chosen,
        delimiter=delimiter or sniff_delimiter(header_line),
        header_line=header_line,
        rows_estimate=size * lines // len(first) if lines else 1,
        last=_last_character(tail, chosen, first),
        encoding_given=encoding is not None,
    )


class _Check:
    """Whether the bytes fed decode, and where the first that does not is; detecting
    (no codec), whether they hold UTF-8 sequences of several bytes and bytes that
    Windows-1252 leaves undefined. Costs a strict UTF-8 decode of a UTF-8 file (as
    before any of this), and a lenient one of a Windows-1252 file."""

    def __init__(self, codec: str | None) -> None:
        self.detecting = codec is None
        # UTF-8 is checked as plain UTF-8 past its BOM, so that an error's offset is the file's.
        checked = "utf-8" if codec in (None, "utf-8-sig") else codec
        self._strict = codecs.getincrementaldecoder(checked)("strict")
        self.offset = 0  # bytes checked so far
        self.invalid: int | None = None  # offset of the first byte that does not decode
        self.cut = False  # ... because the file ends inside a character
        self.multibyte = False  # detecting: a valid UTF-8 sequence of several bytes seen
        self.undefined: int | None = None  # detecting: offset of a byte cp1252 leaves undefined
        self._lenient: codecs.IncrementalDecoder | None = None
        self._fed = self._chars = 0

    @property
    def decided(self) -> bool:
        """Nothing further can change the verdict: the file is refused."""
        if self.invalid is None:
            return False
        return not self.detecting or self.multibyte or self.undefined is not None

    def feed(self, chunk: bytes) -> None:
        if self.invalid is None:
            pending = _pending(self._strict)
            try:
                self._strict.decode(chunk)
            except UnicodeDecodeError as exc:
                self.invalid = self.offset - len(pending) + exc.start
                if self.detecting:
                    self._lenient = codecs.getincrementaldecoder("utf-8")("surrogateescape")
                    self._count(pending + chunk)
            else:
                if self.detecting and not self.multibyte and not chunk.isascii():
                    self.multibyte = True  # valid UTF-8, not ASCII: several bytes a character
        elif self._lenient is not None:
            self._count(chunk)
        if self._lenient is not None and self.undefined is None:
            found = [i for i in map(chunk.find, _CP1252_UNDEFINED) if i >= 0]
            if found:
                self.undefined = self.offset + min(found)
        self.offset += len(chunk)

    def _count(self, data: bytes) -> None:
        # surrogateescape gives one character for each byte that is not UTF-8 and one for
        # each sequence that is: fewer characters than bytes means a sequence of several.
        assert self._lenient is not None
        self._fed += len(data)
        self._chars += len(self._lenient.decode(data))
        if self._chars < self._fed - len(_pending(self._lenient)):
            self.multibyte = True

    def finish(self) -> None:
        if self.invalid is None:
            pending = _pending(self._strict)
            try:
                self._strict.decode(b"", final=True)
            except UnicodeDecodeError:
                self.invalid = self.offset - len(pending)
                self.cut = True


def _pending(decoder: codecs.IncrementalDecoder) -> bytes:
    state = decoder.getstate()
    return state[0] if isinstance(state, tuple) else b""


def _chosen(path: Path, codec: str | None, check: _Check) -> str:
    """The codec to read the file with, or FileRefused naming the line and byte."""
    if check.invalid is None:
        return codec or "utf-8-sig"
    at = check.invalid
    where = f"line {_line_of(path, at, codec)} (byte offset {at})"
    if check.cut:
        raise FileRefused(path.name, f"{TRUNCATED}: {where}: the file ends inside a character")
    if codec is not None:
        raise FileRefused(path.name, f"{NOT_TEXT}: {where}: not {_LABELS[codec]} text")
    if check.multibyte:
        raise FileRefused(
            path.name,
            f"{MIXED_ENCODING}: {where}: a byte that is not UTF-8 in a file that also holds "
            "UTF-8 (two encodings in one file); save the whole file as UTF-8",
        )
    if check.undefined is not None:
        at = check.undefined
        raise FileRefused(
            path.name,
            f"{NOT_TEXT}: line {_line_of(path, at, None)} (byte offset {at}): "
            "the file is not UTF-8 or Windows-1252 text",
        )
    return "cp1252"


def _line_of(path: Path, offset: int, codec: str | None) -> int:
    """The line of the byte at `offset` (read again: only a refused file pays this)."""
    with path.open("rb") as f:
        before = f.read(offset)
    if codec == "utf-16":
        return before.decode("utf-16", "replace").count("\n") + 1
    return before.count(b"\n") + 1


def _refuse_binary(name: str, head: bytes) -> None:
    """A file without a BOM that is no text at all, or UTF-16 that lost its BOM."""
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise FileRefused(name, f"{NOT_TEXT}: the file is {what}, not CSV text")
    if b"\x00" in head:
        # UTF-16 of Latin text has a NUL in every other byte: each character's high byte.
        even, odd = head[0::2].count(0), head[1::2].count(0)
        half = len(head) // 2
        if len(head) >= 4 and max(even, odd) >= 0.3 * half and min(even, odd) <= 0.05 * half:
            order = "little-endian" if odd > even else "big-endian"
            raise FileRefused(
                name,
                f"{NOT_TEXT}: the file looks like UTF-16 ({order}) without its byte order "
                "mark; save it as UTF-8",
            )
    # A control character in a cell is that row's error; several, more than one byte in
    # a hundred, are no spreadsheet's text.
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls >= 8 and 100 * controls > len(head):
        raise FileRefused(
            name, f"{NOT_TEXT}: the file holds binary data (control characters), not text"
        )


def _bom_codec(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _last_character(tail: bytes, codec: str, head: bytes) -> str:
    """The last character of a file whose last two bytes are `tail`, if it is ASCII."""
    if codec == "utf-16":
        order = "utf-16-be" if head.startswith(codecs.BOM_UTF16_BE) else "utf-16-le"
        last = tail[-2:].decode(order, "replace") if len(tail) == 2 else ""
    else:
        last = tail[-1:].decode("latin-1")
    return last if last.isascii() else ""


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

    Blank lines count as rows (as in the spreadsheet) but are not yielded. The file is
    refused (FileRefused, raised by the iteration, perhaps after the last record) when
    it turns out not to be readable whole: a quote left open or followed by other text,
    a quoted field that swallowed whole rows, a last line without its line ending that
    has fewer fields than the header or ends with a delimiter (the file was cut; a
    last line whose last field is empty ends the file with `""` or its line ending).
    """
    raw: IO[bytes] = path.open("rb")
    if progress is not None:
        raw = io.BufferedReader(_Counting(raw, progress), CHUNK)
    text = io.TextIOWrapper(raw, encoding=shape.encoding, errors="strict", newline="")
    row = 0
    spans = 0  # lines read beyond one a row: the line breaks inside quoted fields
    width = 0  # the header's fields
    last: list[str] = []
    reader = csv.reader(text, delimiter=shape.delimiter, strict=True)
    try:
        for fields in reader:
            row += 1
            if reader.line_num - row != spans:  # this record spans lines: rare, checked
                start = row + spans
                spans = reader.line_num - row
                _check_spanning(path.name, fields, shape.delimiter, width, start)
            last = fields
            if fields:
                width = width or len(fields)
                yield row, fields
    except csv.Error as exc:
        raise csv_refusal(path.name, str(exc), row + spans + 1, reader.line_num) from None
    except UnicodeDecodeError:
        raise FileRefused(
            path.name, f"{NOT_TEXT}: line {reader.line_num + 1} is not {shape.encoding} text"
        ) from None
    finally:
        text.close()
    if shape.ends_line or row < 2 or not last:
        return
    if len(last) < width:
        raise FileRefused(
            path.name,
            f"{TRUNCATED}: line {reader.line_num}: the file ends inside a row "
            f"({len(last)} of {width} fields and no line ending)",
        )
    if shape.last == shape.delimiter:  # cut after the last delimiter: "" would be quoted
        raise FileRefused(
            path.name,
            f"{TRUNCATED}: line {reader.line_num}: the file ends inside a row "
            "(after a delimiter and no line ending)",
        )


def _check_spanning(name: str, fields: list[str], delimiter: str, width: int, start: int) -> None:
    """A quoted field may hold line breaks (an address on two lines); one that also holds
    a whole row's worth of delimiters is rows swallowed by a quote opened and not closed
    where it should have been (the csv module reads on to the next quote)."""
    if width < 3:
        return  # too few delimiters a row to tell
    for value in fields:
        if ("\n" in value or "\r" in value) and value.count(delimiter) >= width - 1:
            raise FileRefused(
                name,
                f"{UNBALANCED_QUOTE}: line {start}: a quoted field from there holds line "
                f"breaks and {value.count(delimiter)} delimiters: a quote left open "
                "swallowed whole rows",
            )
