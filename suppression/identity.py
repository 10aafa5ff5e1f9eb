"""Identities: normalise and validate emails and phone numbers.

One canonical spelling per person-identity, so that equivalent spellings give the
same keyed hash (`suppression.keys`). The canonical email is email-validator's
normalised address, lower-cased as a whole (we treat local parts as
case-insensitive, the stricter reading for suppression: a no for
Ola.Nordmann@ also covers ola.nordmann@). The canonical phone is E.164 from
phonenumbers with default region NO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from suppression.errors import InvalidIdentity

IdentityKind = Literal["email", "phone"]
DEFAULT_REGION = "NO"

_PHONE_TYPE_NAMES = {
    value: name.lower()
    for name, value in vars(phonenumbers.PhoneNumberType).items()
    if not name.startswith("_") and isinstance(value, int)
}


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str
    number_type: str  # "mobile", "fixed_line", "fixed_line_or_mobile", "voip", ...


@dataclass(frozen=True, slots=True)
class Identity:
    kind: IdentityKind
    value: str  # canonical spelling: lower-cased email or E.164 phone


def normalise_email(raw: str) -> str:
    """The canonical spelling of an email address, or InvalidIdentity with the reason."""
    text = raw.strip()
    if not text:
        raise InvalidIdentity("email", "empty")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentity("email", _email_reason(exc)) from None
    return result.normalized.lower()


def _email_reason(exc: EmailNotValidError) -> str:
    # email-validator's messages can quote the address; keep only its generic wording.
    message = str(exc)
    if "@" in message or any(ch.isdigit() for ch in message):
        return "not a valid email address"
    return message


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> Phone:
    """E.164 and number type of a phone number, or InvalidIdentity with the reason."""
    text = raw.strip()
    if not text:
        raise InvalidIdentity("phone", "empty")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidIdentity("phone", "not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentity("phone", "not a valid phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    kind = _PHONE_TYPE_NAMES.get(phonenumbers.number_type(number), "unknown")
    return Phone(e164=e164, number_type=kind)


def email_identity(raw: str) -> Identity:
    return Identity("email", normalise_email(raw))


def phone_identity(raw: str, region: str = DEFAULT_REGION) -> Identity:
    return Identity("phone", normalise_phone(raw, region).e164)


def identity(kind: IdentityKind, raw: str) -> Identity:
    return email_identity(raw) if kind == "email" else phone_identity(raw)
