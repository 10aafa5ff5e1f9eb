"""Reservasjonsregisteret snapshots: loaded whole, stored as keyed hashes only (TP-1, GD-4).

File format (what the register delivers, as we receive it): CSV with a header,
delimiter `;`, `,` or tab, UTF-8 (with or without BOM) or Windows-1252, columns
`telefon` (optional), `navn`, `adresse`, `postnummer` (optional as a group, but a
row needs a phone or a name with an address) and `reservasjon` in
{telefon, post, begge} (English phone/post/both accepted). A load replaces the
previous snapshot in one transaction; a bad file replaces nothing.
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
MAX_ERRORS_SHOWN = 20


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


@dataclass(frozen=True, slots=True)
class _Row:
    key_id: str
    digest: bytes
    identity_kind: str
    reserved_phone: bool
    reserved_post: bool


def _parse(text: str, hasher: Hasher, errors: list[RowError]) -> Iterator[_Row]:
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first_line))
    header = next(reader, None)
    if header is None:
        raise InvalidIdentity("header", "the file is empty")
    columns = [_HEADER_ALIASES.get(h.strip().lower()) for h in header]
    if "reservation" not in columns:
        raise InvalidIdentity("header", "no column 'reservasjon'")
    if "phone" not in columns and "name" not in columns:
        raise InvalidIdentity("header", "needs a column 'telefon' or 'navn'")
    for values in reader:
        # The reader's own count: right after blank lines and quoted line breaks too.
        line_no = reader.line_num
        if not any(v.strip() for v in values):
            continue
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
    try:
        text = decode(data)
    except UnicodeDecodeError as exc:
        raise FileRefused(
            str(path), f"line {undecodable_line(data, exc)}: not UTF-8 or Windows-1252 text"
        ) from None
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
        for r in _parse(text, hasher, errors):
            if r.key_id == hasher.key_id:  # counted once, whatever the keys
                counts["rows"] += 1
                counts["phone"] += r.reserved_phone
                counts["post"] += r.reserved_post
            yield (
                snapshot_id, r.key_id, r.digest, r.identity_kind, r.reserved_phone,
                r.reserved_post,
            )  # fmt: skip

    columns = ("snapshot_id", "key_id", "key_hash", "identity_kind", "reserved_phone")
    try:
        insert_rows(conn, register_entries, (*columns, "reserved_post"), rows())
    except InvalidIdentity as exc:  # the header: nothing was read past line 1
        raise FileRefused(str(path), f"line 1, {exc.field}: {exc.reason}") from None
    if errors:
        shown = "; ".join(f"line {e.row}, {e.field}: {e.reason}" for e in errors[:MAX_ERRORS_SHOWN])
        more = (
            f" (and {len(errors) - MAX_ERRORS_SHOWN} more)"
            if len(errors) > MAX_ERRORS_SHOWN
            else ""
        )
        raise FileRefused(str(path), f"{len(errors)} bad rows, nothing replaced: {shown}{more}")
    if counts["rows"] == 0:
        raise FileRefused(str(path), "no rows, nothing replaced")
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
