"""Reservasjonsregisteret snapshots: loaded whole, stored as keyed hashes only (TP-1, GD-4).

File format (what the register delivers, as we receive it): CSV with a header,
delimiter `;`, `,` or tab, UTF-8 (with or without BOM), UTF-16 with its BOM or
Windows-1252, columns `telefon` (optional), `navn`, `adresse`, `postnummer` (optional
as a group, but a row needs a phone or a name with an address) and `reservasjon` in
{telefon, post, begge} (English phone/post/both accepted). A load replaces the
previous snapshot in one transaction; a bad file replaces nothing.

The register is a block list (guarantee 5): a file that cannot be read whole is refused
whole (`FileRefused` naming the file, and the line or column), never read in part: not
text (binary, UTF-16 without its byte order mark), two encodings in one file, a last
line without its line ending (the file was cut), a quote left open, a field longer than
the csv module's limit, a column twice or a column we do not know (a second `telefon`
would otherwise decide which of the two is read), a bad row. The reason starts with one
of the codes below, then a colon; `read_text` and `csv_rows` serve the other lists
(`suppression.lists`) too.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, delete, insert, select, update

from suppression.bulk import insert_rows
from suppression.errors import FileRefused, InvalidIdentity, RowError
from suppression.identity import normalise_phone
from suppression.keys import Hasher
from suppression.schema import register_entries, register_snapshots

RESERVATION_KINDS = {
    "telefon": (True, False),
    "phone": (True, False),
    "post": (False, True),
    "begge": (True, True),
    "both": (True, True),
}
_HEADER_ALIASES = {
    "telefon": "phone",
    "phone": "phone",
    "navn": "name",
    "name": "name",
    "adresse": "address",
    "address": "address",
    "postnummer": "postal_code",
    "postal_code": "postal_code",
    "reservasjon": "reservation",
    "reservation": "reservation",
}
_REGISTER_COLUMNS = ("telefon", "navn", "adresse", "postnummer", "reservasjon")
MAX_ERRORS_SHOWN = 20

# Reasons a whole file is refused (FileRefused.reason up to the colon): stable strings,
# the codes campaigns.sources.csvfile gives for the same faults.
NOT_TEXT: Final = "not_text"
MIXED_ENCODING: Final = "mixed_encoding"
EMPTY_FILE: Final = "empty_file"
TRUNCATED: Final = "truncated"  # ends inside a line, a quoted field or a character
UNBALANCED_QUOTE: Final = "unbalanced_quote"
MALFORMED_CSV: Final = "malformed_csv"
DUPLICATE_COLUMN: Final = "duplicate_column"
UNKNOWN_COLUMN: Final = "unknown_column"
MISSING_COLUMN: Final = "missing_column"
BAD_ROWS: Final = "bad_rows"


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: int
    snapshot_date: date
    sha256: str
    loaded_at: datetime
    row_count: int
    phone_reservations: int
    post_reservations: int


_SPACES = re.compile(r"[\s.,]+")


def name_address_key(name: str, address: str, postal_code: str) -> str:
    """Canonical name+address for hashing: Unicode NFKC, case-folded, punctuation-light."""
    if postal_code.isdigit() and postal_code.isascii():
        postal = postal_code  # what imports give: already its own key
    else:
        postal = _norm(postal_code).replace(" ", "")
    return f"{_norm(name)}|{_norm(address)}|{postal}"


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    if "." in text or "," in text:
        return _SPACES.sub(" ", text).strip()
    # Without "." or ",", the same as the line above at less than half the cost (a
    # partner import hashes three of these per row): str.split(), str.strip() and the
    # pattern's \s all take whitespace to be what str.isspace() says it is.
    return " ".join(text.split())


def decode(data: bytes) -> str:
    """UTF-8 (BOM or not), else Windows-1252: what Norwegian spreadsheets write."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="strict")


def undecodable_line(data: bytes, exc: UnicodeDecodeError) -> int:
    """The line of the byte `decode` could not read (Windows-1252 is one byte per character,
    so the error's position is a position in `data`)."""
    return data.count(b"\n", 0, exc.start) + 1


def sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (";", "\t", ",")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ";"


# What arrives instead of a CSV file, by its first bytes.
_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook?)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, CR and LF are text


