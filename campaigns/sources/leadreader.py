"""Validating the rows of a partner lead file against its header, into `Lead`s.

The fields, header aliases and reason codes are those of `campaigns.sources.partner`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from campaigns.sources import values
from campaigns.sources.partner import (
    ALIASES,
    COMPANY_NOT_US,
    CONSENT_NOT_GIVEN,
    DATE_IN_FUTURE,
    DEFAULTABLE,
    FIELDS,
    FUTURE_TOLERANCE,
    INVALID_CHARACTER,
    INVALID_EMAIL,
    INVALID_PHONE,
    MAX_LENGTH,
    NO_ADDRESS_FOR_CHANNEL,
    NO_EMAIL_OR_PHONE,
    REQUIRED,
    TOO_LONG,
    WRONG_FIELD_COUNT,
    Lead,
    LeadFormat,
    header_key,
    parse_channels,
)
from suppression.errors import FileRefused, InvalidIdentity, RowError
from suppression.identity import normalise_email, normalise_phone
from suppression.keys import Hasher
from suppression.policy import PolicyConfig, names_us
from suppression.register import name_address_key

_EVIDENCE: Final = ("consent_at", "channels", "wording_version", "captured_at", "company_named")
_CACHE_LIMIT = 10_000  # distinct channel lists and company names remembered per file
_SHOWN_HEADERS = 6  # headers named in a missing_column error


class LeadReader:
    """Validates the rows of one file against its header. Built once per file.

    `read` returns a Lead, or None after appending the row's errors (every error of
    the row, so a partner can fix them in one go). It runs once per row of files of
    millions of rows, hence the plain locals instead of a loop over field specs.
    """

    def __init__(
        self,
        file: str,
        header: Sequence[str],
        fmt: LeadFormat,
        hasher: Hasher,
        policy: PolicyConfig,
        now: datetime,
        digest: Callable[[str, str], bytes] | None = None,
    ) -> None:
        self.width = len(header)
        self._digest = digest or hasher.digest
        self._policy = policy
        self._latest = now + FUTURE_TOLERANCE
        self._date_formats = tuple(fmt.date_formats)
        explicit = {header_key(k): v for k, v in fmt.columns.items()}
        index: dict[str, int] = {}
        self.labels: dict[str, str] = {}  # our field -> the partner's header (for errors)
        unmatched: list[str] = []
        for i, name in enumerate(header):
            key = header_key(name)
            ours = explicit.get(key) or ALIASES.get(key)
            if ours is None or not key:
                if key:
                    unmatched.append(name)
                continue  # a column we do not use is not read (data minimisation)
            if ours in index:
                raise FileRefused(
                    file,
                    f"duplicate_column: {name.strip()!r} and another column both map to {ours}",
                )
            index[ours] = i
            self.labels[ours] = name.strip().lstrip("\ufeff")
        defaults = {k: v.strip() for k, v in fmt.defaults.items()}
        for name in FIELDS:
            self.labels.setdefault(name, name)
        if "email" not in index and "phone" not in index:
            raise FileRefused(
                file,
                "missing_column: needs an email or a phone column"
                + _unmatched(header, unmatched, ("email", "phone")),
            )
        missing = [f for f in _EVIDENCE if f not in index and not defaults.get(f)]
        if missing:
            raise FileRefused(
                file,
                f"missing_column: no column for {', '.join(missing)} (ES-1)"
                + _unmatched(header, unmatched, missing),
            )
        self._header = [h.strip().lstrip("\ufeff") for h in header]
        # A field without a column reads its default (or "") from past the row's end:
        # `read` appends `_absent` to the cells, and the field's position counts from
        # the end, so that each field is one list index whatever the row's length.
        absent = [name for name in FIELDS if name not in index]
        self._absent = [defaults.get(n, "") if n in DEFAULTABLE else "" for n in absent]
        self._pos = tuple(
            index[name] if name in index else absent.index(name) - len(absent) for name in FIELDS
        )
        self._has = {name: name in index for name in FIELDS}
        self._channels: dict[str, str | ValueError] = {}
        self._companies: dict[str, bool] = {}

    def _header_at(self, i: int) -> str:
        return self._header[i] if i < len(self._header) else "row"

    def read(self, row: int, cells: list[str], errors: list[RowError]) -> Lead | None:
        width = self.width
        if len(cells) != width and (len(cells) < width or any(v.strip() for v in cells[width:])):
            errors.append(RowError(row, "row", WRONG_FIELD_COUNT))
            return None
        # Printable (no control character, no whitespace but the plain space) and no
        # double space: every name and address is its own stripped spelling. Else the
        # whitespace is collapsed, after the check for NUL (no character of any name
        # or address, and PostgreSQL refuses it in text).
        line = "|".join(cells)
        clean: Callable[[str], str]
        if line.isprintable() and "  " not in line:
            clean = str.strip
        else:
            if "\x00" in line:
                at = next(i for i, v in enumerate(cells) if "\x00" in v)
                errors.append(RowError(row, self._header_at(at), INVALID_CHARACTER))
                return None
            clean = values.clean
        cells = cells + self._absent  # a new list: the caller's cells stay as they are
        (
            i_first,
            i_last,
            i_name,
            i_email,
            i_phone,
            i_street,
            i_postal,
            i_city,
            i_lead,
            i_consent,
            i_at,
            i_channels,
            i_wording,
            i_captured,
            i_company,
            i_explicit,
            i_multi,
        ) = self._pos
        has = self._has
        bad: list[tuple[str, str]] = []  # (field, reason)

        first = clean(cells[i_first])
        last = clean(cells[i_last])
        if not first and not last and has["name"]:
            full = clean(cells[i_name])
            if len(full) > MAX_LENGTH["name"]:
                bad.append(("name", TOO_LONG))
            head, _, tail = full.rpartition(" ")
            first, last = (head, tail) if head else (tail, "")
        if len(first) > 200:
            bad.append(("first_name" if has["first_name"] else "name", TOO_LONG))
        if len(last) > 200:
            bad.append(("last_name" if has["last_name"] else "name", TOO_LONG))
        street = clean(cells[i_street])
        if len(street) > 300:
            bad.append(("street", TOO_LONG))
        city = clean(cells[i_city])
        if len(city) > 120:
            bad.append(("city", TOO_LONG))
        lead_id = cells[i_lead].strip()
        if len(lead_id) > 200:
            bad.append(("lead_id", TOO_LONG))

        email = phone = phone_type = None
        raw_email = cells[i_email].strip()
        if raw_email:
            try:
                email = normalise_email(raw_email)
            except InvalidIdentity:
                bad.append(("email", INVALID_EMAIL))
        raw_phone = cells[i_phone].strip()
        if raw_phone:
            try:
                number = normalise_phone(raw_phone)
                phone, phone_type = number.e164, number.number_type
            except InvalidIdentity:
                bad.append(("phone", INVALID_PHONE))
        if not raw_email and not raw_phone:
            bad.append(("email" if has["email"] else "phone", NO_EMAIL_OR_PHONE))

        postal = cells[i_postal].strip()
        if postal and (len(postal) != 4 or not postal.isdigit() or not postal.isascii()):
            try:
                postal = values.postal_code(postal)
            except ValueError as exc:
                bad.append(("postal_code", str(exc)))

        if has["consent"]:
            try:
                if not values.parse_flag(cells[i_consent]):
                    bad.append(("consent", CONSENT_NOT_GIVEN))
            except ValueError as exc:
                bad.append(("consent", str(exc)))

        given_at: datetime | None = None
        raw_time = cells[i_at].strip()
        if not raw_time:
            bad.append(("consent_at", REQUIRED))
        else:
            try:
                given_at = values.parse_time(raw_time, self._date_formats)
            except ValueError as exc:
                bad.append(("consent_at", str(exc)))
            else:
                if given_at > self._latest:
                    bad.append(("consent_at", DATE_IN_FUTURE))

        raw_channels = cells[i_channels].strip()
        channels = self._channels.get(raw_channels)
        if channels is None:
            try:
                channels = parse_channels(raw_channels)
            except ValueError as exc:
                channels = exc
            if len(self._channels) < _CACHE_LIMIT:  # a hostile file cannot grow it without end
                self._channels[raw_channels] = channels
        if isinstance(channels, ValueError):
            bad.append(("channels", str(channels)))
            channels = ""

        wording = cells[i_wording].strip()
        if not wording:
            bad.append(("wording_version", REQUIRED))
        elif len(wording) > 80:
            bad.append(("wording_version", TOO_LONG))
        captured = cells[i_captured].strip()
        if not captured:
            bad.append(("captured_at", REQUIRED))
        elif len(captured) > 500:
            bad.append(("captured_at", TOO_LONG))
        company = cells[i_company].strip()
        if not company:
            bad.append(("company_named", REQUIRED))
        else:
            ours = self._companies.get(company)
            if ours is None:
                ours = len(company) <= 200 and names_us(company, self._policy)
                if len(self._companies) < _CACHE_LIMIT:
                    self._companies[company] = ours
            if not ours:
                bad.append(("company_named", COMPANY_NOT_US))

        explicit = multi = False
        if has["explicit_call_request"]:
            try:
                explicit = values.parse_flag(cells[i_explicit])
            except ValueError as exc:
                bad.append(("explicit_call_request", str(exc)))
        if has["multi_company_form"]:
            try:
                multi = values.parse_flag(cells[i_multi])
            except ValueError as exc:
                bad.append(("multi_company_form", str(exc)))

        if not bad and not (
            (email is not None and "email" in channels)
            or (phone is not None and ("sms" in channels or "call" in channels))
            or (street and postal and "post" in channels)
        ):
            bad.append(("channels", NO_ADDRESS_FOR_CHANNEL))
        if bad:
            labels = self.labels
            errors.extend(RowError(row, labels[name], reason) for name, reason in bad)
            return None
        assert given_at is not None
        digest = self._digest
        name_address_hash = None
        if street and postal and (first or last):
            full_name = f"{first} {last}" if first and last else first or last
            name_address_hash = digest("name_address", name_address_key(full_name, street, postal))
        # tuple.__new__: Lead's own __new__ is a Python function, a third of the cost.
        return tuple.__new__(
            Lead,
            (
                row,
                email,
                digest("email", email) if email is not None else None,
                phone,
                phone_type,
                digest("phone", phone) if phone is not None else None,
                first or None,
                last or None,
                street or None,
                postal or None,
                city or None,
                name_address_hash,
                lead_id or None,
                given_at,
                channels,
                wording,
                captured,
                company,
                explicit,
                multi,
            ),
        )


def _unmatched(header: Sequence[str], unmatched: Sequence[str], wanted: Sequence[str]) -> str:
    """The partner's headers that matched none of our fields, each with the expected
    header closest to it among those of the `wanted` fields, for a missing_column error.
    A first row that looks like data (an email address, a number) is not quoted: it is
    personal data, and no error message carries any."""
    if not unmatched:
        return ""
    if any("@" in cell or sum(c.isdigit() for c in cell) >= 5 for cell in header):
        return "; the first row looks like data, not a header row"
    expected = {alias: ours for alias, ours in ALIASES.items() if ours in wanted}
    shown = []
    for name in unmatched[:_SHOWN_HEADERS]:
        label = name.strip().lstrip("\ufeff")[:40]
        close = difflib.get_close_matches(header_key(name), expected, n=1, cutoff=0.6)
        shown.append(f"{label!r} (closest: {close[0]!r})" if close else repr(label))
    more = len(unmatched) - _SHOWN_HEADERS
    return (
        "; headers that matched nothing: "
        + ", ".join(shown)
        + (f" and {more} more" if more > 0 else "")
    )
