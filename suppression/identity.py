"""Identities: normalise and validate emails and phone numbers.

One canonical spelling per person-identity, so that equivalent spellings give the
same keyed hash (`suppression.keys`). The canonical email is email-validator's
normalised address, lower-cased as a whole (we treat local parts as
case-insensitive, the stricter reading for suppression: a no for
Ola.Nordmann@ also covers ola.nordmann@). The canonical phone is E.164 from
phonenumbers with default region NO.

The libraries are the reference (`_normalise_email_slow`, `_normalise_phone_slow`)
but cost ~20 µs per item, too slow for partner files and register snapshots of
millions of rows. The public functions therefore try a fast path first that only
accepts what it can prove the library accepts with the same result, built from the
library's own rules and data; everything else, every refusal included, goes through
the library, so accepted values and refusal reasons are the library's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import ATEXT, EMAIL_MAX_LENGTH, LOCAL_PART_MAX_LENGTH

from suppression.errors import InvalidIdentity

if TYPE_CHECKING:  # phonenumbers is imported at the first phone number (`_phonenumbers`)
    from types import ModuleType

    from phonenumbers import PhoneMetadata, PhoneNumberDesc

IdentityKind = Literal["email", "phone"]
DEFAULT_REGION = "NO"


def _phonenumbers() -> ModuleType:
    """The phonenumbers library, imported at the first phone number: a command that
    only handles an email (`outreach suppress check --email`) starts without it."""
    import phonenumbers

    return phonenumbers


@functools.cache
def _phone_type_names() -> dict[int, str]:
    return {
        value: name.lower()
        for name, value in vars(_phonenumbers().PhoneNumberType).items()
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


# --- email ------------------------------------------------------------------------

# An all-ASCII dot-atom local part (email-validator's own ATEXT, so the same
# characters) and an ASCII host name. ASCII input is already NFC and has no quoted
# part, display name or combining characters, so email-validator splits it at this
# "@" and returns the local part unchanged; only the domain needs the library.
_FAST_EMAIL = re.compile(rf"([{ATEXT}]+(?:\.[{ATEXT}]+)*)@([A-Za-z0-9.\-]+)")
_PROBE_LOCAL_PART = "a"


def normalise_email(raw: str) -> str:
    """The canonical spelling of an email address, or InvalidIdentity with the reason."""
    text = raw.strip()
    match = _FAST_EMAIL.fullmatch(text)
    # The local part is only limited in email-validator's strict mode; keeping long
    # ones on the slow path stays exact whichever mode is configured.
    if match is not None and len(match[1]) <= LOCAL_PART_MAX_LENGTH:
        local = match[1]
        domain = _email_domain(match[2].lower())
        # The library checks the length of the address as given, as normalised and
        # with the IDNA ASCII domain; the longest of the three domain spellings decides.
        if domain is not None and len(local) + 1 + domain[1] <= EMAIL_MAX_LENGTH:
            return (local + "@" + domain[0]).lower()
    return _normalise_email_slow(text)


@functools.lru_cache(maxsize=65_536)
def _email_domain(domain: str) -> tuple[str, int] | None:
    """The library's spelling of an ASCII domain and its longest length, or None if refused.

    The domain's validity and spelling do not depend on the local part, and ASCII
    upper case is folded by the library's UTS-46 mapping, so one call per distinct
    lower-cased domain serves every address at it. A refusal (None) sends the whole
    address to the slow path, for the library's own reason.
    """
    try:
        result = validate_email(f"{_PROBE_LOCAL_PART}@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    # (validate_email reads email-validator's module-level defaults, which we leave
    # alone; a cached domain would not see a later change to them.)
    longest = max(len(domain), len(result.domain.encode("utf-8")), len(result.ascii_domain))
    return result.domain, longest


def _normalise_email_slow(raw: str) -> str:
    """The reference: email-validator on every address."""
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


# --- phone ------------------------------------------------------------------------

# Separators phonenumbers ignores between digits (all in its VALID_PUNCTUATION; none
# starts an extension or a second number), deleted before matching the shapes
# Norwegians write: +47, 0047 or nothing before the national number. Latin-1 so
# that the no-break space survives; anything beyond it is left to the library.
_PHONE_SEPARATORS = b" \xa0-.()/"
_NO_LENGTH = 8  # Norway: the fast path takes 8-digit national numbers only
_MAX_PHONE_INPUT = 250  # phonenumbers refuses longer strings before parsing them

# _number_type_helper's order: the first matching type wins, fixed line and mobile last.
# (PhoneMetadata's attribute names; the PhoneNumberType of each is its upper-case name.)
_TYPE_ORDER = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


@dataclass(frozen=True, slots=True)
class _FastPhoneRegion:
    numbers: re.Pattern[bytes]  # valid numbers only; the matching group names the type
    types: dict[str, str]  # group name -> number type name
    prefix: str  # "+47"
    length: int


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> Phone:
    """E.164 and number type of a phone number, or InvalidIdentity with the reason."""
    fast = _fast_phone_regions().get(region)
    if fast is not None:
        text = raw.strip()
        if len(text) <= _MAX_PHONE_INPUT:
            try:
                compact = text.encode("latin-1").translate(None, _PHONE_SEPARATORS)
            except UnicodeEncodeError:
                compact = b""
            match = fast.numbers.match(compact)
            if match is not None and match.lastgroup is not None:
                national = compact[-fast.length :].decode("ascii")
                return Phone(fast.prefix + national, fast.types[match.lastgroup])
    return _normalise_phone_slow(raw, region)


def _normalise_phone_slow(raw: str, region: str = DEFAULT_REGION) -> Phone:
    """The reference: phonenumbers parse, validation and type on every number."""
    phonenumbers = _phonenumbers()
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
    kind = _phone_type_names().get(phonenumbers.number_type(number), "unknown")
    return Phone(e164=e164, number_type=kind)


class _Unsupported(Exception):
    """The region's data do not fit the fast path; its numbers take the slow path."""


