"""Partner lead files: our fields, the partner's headers for them, the reason codes.

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
`campaigns.sources.leadreader` validates the rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, NamedTuple, get_args

from campaigns.sources import values

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