def read_text(name: str, data: bytes) -> str:
    """The whole of a list file as text: UTF-8 (BOM or not), UTF-16 with its BOM, else
    Windows-1252. FileRefused (naming `name` and the line) when it cannot be read whole:
    empty, binary, UTF-16 without its BOM, UTF-8 and another encoding in one file, a
    control character, or a last line without its line ending (cut: a list whose last
    line was cut may hold another person's address, so nothing of it is read)."""
    body = data.removeprefix(codecs.BOM_UTF8)
    if not body.strip():
        raise FileRefused(name, f"{EMPTY_FILE}: the file is empty")
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not utf16:
        _refuse_binary(name, data)
    codec = "utf-16" if utf16 else "utf-8"
    try:
        text = (data if utf16 else body).decode(codec)
    except UnicodeDecodeError as exc:
        text = _fallback(name, data if utf16 else body, codec, exc)
    control = _CONTROL.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        raise FileRefused(name, f"{NOT_TEXT}: line {line} holds a control character, not text")
    if not text.endswith(("\n", "\r")):
        raise FileRefused(
            name,
            f"{TRUNCATED}: line {text.count(chr(10)) + 1}: the last line has no line ending, "
            "so the file may have been cut inside it; a whole file ends every line with one",
        )
    return text.lstrip("\ufeff")


def _fallback(name: str, data: bytes, codec: str, exc: UnicodeDecodeError) -> str:
    """Windows-1252 for a file that is not UTF-8, unless it is not that either."""
    line = data[: exc.start].decode(codec, "replace").count("\n") + 1
    where = f"line {line} (byte offset {exc.start})"
    if exc.reason in ("unexpected end of data", "truncated data"):
        raise FileRefused(name, f"{TRUNCATED}: {where}: the file ends inside a character")
    if codec != "utf-8":
        raise FileRefused(name, f"{NOT_TEXT}: {where}: not UTF-16 text")
    # surrogateescape gives one character for each byte that is not UTF-8 and one for
    # each sequence that is: fewer characters than bytes means UTF-8 of several bytes.
    if len(data.decode("utf-8", "surrogateescape")) < len(data):
        raise FileRefused(
            name,
            f"{MIXED_ENCODING}: {where}: a byte that is not UTF-8 in a file that also holds "
            "UTF-8 (two encodings in one file); save the whole file as UTF-8",
        )
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as cp1252:
        raise FileRefused(
            name,
            f"{NOT_TEXT}: line {undecodable_line(data, cp1252)}: not UTF-8 or Windows-1252 text",
        ) from None