def _desc_pattern(desc: PhoneNumberDesc | None, length: int) -> str | None:
    # _is_number_matching_desc: a missing desc, another length or no pattern never match.
    if desc is None or (desc.possible_length and length not in desc.possible_length):
        return None
    pattern = desc.national_number_pattern
    if pattern and re.compile(pattern).groups:
        raise _Unsupported("capturing group")  # lastgroup must only see our named groups
    return pattern or None


def _types_regex(metadata: PhoneMetadata, length: int, types: dict[str, str]) -> str:
    """_number_type_helper as one regex over national numbers of `length` digits.

    Alternatives are tried in order, so the first type whose pattern matches the
    whole number wins, as in the helper; the general pattern guards them all. Each
    alternative is a named group whose type `types` records; UNKNOWN does not match.
    """
    number_type = _phonenumbers().PhoneNumberType
    general = _desc_pattern(metadata.general_desc, length)
    same = metadata.same_mobile_and_fixed_line_pattern
    mobile = _desc_pattern(metadata.mobile, length)
    alternatives: list[str] = []

    def add(kind: int, pattern: str) -> None:
        name = f"t{len(types)}"
        types[name] = _phone_type_names()[kind]
        alternatives.append(rf"(?P<{name}>{pattern}\Z)")

    for name in _TYPE_ORDER:
        kind = getattr(number_type, name.upper())
        pattern = _desc_pattern(getattr(metadata, name), length)
        if pattern is None or (name == "mobile" and same):
            continue
        if name == "fixed_line" and (same or mobile is not None):
            mobile_too = "" if same else rf"(?=(?:{mobile})\Z)"
            add(number_type.FIXED_LINE_OR_MOBILE, rf"{mobile_too}(?:{pattern})")
            if same:
                continue
        add(kind, f"(?:{pattern})")
    if general is None or not alternatives:
        return "(?!)"
    return rf"(?=(?:{general})\Z)(?:{'|'.join(alternatives)})"


