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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from campaigns.sources import values
from suppression.errors import FileRefused, InvalidIdentity, RowError
from suppression.identity import normalise_email, normalise_phone
from suppression.keys import Hasher
from suppression.policy import PolicyConfig, names_us
from suppression.register import name_address_key

FIELDS: Final = (
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
)
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
    the row, so a partner can fix them in one go).
    """

    def __init__(
        self,
        file: str,
        header: Sequence[str],
        fmt: LeadFormat,
        hasher: Hasher,
        policy: PolicyConfig,
        now: datetime,
    ) -> None:
        self.width = len(header)
        self._hasher = hasher
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
                    file, f"duplicate_column: {name!r} and another column both map to {ours}"
                )
            index[ours] = i
            self.labels[ours] = name.strip().lstrip("\ufeff")
        defaults = dict(fmt.defaults)
        for name in FIELDS:
            self.labels.setdefault(name, name)
        if "email" not in index and "phone" not in index:
            raise FileRefused(file, "missing_column: needs an email or a phone column")
        missing = [f for f in _EVIDENCE if f not in index and not defaults.get(f, "").strip()]
        if missing:
            raise FileRefused(file, f"missing_column: no column for {', '.join(missing)} (ES-1)")
        self._index = index
        self._defaults = defaults
        self._channels: dict[str, str | ValueError] = {}
        self._companies: dict[str, bool] = {}

    def _cell(self, cells: list[str], name: str) -> str:
        i = self._index.get(name)
        if i is None:
            return self._defaults.get(name, "").strip()
        return cells[i].strip()

    def read(self, row: int, cells: list[str], errors: list[RowError]) -> Lead | None:
        if len(cells) != self.width and (
            len(cells) < self.width or any(v.strip() for v in cells[self.width :])
        ):
            errors.append(RowError(row, "row", WRONG_FIELD_COUNT))
            return None
        bad: list[RowError] = []
        labels = self.labels
        cell = self._cell

        def refuse(name: str, reason: str) -> None:
            bad.append(RowError(row, labels[name], reason))

        texts: dict[str, str | None] = {}
        for name, limit in MAX_LENGTH.items():
            text = values.clean(cell(cells, name)) if name in self._index else cell(cells, name)
            if len(text) > limit:
                refuse(name, TOO_LONG)
            texts[name] = text or None
        first, last = texts["first_name"], texts["last_name"]
        if first is None and last is None and texts["name"]:
            first, _, rest = texts["name"].rpartition(" ")
            first, last = (first, rest) if first else (rest, None)
            if (last and len(last) > MAX_LENGTH["last_name"]) or len(first) > MAX_LENGTH[
                "first_name"
            ]:
                refuse("name", TOO_LONG)

        email = phone = phone_type = None
        raw_email = cell(cells, "email")
        if raw_email:
            try:
                email = normalise_email(raw_email)
            except InvalidIdentity:
                refuse("email", INVALID_EMAIL)
        raw_phone = cell(cells, "phone")
        if raw_phone:
            try:
                number = normalise_phone(raw_phone)
                phone, phone_type = number.e164, number.number_type
            except InvalidIdentity:
                refuse("phone", INVALID_PHONE)
        if not raw_email and not raw_phone:
            refuse("email" if "email" in self._index else "phone", NO_EMAIL_OR_PHONE)

        postal: str | None = None
        raw_postal = cell(cells, "postal_code")
        if raw_postal:
            try:
                postal = values.postal_code(raw_postal)
            except ValueError as exc:
                refuse("postal_code", str(exc))

        if "consent" in self._index:
            try:
                if not values.parse_flag(cell(cells, "consent")):
                    refuse("consent", CONSENT_NOT_GIVEN)
            except ValueError as exc:
                refuse("consent", str(exc))

        given_at: datetime | None = None
        raw_time = cell(cells, "consent_at")
        if not raw_time:
            refuse("consent_at", REQUIRED)
        else:
            try:
                given_at = values.parse_time(raw_time, self._date_formats)
            except ValueError as exc:
                refuse("consent_at", str(exc))
            else:
                if given_at > self._latest:
                    refuse("consent_at", DATE_IN_FUTURE)

        channels = ""
        raw_channels = cell(cells, "channels")
        parsed = self._channels.get(raw_channels)
        if parsed is None:
            try:
                parsed = parse_channels(raw_channels)
            except ValueError as exc:
                parsed = exc
            self._channels[raw_channels] = parsed
        if isinstance(parsed, ValueError):
            refuse("channels", str(parsed))
        else:
            channels = parsed

        wording, captured, company = (
            texts["wording_version"],
            texts["captured_at"],
            texts["company_named"],
        )
        if wording is None:
            refuse("wording_version", REQUIRED)
        if captured is None:
            refuse("captured_at", REQUIRED)
        if company is None:
            refuse("company_named", REQUIRED)
        else:
            ours = self._companies.get(company)
            if ours is None:
                ours = self._companies[company] = names_us(company, self._policy)
            if not ours:
                refuse("company_named", COMPANY_NOT_US)

        flags = []
        for name in ("explicit_call_request", "multi_company_form"):
            try:
                flags.append(values.parse_flag(cell(cells, name)))
            except ValueError as exc:
                refuse(name, str(exc))

        if channels and not bad:
            street = texts["street"]
            reachable = (
                ("email" in channels and email is not None)
                or (("sms" in channels or "call" in channels) and phone is not None)
                or ("post" in channels and street is not None and postal is not None)
            )
            if not reachable:
                refuse("channels", NO_ADDRESS_FOR_CHANNEL)
        if bad:
            errors.extend(bad)
            return None
        assert given_at is not None and wording and captured and company
        digest = self._hasher.digest
        street, city = texts["street"], texts["city"]
        name_address_hash = None
        if street and postal and (first or last):
            full = f"{first or ''} {last or ''}".strip()
            name_address_hash = digest("name_address", name_address_key(full, street, postal))
        return Lead(
            row,
            email,
            digest("email", email) if email else None,
            phone,
            phone_type,
            digest("phone", phone) if phone else None,
            first,
            last,
            street,
            postal,
            city,
            name_address_hash,
            texts["lead_id"],
            given_at,
            channels,
            wording,
            captured,
            company,
            flags[0],
            flags[1],
        )
