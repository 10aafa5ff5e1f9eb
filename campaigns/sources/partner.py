"""Partner lead files: map the partner's columns to ours and validate each row.

Our fields (a partner's headers map to these; Norwegian headers are known without
configuration, see `ALIASES`):

| field | meaning |
| --- | --- |
| first_name, last_name (or name) | the person |
| email, phone | at least one; phone in any common spelling, default region NO |
| street, postal_code, city | postal address |
| lead_id | the partner's own id of the lead |
| consent_at | when the consent was given (ISO 8601 or dd.mm.yyyy HH:MM, Europe/Oslo if naive) |
| channels | the channels consented to: e-post/email, sms, telefon/call, post |
| wording_version | the version of the consent text shown |
| captured_at | where it was given: URL or form id |
| company_named | the company the consent names: must be us (ES-1) |
| consent | optional yes/no column: a "no" refuses the row |
| explicit_call_request, multi_company_form | optional yes/no (TP-4) |

ES-1: a row without valid consent evidence (when, which channels, wording version,
where, our company named) for at least one channel whose address the row holds is
refused. Refused rows are collected as `RowError(row, field, reason)` where `field`
is the partner's own column header and `reason` a stable code (`REASONS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, NamedTuple, get_args

from campaigns.sources import values
from suppression.errors import FileRefused, InvalidIdentity, RowError
from suppression.identity import normalise_email, normalise_phone
from suppression.keys import Hasher
from suppression.policy import PolicyConfig, names_us
from suppression.register import name_address_key

OurField = Literal[
    "first_name",
    "last_name",
    "name",
    "email",
    "phone",
    "street",
    "postal_code",
    "city",
    "lead_id",
    "consent",
    "consent_at",
    "channels",
    "wording_version",
    "captured_at",
    "company_named",
    "explicit_call_request",
    "multi_company_form",
]
FIELDS: Final[tuple[str, ...]] = get_args(OurField)
# Evidence a partner may give once for all its rows (partners file `defaults`).
DEFAULTABLE: Final = ("channels", "wording_version", "captured_at", "company_named")
_EVIDENCE: Final = ("consent_at", "channels", "wording_version", "captured_at", "company_named")

# Reason codes: stable strings, they land in the database and in error reports.
REQUIRED: Final = values.REQUIRED
TOO_LONG: Final = values.TOO_LONG
INVALID_DATE: Final = values.INVALID_DATE
INVALID_FLAG: Final = values.INVALID_FLAG
INVALID_POSTAL_CODE: Final = values.INVALID_POSTAL_CODE
INVALID_EMAIL: Final = "invalid_email"
INVALID_PHONE: Final = "invalid_phone"
NO_EMAIL_OR_PHONE: Final = "no_email_or_phone"
DATE_IN_FUTURE: Final = "date_in_future"
UNKNOWN_CHANNEL: Final = "unknown_channel"
COMPANY_NOT_US: Final = "company_not_us"
CONSENT_NOT_GIVEN: Final = "consent_not_given"
NO_ADDRESS_FOR_CHANNEL: Final = "no_address_for_consented_channel"
WRONG_FIELD_COUNT: Final = "wrong_field_count"
INVALID_CHARACTER: Final = "invalid_character"
IDENTITY_CONFLICT: Final = "identity_conflict"
REASONS: Final = {
    REQUIRED: "the field is empty",
    TOO_LONG: "the value is too long",
    INVALID_DATE: "not a date and time like 2024-03-12 14:33 or 12.03.2024 14:33",
    INVALID_FLAG: "not a yes/no value (ja/nei)",
    INVALID_POSTAL_CODE: "not a four-digit postal code",
    INVALID_EMAIL: "not a valid email address",
    INVALID_PHONE: "not a valid phone number",
    NO_EMAIL_OR_PHONE: "the row has neither an email address nor a phone number",
    DATE_IN_FUTURE: "the consent time is in the future",
    UNKNOWN_CHANNEL: "a channel is not one of e-post, sms, telefon, post",
    COMPANY_NOT_US: "the consent does not name our company",
    CONSENT_NOT_GIVEN: "the consent column says no",
    NO_ADDRESS_FOR_CHANNEL: "no consented channel has its address (email, phone) in the row",
    WRONG_FIELD_COUNT: "the row has another number of fields than the header",
    INVALID_CHARACTER: "the value holds a NUL character",
    IDENTITY_CONFLICT: "the email and the phone belong to two different people we hold",
}

# Norwegian (and English) headers, by `header_key`: lower case, letters and digits only.
ALIASES: Final[dict[str, str]] = {
    "fornavn": "first_name",
    "firstname": "first_name",
    "etternavn": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "navn": "name",
    "fulltnavn": "name",
    "name": "name",
    "fullname": "name",
    "epost": "email",
    "epostadresse": "email",
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "mobil": "phone",
    "mobilnummer": "phone",
    "mobiltelefon": "phone",
    "telefon": "phone",
    "telefonnummer": "phone",
    "tlf": "phone",
    "phone": "phone",
    "mobile": "phone",
    "adresse": "street",
    "gateadresse": "street",
    "address": "street",
    "street": "street",
    "postnummer": "postal_code",
    "postnr": "postal_code",
    "postalcode": "postal_code",
    "zip": "postal_code",
    "poststed": "city",
    "sted": "city",
    "city": "city",
    "leadid": "lead_id",
    "lead": "lead_id",
    "id": "lead_id",
    "referanse": "lead_id",
    "samtykke": "consent",
    "consent": "consent",
    "samtykketidspunkt": "consent_at",
    "samtykketid": "consent_at",
    "samtykkedato": "consent_at",
    "samtykket": "consent_at",
    "tidspunkt": "consent_at",
    "consentat": "consent_at",
    "consenttime": "consent_at",
    "kanaler": "channels",
    "kanal": "channels",
    "channels": "channels",
    "tekstversjon": "wording_version",
    "samtykketekst": "wording_version",
    "versjon": "wording_version",
    "wordingversion": "wording_version",
    "skjema": "captured_at",
    "url": "captured_at",
    "skjemaurl": "captured_at",
    "kilde": "captured_at",
    "capturedat": "captured_at",
    "selskap": "company_named",
    "firma": "company_named",
    "company": "company_named",
    "companynamed": "company_named",
    "eksplisittforesporsel": "explicit_call_request",
    "eksplisittforespørsel": "explicit_call_request",
    "explicitcallrequest": "explicit_call_request",
    "flereselskaper": "multi_company_form",
    "multicompanyform": "multi_company_form",
}
for _name in FIELDS:
    ALIASES.setdefault(_name.replace("_", ""), _name)

# Channel words in the `channels` column, by lower case.
CHANNEL_WORDS: Final = {
    "e-post": "email",
    "epost": "email",
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "sms": "sms",
    "tekstmelding": "sms",
    "telefon": "call",
    "tlf": "call",
    "phone": "call",
    "call": "call",
    "ringe": "call",
    "oppringing": "call",
    "post": "post",
    "brev": "post",
}
CHANNEL_ORDER: Final = ("email", "sms", "call", "post")
_CHANNEL_SPLIT = re.compile(r"[\s,;/|+&]+|\bog\b|\band\b")
_NOT_HEADER = re.compile(r"[\W_]+")
# Plaintext column widths of campaigns.schema (contacts, consent_records, contact_sources).
MAX_LENGTH: Final = {
    "first_name": 200,
    "last_name": 200,
    "name": 400,
    "street": 300,
    "city": 120,
    "lead_id": 200,
    "wording_version": 80,
    "captured_at": 500,
    "company_named": 200,
}
_CACHE_LIMIT = 10_000  # distinct channel lists and company names remembered per file
# A partner's clock and ours may disagree a little; more than this is an error.
FUTURE_TOLERANCE = timedelta(minutes=5)


def header_key(header: str) -> str:
    """A header as `ALIASES` knows it: "E-post" -> "epost", "samtykke_tidspunkt" -> ..."""
    return _NOT_HEADER.sub("", header.strip().lstrip("\ufeff").casefold())


@dataclass(frozen=True, slots=True)
class LeadFormat:
    """How one partner writes its files (from the partners file)."""

    columns: Mapping[str, str] = field(default_factory=dict)  # their header -> our field
    date_formats: Sequence[str] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)  # field -> value for all rows


class Lead(NamedTuple):
    """One accepted row, canonical and hashed; plaintext only where we keep it."""

    row: int
    email: str | None
    email_hash: bytes | None
    phone: str | None
    phone_type: str | None
    phone_hash: bytes | None
    first_name: str | None
    last_name: str | None
    street: str | None
    postal_code: str | None
    city: str | None
    name_address_hash: bytes | None
    lead_id: str | None
    given_at: datetime
    channels: str  # canonical, comma-separated in CHANNEL_ORDER
    wording_version: str
    captured_at: str
    company_named: str
    explicit_call_request: bool
    multi_company_form: bool


def parse_channels(text: str) -> str:
    """The canonical channel list ("email,sms") of a `channels` cell; ValueError(code)."""
    found: set[str] = set()
    for word in _CHANNEL_SPLIT.split(text.casefold()):
        if not word:
            continue
        channel = CHANNEL_WORDS.get(word)
        if channel is None:
            raise ValueError(UNKNOWN_CHANNEL)
        found.add(channel)
    if not found:
        raise ValueError(REQUIRED)
    return ",".join(c for c in CHANNEL_ORDER if c in found)


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
        for i, name in enumerate(header):
            key = header_key(name)
            ours = explicit.get(key) or ALIASES.get(key)
            if ours is None or not key:
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
            raise FileRefused(file, "missing_column: needs an email or a phone column")
        missing = [f for f in _EVIDENCE if f not in index and not defaults.get(f)]
        if missing:
            raise FileRefused(file, f"missing_column: no column for {', '.join(missing)} (ES-1)")
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
