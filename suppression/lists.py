"""Suppression lists from elsewhere: a plain list, a CSV with an identity column, or
Mailchimp's export of unsubscribed / cleaned members.

A file that cannot be read whole is refused whole (`FileRefused` naming the file and
the line or column; nothing of it is kept): not text (binary, UTF-16 without its byte
order mark), two encodings in one file, a last line cut off, a quote left open, a field
or line longer than the csv module's limit, a column named twice, no line at all. In a
file that can be read, bad lines are collected as RowError values (line number, field,
reason) and good lines are kept (`outreach suppress import`): each of them is a no.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from suppression.errors import FileRefused, InvalidIdentity, RowError
from suppression.identity import Identity, IdentityKind, email_identity, phone_identity
from suppression.register import (
    DUPLICATE_COLUMN,
    EMPTY_FILE,
    MALFORMED_CSV,
    MISSING_COLUMN,
    csv_rows,
    read_text,
    sniff_delimiter,
)

EMAIL_HEADERS = {"email", "e-post", "epost", "email address", "e-mail", "mail"}
PHONE_HEADERS = {"phone", "telefon", "mobil", "mobile", "tlf", "mobilnummer", "phone number"}
MAILCHIMP_TIME_COLUMNS = ("UNSUB_TIME", "CLEAN_TIME")


@dataclass(frozen=True, slots=True)
class ListItem:
    line: int
    identity: Identity
    occurred_at: datetime | None = None
    event: str = ""


def _guess(raw: str) -> Identity:
    text = raw.strip()
    if "@" in text:
        return email_identity(text)
    return phone_identity(text)


def parse_plain(data: bytes, *, name: str) -> tuple[list[ListItem], list[RowError]]:
    """One email or phone per line, or a CSV whose header names an email or phone column.
    `name` names the file in a FileRefused."""
    text = read_text(name, data)
    first = text.split("\n", 1)[0].strip()
    header_cells = [c.strip().strip('"').lower() for c in first.split(sniff_delimiter(first))]
    if any(c in EMAIL_HEADERS or c in PHONE_HEADERS for c in header_cells):
        return _parse_csv(name, text)
    items: list[ListItem] = []
    errors: list[RowError] = []
    limit = csv.field_size_limit()
    for line_no, line in enumerate(text.splitlines(), start=1):
        if len(line) > limit:  # not a list of addresses: the same limit as a CSV field
            raise FileRefused(
                name, f"{MALFORMED_CSV}: line {line_no}: a line is longer than {limit} characters"
            )
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            items.append(ListItem(line_no, _guess(line)))
        except InvalidIdentity as exc:
            errors.append(RowError(line_no, exc.field, exc.reason))
    if not items and not errors:
        raise FileRefused(name, f"{EMPTY_FILE}: no line with an email or a phone")
    return items, errors


def _header(name: str, rows: Iterator[tuple[int, list[str]]]) -> list[str]:
    """The header row; FileRefused when a column is named twice (which one holds the
    person's address could not be told) or when no row follows it."""
    first = next(rows, None)
    if first is None:
        raise FileRefused(name, f"{EMPTY_FILE}: the file is empty")
    header = first[1]
    seen: dict[str, int] = {}
    for i, cell in enumerate(header, start=1):
        key = cell.strip().lower()
        if key and key in seen:
            raise FileRefused(
                name,
                f"{DUPLICATE_COLUMN}: line 1, header: columns {seen[key]} and {i} are both "
                f"{cell.strip()!r}",
            )
        seen[key] = i
    return header


def _cell(cells: list[str], i: int) -> str:
    return cells[i] if i < len(cells) else ""


def _body(name: str, rows: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    found = False
    for row in rows:
        found = True
        yield row
    if not found:
        raise FileRefused(name, f"{EMPTY_FILE}: a header and no rows")


def _parse_csv(name: str, text: str) -> tuple[list[ListItem], list[RowError]]:
    rows = csv_rows(name, text, sniff_delimiter(text.split("\n", 1)[0]))
    fields = _header(name, rows)
    columns: list[tuple[int, str, IdentityKind]] = [
        (i, f, "email") for i, f in enumerate(fields) if f.strip().lower() in EMAIL_HEADERS
    ] + [(i, f, "phone") for i, f in enumerate(fields) if f.strip().lower() in PHONE_HEADERS]
    items: list[ListItem] = []
    errors: list[RowError] = []
    for line_no, cells in _body(name, rows):
        found = False
        for i, column, kind in columns:
            value = _cell(cells, i).strip()
            if not value:
                continue
            found = True
            try:
                ident = email_identity(value) if kind == "email" else phone_identity(value)
            except InvalidIdentity as exc:
                errors.append(RowError(line_no, column, exc.reason))
                continue
            items.append(ListItem(line_no, ident))
        if not found:
            errors.append(RowError(line_no, "row", "no email or phone on this line"))
    return items, errors


def parse_mailchimp(data: bytes, *, name: str) -> tuple[list[ListItem], list[RowError]]:
    """Mailchimp's unsubscribed/cleaned export: `Email Address` plus UNSUB_TIME or CLEAN_TIME.
    `name` names the file in a FileRefused."""
    rows = csv_rows(name, read_text(name, data), ",")
    fields = _header(name, rows)
    if "Email Address" not in fields:
        raise FileRefused(
            name,
            f"{MISSING_COLUMN}: line 1, header: not a Mailchimp export: no 'Email Address' column",
        )
    at = {f: i for i, f in enumerate(fields)}
    time_column = next((c for c in MAILCHIMP_TIME_COLUMNS if c in at), None)
    items: list[ListItem] = []
    errors: list[RowError] = []
    for line_no, cells in _body(name, rows):
        try:
            ident = email_identity(_cell(cells, at["Email Address"]))
        except InvalidIdentity as exc:
            errors.append(RowError(line_no, "Email Address", exc.reason))
            continue
        occurred: datetime | None = None
        stamp = _cell(cells, at[time_column]).strip() if time_column else ""
        if stamp:
            try:
                occurred = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                errors.append(
                    RowError(line_no, time_column or "", "not a time like 2024-01-31 12:00:00")
                )
                continue
        event = f"mailchimp:{time_column or 'export'}:{stamp}"
        items.append(ListItem(line_no, ident, occurred, event))
    return items, errors