def _refuse_binary(name: str, head: bytes) -> None:
    """A file without a UTF-16 BOM that is no text at all, or UTF-16 that lost its BOM."""
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise FileRefused(name, f"{NOT_TEXT}: the file is {what}, not CSV text")
    if b"\x00" not in head:
        return
    # UTF-16 of Latin text has a NUL in every other byte: the high byte of each character.
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if max(even, odd) >= 0.3 * (len(head) // 2) and min(even, odd) <= 0.05 * (len(head) // 2):
        order = "little-endian" if odd > even else "big-endian"
        raise FileRefused(
            name,
            f"{NOT_TEXT}: the file looks like UTF-16 ({order}) without its byte order mark; "
            "save it as UTF-8",
        )
    line = head.count(b"\n", 0, head.index(b"\x00")) + 1
    raise FileRefused(name, f"{NOT_TEXT}: line {line} holds binary data (NUL bytes), not text")


def csv_rows(name: str, text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of each record of `text` (from `read_text`), the header first; blank
    lines are skipped. FileRefused, raised by the iteration, for a quote left open or
    followed by other text, a field holding a line break (no list we read has one: it is
    a quote left open that swallowed rows) and a field over the csv module's limit."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        for fields in reader:
            line = reader.line_num  # the reader's own count: right after quoted line breaks too
            if line != start:
                raise FileRefused(
                    name,
                    f"{UNBALANCED_QUOTE}: line {start}: a quoted field holds a line break "
                    f"(up to line {line}): a quote left open?",
                )
            start = line + 1
            if any(f.strip() for f in fields):
                yield line, fields
    except csv.Error as exc:
        raise csv_refusal(name, str(exc), start, reader.line_num) from None


def csv_refusal(name: str, error: str, start: int, line: int) -> FileRefused:
    """The csv module's error as a refusal naming the line: `start` is the line the
    record began on, `line` the last line read."""
    if error == "unexpected end of data":  # strict: the file ends inside a quoted field
        if start >= line:
            return FileRefused(
                name, f"{TRUNCATED}: line {start}: the file ends inside a quoted field"
            )
        return FileRefused(
            name,
            f"{UNBALANCED_QUOTE}: line {start}: a quote opened there never closes "
            f"(the file ends inside it, at line {line})",
        )
    if "expected after" in error:  # strict: '"ab"c', a quote inside a quoted field
        return FileRefused(
            name,
            f"{UNBALANCED_QUOTE}: line {line}: a quote inside a quoted field is not doubled "
            "(other text follows the closing quote)",
        )
    if error.startswith("field larger than field limit"):
        return FileRefused(
            name,
            f"{MALFORMED_CSV}: line {start}: a field is longer than "
            f"{csv.field_size_limit()} characters",
        )
    return FileRefused(name, f"{MALFORMED_CSV}: line {line}: {error}")


@dataclass(frozen=True, slots=True)
class _Row:
    key_id: str
    digest: bytes
    identity_kind: str
    reserved_phone: bool
    reserved_post: bool


def _columns(name: str, header: list[str]) -> list[str]:
    """Our field for each column of the header; FileRefused for a column twice or one we
    do not know (the register's format is fixed: a surprise means a wrong file)."""
    columns = [_HEADER_ALIASES.get(h.strip().lower(), "") for h in header]
    if "reservation" not in columns:
        raise FileRefused(name, f"{MISSING_COLUMN}: line 1, header: no column 'reservasjon'")
    for i, field in enumerate(columns):
        if field and field in columns[:i]:
            first = columns.index(field) + 1
            raise FileRefused(
                name,
                f"{DUPLICATE_COLUMN}: line 1, header: columns {first} and {i + 1} are both "
                f"{header[i].strip().lower()!r}; which one holds the reservation cannot be told",
            )
    for i, field in enumerate(columns):
        if not field:
            # The header text is shown: a header it is (it has 'reservasjon'), not a row.
            what = repr(header[i].strip()[:40]) if header[i].strip() else "(no name)"
            raise FileRefused(
                name,
                f"{UNKNOWN_COLUMN}: line 1, header: column {i + 1} {what} is not one of "
                f"{', '.join(_REGISTER_COLUMNS)}",
            )
    if "phone" not in columns and "name" not in columns:
        raise FileRefused(
            name, f"{MISSING_COLUMN}: line 1, header: needs a column 'telefon' or 'navn'"
        )
    return columns


def _parse(name: str, text: str, hasher: Hasher, errors: list[RowError]) -> Iterator[_Row]:
    first_line = text.split("\n", 1)[0]
    rows = csv_rows(name, text, sniff_delimiter(first_line))
    header = next(rows, None)
    if header is None:
        raise FileRefused(name, f"{EMPTY_FILE}: the file is empty")
    columns = _columns(name, header[1])
    for line_no, values in rows:
        if len(values) != len(columns):
            errors.append(
                RowError(line_no, "row", f"expected {len(columns)} fields, got {len(values)}")
            )
            continue
        row = {c: v.strip() for c, v in zip(columns, values, strict=True) if c}
        kinds = RESERVATION_KINDS.get(row.get("reservation", "").lower())
        if kinds is None:
            errors.append(RowError(line_no, "reservasjon", "must be telefon, post or begge"))
            continue
        produced = False
        if row.get("phone"):
            try:
                e164 = normalise_phone(row["phone"]).e164
            except InvalidIdentity as exc:
                errors.append(RowError(line_no, "telefon", exc.reason))
                continue
            # Under every configured key: a contact under an older key matches too.
            for keyed in hasher.keyed_all("phone", e164):
                yield _Row(keyed.key_id, keyed.digest, "phone", *kinds)
            produced = True
        if row.get("name") and row.get("address"):
            key = name_address_key(row["name"], row["address"], row.get("postal_code", ""))
            for keyed in hasher.keyed_all("name_address", key):
                yield _Row(keyed.key_id, keyed.digest, "name_address", *kinds)
            produced = True
        if not produced:
            errors.append(RowError(line_no, "telefon", "a row needs a phone or a name and address"))


def load_snapshot(
    conn: Connection, hasher: Hasher, path: Path, snapshot_date: date, *, now: datetime
) -> Snapshot:
    """Replace the active snapshot with the file's content, atomically (within `conn`'s
    transaction). Raises FileRefused naming the rows when any row is bad."""
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    name = str(path)
    text = read_text(name, data)
    errors: list[RowError] = []
    now = now.astimezone(UTC)
    snapshot_id = conn.execute(
        insert(register_snapshots)
        .values(
            snapshot_date=snapshot_date,
            sha256=sha256,
            loaded_at=now,
            row_count=0,
            phone_reservations=0,
            post_reservations=0,
            key_id=hasher.key_id,
            active=False,
        )
        .returning(register_snapshots.c.id)
    ).scalar_one()
    counts = {"rows": 0, "phone": 0, "post": 0}

    def rows() -> Iterator[tuple[object, ...]]:
        for r in _parse(name, text, hasher, errors):
            if r.key_id == hasher.key_id:  # counted once, whatever the keys
                counts["rows"] += 1
                counts["phone"] += r.reserved_phone
                counts["post"] += r.reserved_post
            yield (
                snapshot_id, r.key_id, r.digest, r.identity_kind, r.reserved_phone,
                r.reserved_post,
            )  # fmt: skip

    columns = ("snapshot_id", "key_id", "key_hash", "identity_kind", "reserved_phone")
    insert_rows(conn, register_entries, (*columns, "reserved_post"), rows())
    if errors:
        shown = "; ".join(f"line {e.row}, {e.field}: {e.reason}" for e in errors[:MAX_ERRORS_SHOWN])
        more = (
            f" (and {len(errors) - MAX_ERRORS_SHOWN} more)"
            if len(errors) > MAX_ERRORS_SHOWN
            else ""
        )
        raise FileRefused(
            name, f"{BAD_ROWS}: {len(errors)} bad rows, nothing replaced: {shown}{more}"
        )
    if counts["rows"] == 0:
        raise FileRefused(name, f"{EMPTY_FILE}: a header and no rows, nothing replaced")
    old = [
        r[0]
        for r in conn.execute(
            select(register_snapshots.c.id).where(register_snapshots.c.id != snapshot_id)
        )
    ]
    if old:
        conn.execute(delete(register_entries).where(register_entries.c.snapshot_id.in_(old)))
        conn.execute(
            update(register_snapshots).where(register_snapshots.c.id.in_(old)).values(active=False)
        )
    conn.execute(
        update(register_snapshots)
        .where(register_snapshots.c.id == snapshot_id)
        .values(
            active=True,
            row_count=counts["rows"],
            phone_reservations=counts["phone"],
            post_reservations=counts["post"],
        )
    )
    snap = active_snapshot(conn)
    assert snap is not None
    return snap


def active_snapshot(conn: Connection) -> Snapshot | None:
    row = conn.execute(
        select(register_snapshots).where(register_snapshots.c.active.is_(True))
    ).first()
    if row is None:
        return None
    m = row._mapping
    loaded_at = m["loaded_at"]
    return Snapshot(
        id=int(m["id"]),
        snapshot_date=m["snapshot_date"],
        sha256=m["sha256"],
        loaded_at=loaded_at if loaded_at.tzinfo else loaded_at.replace(tzinfo=UTC),
        row_count=int(m["row_count"]),
        phone_reservations=int(m["phone_reservations"]),
        post_reservations=int(m["post_reservations"]),
    )


@dataclass(frozen=True, slots=True)
class RegisterHit:
    reserved_phone: bool
    reserved_post: bool
    snapshot_date: date


def lookup(conn: Connection, snapshot: Snapshot, digests: list[bytes]) -> RegisterHit | None:
    """Reservations for any of a person's digests (phone, name+address) in the snapshot."""
    if not digests:
        return None
    rows = conn.execute(
        select(register_entries.c.reserved_phone, register_entries.c.reserved_post).where(
            # "+ 0": SQLite would otherwise probe the snapshot_id index, which matches
            # every row of the snapshot, instead of the key_hash index.
            register_entries.c.snapshot_id + 0 == snapshot.id,
            register_entries.c.key_hash.in_(digests),
        )
    ).all()
    if not rows:
        return None
    return RegisterHit(any(r[0] for r in rows), any(r[1] for r in rows), snapshot.snapshot_date)
