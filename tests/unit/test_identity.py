"""Identities: the fast path gives exactly what email-validator and phonenumbers give.

The reference functions `_normalise_email_slow` and `_normalise_phone_slow` call the
libraries on every input; the public functions must agree with them on every input,
refusals and their reasons included. Synthetic data only: example domains, names
from Faker, made-up numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
from faker import Faker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suppression.errors import InvalidIdentity
from suppression.identity import (
    Phone,
    _email_domain,
    _fast_phone_regions,
    _normalise_email_slow,
    _normalise_phone_slow,
    normalise_email,
    normalise_emails,
    normalise_phone,
    normalise_phones,
)

T = TypeVar("T")
Outcome = tuple[str, object]

# No example database on disk: unit tests do no I/O.
property_test = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_faker = Faker("no_NO")  # Faker's Norwegian (bokmål) locale; it has no "nb_NO"
_faker.seed_instance(47)
FIRST_NAMES = sorted({_faker.first_name() for _ in range(500)})
LAST_NAMES = sorted({_faker.last_name() for _ in range(500)})

DOMAINS = [
    "example.com",
    "example.no",
    "Example.COM",
    "mail.example.no",
    "online.no",
    "uio.example.no",
    "ntnu.example.no",
    "student.uib.example.no",
    "xn--bler-gra.example.no",  # bøler.example.no in IDNA ASCII
    "bøler.example.no",
    "ÆRLIG.example.no",
    "example",  # single label
    "localhost",
    "printer.local",
    "mail.example.test",
    "example.invalid",
    "1.2.3.4",
    "[192.0.2.1]",
    "[IPv6:2001:db8::1]",
    "-bad.example.no",
    "bad-.example.no",
    "ab--cd.example.no",
    "a..b.example.no",
    "example.no.",
    ".example.no",
    "x" * 63 + ".example.no",
    "x" * 64 + ".example.no",
    ".".join(["abcdefghi"] * 25) + ".no",  # 253 characters
    "exa_mple.no",
    "example.123",
    "",
]

local_parts = st.one_of(
    st.builds(
        lambda first, last, sep, case: case(f"{first}{sep}{last}"),
        st.sampled_from(FIRST_NAMES),
        st.sampled_from(LAST_NAMES),
        st.sampled_from([".", "_", "-", "", "..", "+news", " "]),
        st.sampled_from([str, str.lower, str.upper, str.title]),
    ),
    st.builds(
        lambda name, tag: f"{name}+{tag}",
        st.sampled_from(FIRST_NAMES),
        st.text(alphabet="abcxyz0123-_.", min_size=0, max_size=8),
    ),
    st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,70}", fullmatch=True),
    st.sampled_from(
        [
            '"ola nordmann"',
            '"ola"',
            '"a\\"b"',
            "ola(comment)",
            "Info",
            "POSTMASTER",
            "ærlig",
            "o\u0308la",  # decomposed ö: NFC changes it
            "ola\u200b",
            "x" * 64,
            "x" * 65,
            "",
        ]
    ),
    st.text(min_size=0, max_size=12),
)

emails = st.one_of(
    st.builds(
        lambda pad1, local, at, domain, pad2: f"{pad1}{local}{at}{domain}{pad2}",
        st.sampled_from(["", " ", "\t", "\u00a0", "\n"]),
        local_parts,
        st.sampled_from(["@", "@", "@", "@@", "＠", " @"]),
        st.one_of(
            st.sampled_from(DOMAINS),
            st.from_regex(r"[A-Za-z0-9-]{1,20}(\.[A-Za-z0-9-]{1,20}){0,3}", fullmatch=True),
            st.text(min_size=0, max_size=20),
        ),
        st.sampled_from(["", " ", "\r\n", ">", "\u00a0"]),
    ),
    st.builds(lambda local: f"Ola Nordmann <{local}@example.no>", local_parts),
    st.text(),
)

VALID_NO_NUMBERS = ["41234567", "98765432", "22222222", "79123456", "80012345", "45300000"]

national_numbers = st.one_of(
    st.sampled_from(VALID_NO_NUMBERS),
    st.builds(
        lambda first, rest: first + rest,
        st.sampled_from("49"),
        st.from_regex(r"[0-9]{7}", fullmatch=True),
    ),
    st.from_regex(r"[0-9]{8}", fullmatch=True),
    st.from_regex(r"[0-9]{0,14}", fullmatch=True),
)
SEPARATORS = [
    " ",
    "",
    "",
    "-",
    ".",
    "(",
    ")",
    "/",
    "\u00a0",
    "  ",
    "\t",
    "x",
    "#",
    ";",
    " ext ",
    "٣",
    "a",
]


@st.composite
def phone_spellings(draw: st.DrawFn) -> str:
    prefix = draw(
        st.sampled_from(
            ["", "", "+47", "0047", "+46", "0046", "+1", "47", "+", "00", "+470", "004", "＋47"]
        )
    )
    digits = draw(national_numbers)
    text = prefix
    for digit in digits:
        if draw(st.integers(0, 3)) == 0:
            text += draw(st.sampled_from(SEPARATORS))
        text += digit
    if draw(st.booleans()):
        text = (
            draw(st.sampled_from(["(", " ", "tel:", "Tlf: "]))
            + text
            + draw(st.sampled_from([")", " ", ".", ""]))
        )
    return text


phones = st.one_of(
    phone_spellings(), st.text(alphabet="0123456789 +-()./\u00a0", max_size=30), st.text()
)


def _outcome(normalise: Callable[[str], T], raw: str) -> Outcome:
    try:
        return ("accepted", normalise(raw))
    except InvalidIdentity as exc:
        return ("refused", (exc.field, exc.reason))


def _contains_value(raw: str) -> bool:
    return len(raw) > 5 and ("@" in raw or any(ch.isdigit() for ch in raw))


# --- the fast path is the library path ---------------------------------------------


@property_test
@given(emails)
def test_email_fast_path_gives_what_email_validator_gives(raw: str) -> None:
    assert _outcome(normalise_email, raw) == _outcome(_normalise_email_slow, raw)


@property_test
@given(phones)
def test_phone_fast_path_gives_what_phonenumbers_gives(raw: str) -> None:
    assert _outcome(normalise_phone, raw) == _outcome(_normalise_phone_slow, raw)


@property_test
@given(phones, st.sampled_from(["NO", "SE", "GB", "US", "no", "XX"]))
def test_phone_fast_path_agrees_in_every_default_region(raw: str, region: str) -> None:
    assert _outcome(lambda text: normalise_phone(text, region), raw) == _outcome(
        lambda text: _normalise_phone_slow(text, region), raw
    )


@pytest.mark.parametrize(
    "raw",
    [
        "x" * 64 + "@example.no",
        "x" * 65 + "@example.no",  # the library limits local parts only in strict mode
        "x" * 180 + "@" + "y" * 63 + ".example.no",  # 254 characters
        "x" * 181 + "@" + "y" * 63 + ".example.no",  # 255 characters
        "ola@xn--bler-gra.example.no",
        "ola@XN--BLER-GRA.EXAMPLE.NO",
        "ola@" + ".".join(["abcdefghi"] * 25) + ".no",
        "Info@Example.no",
        "ola@example.test",
        "ola@localhost",
        "ola@printer.local",
        "ola@example",
        "ola@[192.0.2.1]",
    ],
)
def test_email_edge_cases_agree_with_email_validator(raw: str) -> None:
    assert _outcome(normalise_email, raw) == _outcome(_normalise_email_slow, raw)


@pytest.mark.parametrize(
    "raw",
    [
        "00412345",  # 00 is the international prefix: +41 2345
        "0041234567",
        "01234567",
        "+47 01234567",
        "0047 0047 41234567",
        "47 41234567",
        "4741234567",
        "+4779123456",  # Svalbard shares +47
        "79123456",
        "12345678",
        "(+47) 412-34-567",
        "+47/412.34.567",
        "412 34 567 x12",
        "412 34 567 / x 5",
        " " * 250 + "41234567",
        "4" + " " * 250 + "1234567",
    ],
)
def test_phone_edge_cases_agree_with_phonenumbers(raw: str) -> None:
    assert _outcome(normalise_phone, raw) == _outcome(_normalise_phone_slow, raw)


@settings(max_examples=2000, deadline=None, database=None)
@given(st.from_regex(r"[1-9][0-9]{7}", fullmatch=True))
def test_every_norwegian_national_number_gets_the_library_type(national: str) -> None:
    for spelling in (national, "+47" + national):
        assert _outcome(normalise_phone, spelling) == _outcome(_normalise_phone_slow, spelling)


def test_common_spellings_take_the_fast_path() -> None:
    # Guards the speed: if the library's data stopped fitting, everything above would
    # still pass, on the slow path.
    _email_domain.cache_clear()
    normalise_email("Ola.Nordmann@Example.no")
    normalise_email("kari@example.NO")
    assert (_email_domain.cache_info().misses, _email_domain.cache_info().hits) == (1, 1)
    assert _fast_phone_regions()["NO"].numbers.match(b"+4741234567") is not None


# --- idempotence and equivalent spellings --------------------------------------------


@property_test
@given(emails)
def test_normalising_an_email_twice_changes_nothing(raw: str) -> None:
    try:
        once = normalise_email(raw)
    except InvalidIdentity:
        return
    assert normalise_email(once) == once


@property_test
@given(phones)
def test_normalising_a_phone_twice_changes_nothing(raw: str) -> None:
    try:
        once = normalise_phone(raw)
    except InvalidIdentity:
        return
    assert normalise_phone(once.e164) == once


def test_equivalent_email_spellings_give_the_same_identity() -> None:
    spellings = [
        "Ola.Nordmann@Example.COM",
        "ola.nordmann@example.com",
        " OLA.NORDMANN@example.com\n",
    ]
    assert {normalise_email(raw) for raw in spellings} == {"ola.nordmann@example.com"}


def test_equivalent_phone_spellings_give_the_same_identity() -> None:
    spellings = ["+47 412 34 567", "0047 41234567", "412 34 567", "41234567", "(+47) 412-34-567"]
    assert {normalise_phone(raw) for raw in spellings} == {Phone("+4741234567", "mobile")}


@property_test
@given(
    st.builds(
        lambda first, rest: first + rest,
        st.sampled_from("49"),
        st.from_regex(r"[0-9]{7}", fullmatch=True),
    )
)
def test_the_four_common_phone_spellings_collide(national: str) -> None:
    spellings = [
        f"+47 {national[:3]} {national[3:5]} {national[5:]}",
        f"0047 {national}",
        f"{national[:3]} {national[3:5]} {national[5:]}",
        national,
    ]
    outcomes = {_outcome(normalise_phone, raw) for raw in spellings}
    assert len(outcomes) == 1


# --- garbage ----------------------------------------------------------------------------

garbage = st.one_of(st.text(), st.binary().map(lambda data: data.decode("utf-8", errors="replace")))


@property_test
@given(garbage)
def test_garbage_email_is_refused_without_repeating_it(raw: str) -> None:
    try:
        normalise_email(raw)
    except InvalidIdentity as exc:
        if _contains_value(raw):
            assert raw not in str(exc) and raw.strip() not in str(exc)


@property_test
@given(garbage)
def test_garbage_phone_is_refused_without_repeating_it(raw: str) -> None:
    try:
        normalise_phone(raw)
    except InvalidIdentity as exc:
        if _contains_value(raw):
            assert raw not in str(exc) and raw.strip() not in str(exc)


def test_refusals_never_repeat_the_address() -> None:
    for raw in ["ola nordmann@example.no", "ola@@example.no", "ola@exa mple.no", "ola12345@"]:
        with pytest.raises(InvalidIdentity) as caught:
            normalise_email(raw)
        assert raw not in str(caught.value)
        assert "ola" not in str(caught.value)


# --- batches ------------------------------------------------------------------------------


def test_batches_yield_refusals_as_values_in_order() -> None:
    emails_out = list(normalise_emails(["Ola@Example.no", "not an address", "kari@example.com"]))
    assert emails_out[0] == "ola@example.no"
    assert isinstance(emails_out[1], InvalidIdentity)
    assert emails_out[2] == "kari@example.com"
    phones_out = list(normalise_phones(["412 34 567", "123"]))
    assert phones_out[0] == Phone("+4741234567", "mobile")
    assert isinstance(phones_out[1], InvalidIdentity)