def _fast_phone_region(region: str, length: int) -> _FastPhoneRegion | None:
    """The fast path for `length`-digit national numbers of `region`, or None.

    None when the region's data break an assumption (then every number takes the
    slow path). The assumptions make parse() of "+CC", "00CC" or nothing before the
    national number give exactly (CC, those digits): "00" is the international
    prefix, there is no national prefix to strip, `length` is a possible length (so
    a bare number starting with CC is not re-read with CC split off) and no shorter
    prefix of CC is a country code. A first digit 0 is left to the library ("00"
    would be an international prefix). Validity and type then follow
    is_valid_number and number_type: region_code_for_number picks, among the
    regions sharing CC, the first whose leading digits match (or, without leading
    digits, whose types match), and that region's types decide.
    """
    try:
        return _build_fast_phone_region(region, length)
    except (_Unsupported, re.error, UnicodeError):
        return None


def _build_fast_phone_region(region: str, length: int) -> _FastPhoneRegion:
    phonenumbers = _phonenumbers()
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None or metadata.general_desc is None:
        raise _Unsupported(region)
    code = str(metadata.country_code)
    known = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    if (
        metadata.international_prefix != "00"
        or metadata.national_prefix_for_parsing
        or length not in metadata.general_desc.possible_length
        or any(int(code[:i]) in known for i in range(1, len(code)))
    ):
        raise _Unsupported(region)
    owners = [
        phonenumbers.PhoneMetadata.metadata_for_region(owner) for owner in known.get(int(code), ())
    ]
    types: dict[str, str] = {}
    choice = "(?!)"  # no owning region: invalid
    for owner in reversed(owners):
        if owner is None or owner.country_code != metadata.country_code:
            raise _Unsupported(region)
        body = _types_regex(owner, length, types)
        leading = owner.leading_digits
        if len(owners) == 1:
            choice = body
        elif leading is None:
            choice = f"(?:{body}|{choice})"
        elif re.compile(leading).groups:
            raise _Unsupported("capturing group")
        else:
            choice = f"(?:(?=(?:{leading}))(?:{body})|(?!(?:{leading}))(?:{choice}))"
    shape = rf"(?:\+{code}|00{code})?(?=[1-9][0-9]{{{length - 1}}}\Z)"
    numbers = re.compile((shape + choice).encode("ascii"))
    return _FastPhoneRegion(numbers=numbers, types=types, prefix="+" + code, length=length)


@functools.cache
def _fast_phone_regions() -> dict[str, _FastPhoneRegion]:
    """The regions with a fast path, built at the first phone number."""
    return {
        region: fast
        for region, fast in (("NO", _fast_phone_region("NO", _NO_LENGTH)),)
        if fast is not None
    }


# --- identities and batches -------------------------------------------------------


def normalise_emails(raws: Iterable[str]) -> Iterator[str | InvalidIdentity]:
    """normalise_email over many addresses; a refused one is yielded as its error."""
    for raw in raws:
        try:
            yield normalise_email(raw)
        except InvalidIdentity as exc:
            yield exc


def normalise_phones(
    raws: Iterable[str], region: str = DEFAULT_REGION
) -> Iterator[Phone | InvalidIdentity]:
    """normalise_phone over many numbers; a refused one is yielded as its error."""
    for raw in raws:
        try:
            yield normalise_phone(raw, region)
        except InvalidIdentity as exc:
            yield exc


def email_identity(raw: str) -> Identity:
    return Identity("email", normalise_email(raw))


def phone_identity(raw: str, region: str = DEFAULT_REGION) -> Identity:
    return Identity("phone", normalise_phone(raw, region).e164)


def identity(kind: IdentityKind, raw: str) -> Identity:
    return email_identity(raw) if kind == "email" else phone_identity(raw)
