"""The CRM export: customers with the ES-2 facts, and alarm contacts (ALL-3)."""

from __future__ import annotations

from datetime import date

import pytest

from campaigns.sources.crm import (
    DUPLICATE_CUSTOMER_ID,
    NO_PHONE_OR_EMAIL,
    UNKNOWN_STATUS,
    AlarmContactReader,
    CustomerReader,
)
from suppression.errors import FileRefused, RowError
from suppression.keys import Hasher

HASHER = Hasher(b"unit-test-secret-0123456789abcdef")
HEADER = [
    "kundenummer",
    "fornavn",
    "etternavn",
    "e-post",
    "mobil",
    "adresse",
    "postnummer",
    "poststed",
    "kontraktstatus",
    "kontrakt_slutt",
    "produktkategorier",
    "e-post_kilde",
    "reservasjon_tilbudt",
]
ROW = [
    "K-1001",
    "Kari",
    "Sæther",
    "kari@example.no",
    "912 34 567",
    "Løkkeveien 3",
    "0253",
    "Oslo",
    "aktiv",
    "31.12.2027",
    "Alarm; Smarthus",
    "salg",
    "ja",
]


def test_a_customer_row_carries_the_soft_opt_in_facts_es2() -> None:
    errors: list[RowError] = []
    customer = CustomerReader("crm.csv", HEADER, HASHER.digest).read(2, ROW, errors)
    assert errors == []
    assert customer is not None
    assert customer.customer_id == "K-1001"
    assert (customer.contract_status, customer.contract_end) == ("active", date(2027, 12, 31))
    assert customer.product_categories == "alarm,smarthus"
    assert (customer.email_source, customer.email_from_sale, customer.opt_out_offered) == (
        "salg",
        True,
        True,
    )
    assert customer.phone == "+4791234567"
    assert customer.email_hash == HASHER.digest("email", "kari@example.no")


def test_english_headers_are_read_too() -> None:
    header = [
        "customer_id",
        "email",
        "contract_status",
        "email_source",
        "opt_out_offered",
    ]
    errors: list[RowError] = []
    customer = CustomerReader("crm.csv", header, HASHER.digest).read(
        2, ["7", "ola@example.com", "ended", "web", "no"], errors
    )
    assert errors == []
    assert customer is not None
    assert (customer.contract_status, customer.email_from_sale, customer.opt_out_offered) == (
        "ended",
        False,
        False,
    )


def test_an_unknown_contract_status_and_a_repeated_customer_id_are_refused() -> None:
    reader = CustomerReader("crm.csv", HEADER, HASHER.digest)
    errors: list[RowError] = []
    assert reader.read(2, ROW, errors) is not None
    assert reader.read(3, ROW, errors) is None
    bad = list(ROW)
    bad[0], bad[8] = "K-2", "kanskje"
    assert reader.read(4, bad, errors) is None
    assert errors == [
        RowError(3, "kundenummer", DUPLICATE_CUSTOMER_ID),
        RowError(4, "kontraktstatus", UNKNOWN_STATUS),
    ]


def test_an_export_without_the_es2_columns_is_refused_naming_them() -> None:
    with pytest.raises(FileRefused, match="email_source, opt_out_offered"):
        CustomerReader("crm.csv", HEADER[:-2], HASHER.digest)


def test_an_alarm_contact_yields_one_hash_per_identity_and_no_plaintext() -> None:
    reader = AlarmContactReader(
        "alarm.csv", ["kundenummer", "navn", "telefon", "e-post"], HASHER.digest
    )
    errors: list[RowError] = []
    found = reader.read(2, ["K-1001", "Nabo Nilsen", "+47 412 34 567", "nabo@example.no"], errors)
    assert errors == []
    assert [(a.identity_kind, a.digest) for a in found] == [
        ("phone", HASHER.digest("phone", "+4741234567")),
        ("email", HASHER.digest("email", "nabo@example.no")),
    ]
    assert all("Nilsen" not in repr(a) and "+47" not in repr(a) for a in found)


def test_an_alarm_contact_with_one_bad_identity_still_excludes_the_good_one_all3() -> None:
    reader = AlarmContactReader(
        "alarm.csv", ["kundenummer", "navn", "telefon", "e-post"], HASHER.digest
    )
    errors: list[RowError] = []
    found = reader.read(2, ["K-1", "Nabo", "123", "nabo@example.no"], errors)
    assert [a.identity_kind for a in found] == ["email"]
    assert errors == [RowError(2, "telefon", "invalid_phone")]


def test_an_alarm_contact_without_phone_or_email_is_refused() -> None:
    reader = AlarmContactReader("alarm.csv", ["kundenummer", "navn", "telefon"], HASHER.digest)
    errors: list[RowError] = []
    assert reader.read(2, ["K-1", "Nabo", ""], errors) == []
    assert errors == [RowError(2, "telefon", NO_PHONE_OR_EMAIL)]
