"""Partner rows: Norwegian headers, every phone spelling, consent evidence (ES-1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.hashing import current_digest
from campaigns.sources.leadreader import LeadReader
from campaigns.sources.partner import (
    COMPANY_NOT_US,
    CONSENT_NOT_GIVEN,
    DATE_IN_FUTURE,
    INVALID_CHARACTER,
    INVALID_EMAIL,
    INVALID_PHONE,
    NO_ADDRESS_FOR_CHANNEL,
    NO_EMAIL_OR_PHONE,
    REQUIRED,
    UNKNOWN_CHANNEL,
    WRONG_FIELD_COUNT,
    Lead,
    LeadFormat,
    header_key,
    parse_channels,
)
from suppression.errors import FileRefused, RowError
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from suppression.register import name_address_key
from tests.clock import NOW, TODAY, at
from tests.conftest import ORG_NAME, ORG_NUMBER

# A consent the partner dates tomorrow, at noon: after the reader's `now` (tests.clock.NOW).
TOMORROW = at(TODAY + timedelta(days=1), 12).strftime("%d.%m.%Y %H:%M")
HEADER = [
    "Fornavn",
    "Etternavn",
    "Mobil",
    "E-post",
    "Adresse",
    "Postnummer",
    "Poststed",
    "Samtykke_tidspunkt",
    "Kanaler",
    "Tekstversjon",
    "Skjema/URL",
    "Selskap",
]
GOOD = [
    "Åse",
    "Ødegård",
    "+47 412 34 567",
    "Ase.Odegard@Example.no",
    "Storgata 1",
    "0155",
    "Oslo",
    "12.03.2025 14:33",
    "e-post, sms",
    "v3",
    "https://example.no/skjema",
    ORG_NAME,
]


@pytest.fixture
def hasher() -> Hasher:
    return Hasher(b"unit-test-secret-0123456789abcdef")


def reader(
    hasher: Hasher, header: list[str] | None = None, fmt: LeadFormat | None = None
) -> LeadReader:
    policy = PolicyConfig(organisation_name=ORG_NAME, organisation_number=ORG_NUMBER)
    return LeadReader("leads.csv", header or HEADER, fmt or LeadFormat(), hasher, policy, NOW)


def read(r: LeadReader, cells: list[str]) -> tuple[Lead | None, list[RowError]]:
    errors: list[RowError] = []
    return r.read(2, cells, errors), errors


def with_cell(header: str, value: str) -> list[str]:
    cells = list(GOOD)
    cells[HEADER.index(header)] = value
    return cells


def test_a_row_with_norwegian_headers_is_read_into_canonical_values(hasher: Hasher) -> None:
    lead, errors = read(reader(hasher), GOOD)
    assert errors == []
    assert lead is not None
    assert (lead.first_name, lead.last_name, lead.city) == ("Åse", "Ødegård", "Oslo")
    assert lead.email == "ase.odegard@example.no"
    assert (lead.phone, lead.phone_type) == ("+4741234567", "mobile")
    assert lead.channels == "email,sms"
    assert lead.given_at == datetime(2025, 3, 12, 13, 33, tzinfo=UTC)  # Oslo winter time, +01:00
    assert lead.company_named == ORG_NAME


def test_hashes_are_the_hashers_so_the_ledger_and_register_match(hasher: Hasher) -> None:
    lead, _ = read(reader(hasher), GOOD)
    assert lead is not None
    assert lead.email_hash == hasher.digest("email", "ase.odegard@example.no")
    assert lead.phone_hash == hasher.digest("phone", "+4741234567")
    key = name_address_key("Åse Ødegård", "Storgata 1", "0155")
    assert lead.name_address_hash == hasher.digest("name_address", key)


def test_the_fast_digest_is_the_hashers_digest(hasher: Hasher) -> None:
    digest = current_digest(hasher)
    for kind, value in (("email", "ola@example.no"), ("phone", "+4790000000"), ("x", "æøå")):
        assert digest(kind, value) == hasher.digest(kind, value)
    long_key = Hasher(b"k" * 100)
    assert current_digest(long_key)("email", "a@example.no") == long_key.digest(
        "email", "a@example.no"
    )


@pytest.mark.parametrize(
    "spelling",
    [
        "+47 412 34 567",
        "0047 41234567",
        "412 34 567",
        "41234567",
        "+4741234567",
        "41 23 45 67",
        "412-34-567",
    ],
)
def test_phone_numbers_in_every_common_spelling_become_e164(hasher: Hasher, spelling: str) -> None:
    lead, errors = read(reader(hasher), with_cell("Mobil", spelling))
    assert errors == []
    assert lead is not None and lead.phone == "+4741234567"


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("12.03.2025 14:33", datetime(2025, 3, 12, 13, 33, tzinfo=UTC)),
        ("1.7.2024 9:05", datetime(2024, 7, 1, 7, 5, tzinfo=UTC)),  # summer: +02:00
        ("12.03.2025 14.33", datetime(2025, 3, 12, 13, 33, tzinfo=UTC)),
        ("12.03.2025", datetime(2025, 3, 11, 23, 0, tzinfo=UTC)),
        ("2025-03-12T14:33:00", datetime(2025, 3, 12, 13, 33, tzinfo=UTC)),
        ("2025-03-12 14:33", datetime(2025, 3, 12, 13, 33, tzinfo=UTC)),
        ("2025-03-12T14:33:00Z", datetime(2025, 3, 12, 14, 33, tzinfo=UTC)),
        ("2025-03-12T14:33:00+01:00", datetime(2025, 3, 12, 13, 33, tzinfo=UTC)),
    ],
)
def test_consent_times_in_iso_or_norwegian_form_are_read_naive_as_europe_oslo(
    hasher: Hasher, written: str, utc: datetime
) -> None:
    lead, errors = read(reader(hasher), with_cell("Samtykke_tidspunkt", written))
    assert errors == []
    assert lead is not None and lead.given_at == utc


def test_a_partners_own_date_format_is_tried_first(hasher: Hasher) -> None:
    r = reader(hasher, fmt=LeadFormat(date_formats=("%d/%m/%Y %H:%M",)))
    lead, errors = read(r, with_cell("Samtykke_tidspunkt", "12/03/2025 14:33"))
    assert errors == []
    assert lead is not None and lead.given_at == datetime(2025, 3, 12, 13, 33, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Samtykke_tidspunkt", "", REQUIRED),
        ("Samtykke_tidspunkt", "31.02.2025 10:00", "invalid_date"),
        ("Samtykke_tidspunkt", "i går", "invalid_date"),
        ("Samtykke_tidspunkt", TOMORROW, DATE_IN_FUTURE),
        ("Kanaler", "", REQUIRED),
        ("Kanaler", "e-post, fax", UNKNOWN_CHANNEL),
        ("Tekstversjon", "", REQUIRED),
        ("Skjema/URL", " ", REQUIRED),
        ("Selskap", "", REQUIRED),
        ("Selskap", "Annet Alarmselskap AS", COMPANY_NOT_US),
    ],
)
def test_a_row_without_valid_consent_evidence_is_refused_es1(
    hasher: Hasher, header: str, value: str, reason: str
) -> None:
    lead, errors = read(reader(hasher), with_cell(header, value))
    assert lead is None
    assert errors == [RowError(2, header, reason)]


@pytest.mark.parametrize(
    "named", [ORG_NAME, "trygg hjem alarm", "TRYGG HJEM ALARM AS", "999 999 999"]
)
def test_a_consent_naming_us_by_name_or_number_is_accepted_es1(hasher: Hasher, named: str) -> None:
    lead, errors = read(reader(hasher), with_cell("Selskap", named))
    assert errors == [] and lead is not None


def test_a_row_whose_consented_channels_have_no_address_is_refused_es1(hasher: Hasher) -> None:
    cells = with_cell("Kanaler", "sms")
    cells[HEADER.index("Mobil")] = ""
    lead, errors = read(reader(hasher), cells)
    assert lead is None
    assert errors == [RowError(2, "Kanaler", NO_ADDRESS_FOR_CHANNEL)]


def test_a_row_with_neither_email_nor_phone_is_refused(hasher: Hasher) -> None:
    cells = list(GOOD)
    cells[HEADER.index("Mobil")] = cells[HEADER.index("E-post")] = ""
    lead, errors = read(reader(hasher), cells)
    assert lead is None
    assert RowError(2, "E-post", NO_EMAIL_OR_PHONE) in errors


def test_every_error_of_a_row_is_reported_under_the_partners_own_header(hasher: Hasher) -> None:
    cells = list(GOOD)
    cells[HEADER.index("Mobil")] = "123"
    cells[HEADER.index("E-post")] = "ola at example.no"
    cells[HEADER.index("Selskap")] = "Noen Andre AS"
    lead, errors = read(reader(hasher), cells)
    assert lead is None
    assert errors == [
        RowError(2, "E-post", INVALID_EMAIL),
        RowError(2, "Mobil", INVALID_PHONE),
        RowError(2, "Selskap", COMPANY_NOT_US),
    ]


def test_reasons_never_repeat_the_value_refused(hasher: Hasher) -> None:
    cells = with_cell("E-post", "ola.nordmann@@example.no")
    _, errors = read(reader(hasher), cells)
    assert errors and all("ola" not in e.reason and "@" not in e.reason for e in errors)


def test_a_consent_column_saying_no_refuses_the_row(hasher: Hasher) -> None:
    r = reader(hasher, [*HEADER, "Samtykke"])
    assert read(r, [*GOOD, "Ja"])[1] == []
    assert read(r, [*GOOD, "nei"])[1] == [RowError(2, "Samtykke", CONSENT_NOT_GIVEN)]


def test_a_row_with_too_few_fields_is_refused_but_trailing_empty_extras_are_not(
    hasher: Hasher,
) -> None:
    r = reader(hasher)
    assert read(r, GOOD[:-1])[1] == [RowError(2, "row", WRONG_FIELD_COUNT)]
    assert read(r, [*GOOD, "extra"])[1] == [RowError(2, "row", WRONG_FIELD_COUNT)]
    assert read(r, [*GOOD, "", " "])[1] == []


def test_a_nul_character_refuses_the_row_naming_its_column(hasher: Hasher) -> None:
    _, errors = read(reader(hasher), with_cell("Poststed", "Os\x00lo"))
    assert errors == [RowError(2, "Poststed", INVALID_CHARACTER)]


def test_a_postal_code_that_lost_its_leading_zero_in_a_spreadsheet_gets_it_back(
    hasher: Hasher,
) -> None:
    lead, _ = read(reader(hasher), with_cell("Postnummer", "155"))
    assert lead is not None and lead.postal_code == "0155"
    assert read(reader(hasher), with_cell("Postnummer", "15"))[1] == [
        RowError(2, "Postnummer", "invalid_postal_code")
    ]


def test_a_full_name_column_is_split_into_first_and_last_name(hasher: Hasher) -> None:
    header = ["Navn", "Mobil", "Samtykke", "Tidspunkt", "Kanaler", "Versjon", "URL", "Firma"]
    r = reader(hasher, header)
    cells = [
        "Kari  Mette Nordmann",
        "41234567",
        "ja",
        "2025-01-01 10:00",
        "sms",
        "v1",
        "f",
        ORG_NAME,
    ]
    lead, errors = read(r, cells)
    assert errors == []
    assert lead is not None and (lead.first_name, lead.last_name) == ("Kari Mette", "Nordmann")


def test_the_partners_column_mapping_overrides_the_known_headers(hasher: Hasher) -> None:
    header = ["tlf_privat", "Dato", "Kanaler", "Tekstversjon", "Skjema", "Selskap"]
    fmt = LeadFormat(columns={"tlf_privat": "phone", "Dato": "consent_at"})
    lead, errors = read(
        reader(hasher, header, fmt), ["41234567", "2025-01-01", "sms", "v1", "f", ORG_NAME]
    )
    assert errors == [] and lead is not None and lead.phone == "+4741234567"


def test_partner_defaults_stand_in_for_evidence_the_file_does_not_carry(hasher: Hasher) -> None:
    header = ["Mobil", "Tidspunkt"]
    fmt = LeadFormat(
        defaults={
            "channels": "sms",
            "wording_version": "v7",
            "captured_at": "form-12",
            "company_named": ORG_NAME,
        }
    )
    lead, errors = read(reader(hasher, header, fmt), ["41234567", "2025-01-01 10:00"])
    assert errors == []
    assert lead is not None and (lead.channels, lead.wording_version) == ("sms", "v7")


def test_a_header_without_email_or_phone_refuses_the_file() -> None:
    with pytest.raises(FileRefused, match="missing_column"):
        reader(Hasher(b"x" * 32), ["Fornavn", "Samtykke_tidspunkt"])


def test_a_header_without_the_consent_evidence_refuses_the_file_naming_what_is_missing() -> None:
    with pytest.raises(FileRefused, match="consent_at, channels, wording_version"):
        reader(Hasher(b"x" * 32), ["Mobil", "Selskap", "Skjema"])


def test_two_columns_for_the_same_field_refuse_the_file() -> None:
    with pytest.raises(FileRefused, match="duplicate_column"):
        reader(Hasher(b"x" * 32), [*HEADER, "Telefon"])


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("e-post", "email"),
        ("SMS og E-post", "email,sms"),
        ("sms;telefon", "sms,call"),
        ("e-post/sms/telefon/post", "email,sms,call,post"),
        ("Email, SMS", "email,sms"),
    ],
)
def test_channel_lists_are_read_in_any_common_spelling(written: str, canonical: str) -> None:
    assert parse_channels(written) == canonical


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("E-post", "epost"),
        ("samtykke_tidspunkt", "samtykketidspunkt"),
        ("\ufeffFornavn ", "fornavn"),
    ],
)
def test_headers_are_matched_without_case_punctuation_or_bom(header: str, key: str) -> None:
    assert header_key(header) == key


def test_whitespace_in_names_and_addresses_is_collapsed_whatever_it_is(hasher: Hasher) -> None:
    # Tabs, no-break and em spaces, doubled spaces: one plain space, as spreadsheets show them.
    cells = with_cell("Fornavn", " Åse\u00a0\tMarie ")
    cells[HEADER.index("Adresse")] = "Storgata\u2003 1"
    lead, errors = read(reader(hasher), cells)
    assert errors == [] and lead is not None
    assert (lead.first_name, lead.street) == ("Åse Marie", "Storgata 1")
    lead, _ = read(reader(hasher), with_cell("Fornavn", "  Åse  "))
    assert lead is not None and lead.first_name == "Åse"


def test_reading_a_row_leaves_the_callers_cells_as_they_were(hasher: Hasher) -> None:
    cells = list(GOOD)
    read(reader(hasher, [*HEADER, "Samtykke"]), [*cells, "ja"])
    read(reader(hasher), cells)
    assert cells == GOOD
