"""Suppression lists from elsewhere: a plain list, a CSV with an identity column, or
Mailchimp's export of unsubscribed / cleaned members.

Bad lines are collected as RowError values (line number, field, reason); good lines
are kept (`outreach suppress import`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime

from suppression.errors import InvalidIdentity, RowError
from suppression.identity import Identity, IdentityKind, email_identity, phone_identity
from suppression.register import decode, sniff_delimiter, undecodable_line

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


def _decode(data: bytes) -> str | RowError:
    try:
        return decode(data)
    except UnicodeDecodeError as exc:
        # Nothing of a file in an unknown encoding can be trusted: no line is kept.
        return RowError(undecodable_line(data, exc), "file", "not UTF-8 or Windows-1252 text")


def parse_plain(data: bytes) -> tuple[list[ListItem], list[RowError]]:
    """One email or phone per line, or a CSV whose header names an email or phone column."""
    text = _decode(data)
    if isinstance(text, RowError):
        return [], [text]
    items: list[ListItem] = []
    errors: list[RowError] = []
    first = text.split("\n", 1)[0].strip().lstrip("\ufeff")
    header_cells = [c.strip().strip('"').lower() for c in first.split(sniff_delimiter(first))]
    if any(c in EMAIL_HEADERS or c in PHONE_HEADERS for c in header_cells):
        return _parse_csv(text)
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            items.append(ListItem(line_no, _guess(line)))
        except InvalidIdentity as exc:
            errors.append(RowError(line_no, exc.field, exc.reason))
    return items, errors


def _parse_csv(text: str) -> tuple[list[ListItem], list[RowError]]:
    first = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first))
    fields = reader.fieldnames or []
    columns: list[tuple[str, IdentityKind]] = [
        (f, "email") for f in fields if f.strip().lower() in EMAIL_HEADERS
    ] + [(f, "phone") for f in fields if f.strip().lower() in PHONE_HEADERS]
    items: list[ListItem] = []
    errors: list[RowError] = []
    for row in reader:
        line_no = reader.line_num  # right after blank lines and quoted line breaks too
        found = False
        for column, kind in columns:
            value = (row.get(column) or "").strip()
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


def parse_mailchimp(data: bytes) -> tuple[list[ListItem], list[RowError]]:
    """Mailchimp's unsubscribed/cleaned export: `Email Address` plus UNSUB_TIME or CLEAN_TIME."""
    text = _decode(data)
    if isinstance(text, RowError):
        return [], [text]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = reader.fieldnames or []
    if "Email Address" not in fields:
        return [], [
            RowError(1, "Email Address", "not a Mailchimp export: no 'Email Address' column")
        ]
    time_column = next((c for c in MAILCHIMP_TIME_COLUMNS if c in fields), None)
    items: list[ListItem] = []
    errors: list[RowError] = []
    for row in reader:
        line_no = reader.line_num
        try:
            ident = email_identity(row.get("Email Address") or "")
        except InvalidIdentity as exc:
            errors.append(RowError(line_no, "Email Address", exc.reason))
            continue
        occurred: datetime | None = None
        stamp = (row.get(time_column) or "").strip() if time_column else ""
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
