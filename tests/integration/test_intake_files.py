"""Partner files into the store: encodings and shapes, merging by identity, one
transaction per file, duplicates, and ALL-5 (an import never touches the ledger).
Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from campaigns import people
from campaigns.importresult import ALREADY_IMPORTED, IMPORTED, REFUSED, ImportResult
from campaigns.intake import import_lead_file, import_leads
from campaigns.schema import consent_records, contact_sources, contacts, import_errors, imports
from campaigns.sources import csvfile
from campaigns.sources.partner import IDENTITY_CONFLICT, LeadFormat
from suppression.errors import RowError
from suppression.identity import phone_identity
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.policy import PolicyConfig
from suppression.schema import ledger_entries
from tests import clock, partner_files
from tests.partner_files import CONSENT_AT, e164, person

pytestmark = pytest.mark.integration
NOW = clock.NOW  # the import's moment


def run(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    path: Path,
    partner: str = "boligpartner",
    **kwargs: object,
) -> ImportResult:
    return import_lead_file(
        engine, hasher, policy, f"partner:{partner}", LeadFormat(), path, now=NOW, **kwargs
    )  # type: ignore[arg-type]


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_a_windows_1252_semicolon_file_with_a_norwegian_header_imports_names_and_e164_phones(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    """Acceptance: æøå intact, phones in E.164, from a BOM-less Windows-1252 `;` file."""
    rows = [
        person(1, Fornavn="Åse", Etternavn="Ødegård", Mobil="+47 412 34 567"),
        person(2, Fornavn="Bjørn", Etternavn="Æsøy", Mobil="0047 98765432"),
        person(3, Fornavn="Kjærsti", Etternavn="Løvås", Mobil="412 34 568"),
    ]
    path = partner_files.write(tmp_path / "leads.csv", rows, "excel_nb")
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf") and b"\xe6" in path.read_bytes()
    result = run(engine, hasher, policy_config, path)
    assert (result.status, result.accepted, result.refused) == (IMPORTED, 3, 0)
    with engine.connect() as conn:
        got = conn.execute(
            select(contacts.c.first_name, contacts.c.last_name, contacts.c.phone).order_by(
                contacts.c.id
            )
        ).all()
    assert [tuple(r) for r in got] == [
        ("Åse", "Ødegård", "+4741234567"),
        ("Bjørn", "Æsøy", "+4798765432"),
        ("Kjærsti", "Løvås", "+4741234568"),
    ]


@pytest.mark.parametrize("shape", sorted(partner_files.SHAPES))
def test_files_in_every_encoding_and_shape_import_the_same_people(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path, shape: str
) -> None:
    rows = [person(n) for n in range(5)]
    path = partner_files.write(tmp_path / f"{shape}.csv", rows, shape)
    result = run(engine, hasher, policy_config, path)
    assert (result.accepted, result.refused, result.new_contacts) == (5, 0, 5)
    with engine.connect() as conn:
        names = conn.execute(
            select(contacts.c.first_name, contacts.c.last_name, contacts.c.email).order_by(
                contacts.c.id
            )
        ).all()
    assert [tuple(r) for r in names] == [(r["Fornavn"], r["Etternavn"], r["E-post"]) for r in rows]


def test_quoted_fields_with_newlines_are_one_row_and_row_numbers_are_the_spreadsheets(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    rows = [
        person(1, Adresse="Kongens gate 1\nOppgang B"),
        person(2, Selskap="Annet Firma AS"),
        person(3),
    ]
    path = partner_files.write(tmp_path / "leads.csv", rows, "excel_nb")
    result = run(engine, hasher, policy_config, path)
    assert result.errors == [RowError(3, "Selskap", "company_not_us")]
    with engine.connect() as conn:
        street = conn.execute(
            select(contacts.c.street).where(contacts.c.email == "lead1@example.no")
        ).scalar_one()
    assert street == "Kongens gate 1 Oppgang B"


def test_refused_rows_are_stored_with_row_field_and_reason_and_the_rest_is_imported(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    rows = [person(1), person(2, Mobil="123", **{"E-post": ""}), person(3, Kanaler="fax")]
    result = run(engine, hasher, policy_config, partner_files.write(tmp_path / "l.csv", rows))
    assert (result.rows, result.accepted, result.refused) == (3, 1, 2)
    assert result.by_reason == {"invalid_phone": 1, "unknown_channel": 1}
    with engine.connect() as conn:
        stored = conn.execute(
            select(import_errors.c.row, import_errors.c.field, import_errors.c.reason).order_by(
                import_errors.c.row
            )
        ).all()
    assert [tuple(r) for r in stored] == [
        (3, "Mobil", "invalid_phone"),
        (4, "Kanaler", "unknown_channel"),
    ]


def test_the_same_content_delivered_again_under_another_name_imports_once(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    data = partner_files.render([person(1), person(2, Mobil="1")])
    (tmp_path / "a.csv").write_bytes(data)
    (tmp_path / "b.csv").write_bytes(data)
    first = run(engine, hasher, policy_config, tmp_path / "a.csv")
    again = run(engine, hasher, policy_config, tmp_path / "b.csv")
    assert (first.status, again.status) == (IMPORTED, ALREADY_IMPORTED)
    assert again.first_filename == "a.csv"
    assert again.errors == first.errors == [RowError(3, "Mobil", "invalid_phone")]
    assert count(engine, imports) == 1
    assert count(engine, consent_records) == 1


def test_the_same_content_from_another_partner_is_another_import(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "a.csv", [person(1)])
    run(engine, hasher, policy_config, path, "boligpartner")
    second = run(engine, hasher, policy_config, path, "stromselskap")
    assert (second.status, second.merged) == (IMPORTED, 1)
    assert count(engine, imports) == 2


def test_a_lead_from_two_partners_is_one_contact_with_both_sources_and_consents(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    run(engine, hasher, policy_config, partner_files.write(tmp_path / "a.csv", [person(1)]), "a")
    # the second partner has only the phone, spelled another way, and another consent
    other = person(1, Mobil=f"+47 {e164(1)[3:6]} {e164(1)[6:8]} {e164(1)[8:]}", Kanaler="sms")
    other["E-post"] = ""
    result = run(
        engine, hasher, policy_config, partner_files.write(tmp_path / "b.csv", [other]), "b"
    )
    assert (result.accepted, result.merged, result.new_contacts) == (1, 1, 0)
    with engine.connect() as conn:
        found = people.find(conn, hasher, phone_identity(e164(1)))
    assert found.contact is not None and found.contact["email"] == "lead1@example.no"
    assert sorted(s["source"] for s in found.sources) == ["partner:a", "partner:b"]
    assert sorted(c["channels"] for c in found.consents) == ["email,sms", "sms"]
    assert count(engine, contacts) == 1


def test_a_person_twice_in_one_file_is_one_contact_and_counted_as_a_duplicate(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    earlier = (CONSENT_AT - timedelta(weeks=1)).strftime("%d.%m.%Y %H:%M")  # another consent
    rows = [person(1), person(2), person(1, Samtykke_tidspunkt=earlier)]
    result = run(engine, hasher, policy_config, partner_files.write(tmp_path / "a.csv", rows))
    assert (result.accepted, result.new_contacts, result.duplicates, result.merged) == (3, 2, 1, 0)
    assert count(engine, contacts) == 2
    assert count(engine, consent_records) == 3


def test_a_person_again_in_a_later_batch_joins_and_fills_the_contact_an_earlier_batch_wrote(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    """Batches of two rows: on PostgreSQL the first batches are written by the writer
    thread while later ones are read, and a later batch's lookups must see them."""
    # person 1 again at the end, with the phone and another consent (sms only)
    rows = [person(1, Mobil=""), *(person(n) for n in range(2, 8)), person(1, Kanaler="sms")]
    path = partner_files.write(tmp_path / "a.csv", rows)
    with engine.begin() as conn:
        result = import_leads(
            conn, hasher, policy_config, "partner:a", LeadFormat(), path, csvfile.inspect(path),
            filename=path.name, now=NOW, batch_size=2,
        )  # fmt: skip
    assert (result.accepted, result.new_contacts, result.duplicates) == (8, 7, 1)
    assert count(engine, contacts) == 7
    assert count(engine, consent_records) == 8
    with engine.connect() as conn:
        found = people.find(conn, hasher, phone_identity(e164(1)))  # filled by the last row
    assert found.contact is not None and found.contact["email"] == "lead1@example.no"
    assert len(found.consents) == 2


def test_a_row_whose_email_and_phone_belong_to_two_people_is_refused_not_guessed(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    run(
        engine,
        hasher,
        policy_config,
        partner_files.write(tmp_path / "a.csv", [person(1), person(2)]),
    )
    mixed = person(1, Mobil=e164(2))  # person 1's email with person 2's phone
    result = run(engine, hasher, policy_config, partner_files.write(tmp_path / "b.csv", [mixed]))
    assert result.errors == [RowError(2, "E-post", IDENTITY_CONFLICT)]
    assert (result.accepted, result.refused) == (0, 1)
    assert count(engine, consent_records) == 2


def test_an_import_never_writes_the_ledger_nor_lifts_a_suppression_all5(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    ident = phone_identity(e164(1))
    with engine.begin() as conn:
        Ledger(conn, hasher).add(
            hasher.hash(ident), "phone", scope="all", reason="objection", source="test", now=NOW
        )
    before = count(engine, ledger_entries)
    run(engine, hasher, policy_config, partner_files.write(tmp_path / "a.csv", [person(1)]))
    assert count(engine, ledger_entries) == before
    with engine.connect() as conn:
        status = Ledger(conn, hasher).status("phone", ident.value)
    assert status.suppressed("sms") and status.suppressed("email")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_file"),
        (b"\xff\xfe\x00\xd8" + b"\x81" * 10, "not_text"),
        # Windows-1252 (not UTF-8) up to a byte it leaves undefined, past the first MB
        (
            b"Fornavn;Mobil\n" + "Åse;41234567\n".encode("cp1252") * 90_000 + b"\x9d\n",
            "not_text",
        ),
        ("Fornavn;Mobil\nÅse;41234567\n".encode(), "missing_column"),
        (b"Mobil;Mobil;Samtykke_tidspunkt\n", "duplicate_column"),
    ],
)
def test_a_file_refused_whole_stores_nothing_and_says_why(
    engine: Engine,
    hasher: Hasher,
    policy_config: PolicyConfig,
    tmp_path: Path,
    data: bytes,
    reason: str,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    result = run(engine, hasher, policy_config, path)
    assert result.status == REFUSED
    assert len(result.errors) == 1 and result.errors[0].reason.startswith(reason)
    assert (result.errors[0].row, result.errors[0].field) == (0, "file")
    assert count(engine, imports) == 0 and count(engine, contacts) == 0


def test_a_file_that_breaks_after_thousands_of_stored_rows_leaves_nothing(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    """One transaction per file: rows stored in earlier batches go too (the writer
    thread on PostgreSQL included)."""
    good = partner_files.render([person(n) for n in range(25_000)], "sheets")
    broken = good + b'"unterminated' + b"x" * 200_000 + b"\n"
    path = tmp_path / "leads.csv"
    path.write_bytes(broken)
    result = run(engine, hasher, policy_config, path)
    assert result.status == REFUSED
    assert result.errors[0].reason == (
        "malformed_csv: line 25002: a field is longer than 131072 characters"
    )
    for table in (imports, contacts, contact_sources, consent_records, import_errors):
        assert count(engine, table) == 0


def test_a_partner_lead_who_is_a_customer_is_one_contact_with_both_roles(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    from campaigns.customers import import_customer_files

    crm = tmp_path / "crm.csv"
    crm.write_text(
        "customer_id;first_name;last_name;email;phone;contract_status;product_categories;"
        "email_source;opt_out_offered\n"
        "K-1;Åse;Ødegård;LEAD1@example.no;;active;alarm;sale;yes\n",
        encoding="utf-8",
    )
    import_customer_files(engine, hasher, crm, now=NOW)
    result = run(
        engine, hasher, policy_config, partner_files.write(tmp_path / "a.csv", [person(1)])
    )
    assert (result.merged, result.new_contacts) == (1, 0)
    with engine.connect() as conn:
        row = conn.execute(select(contacts)).one()._mapping
        found = people.find(conn, hasher, phone_identity(e164(1)))
    assert row["is_customer"] and row["is_partner_lead"]
    assert row["phone"] == e164(1)  # filled from the lead; the CRM had none
    assert found.customer is not None and found.customer["customer_id"] == "K-1"
    assert sorted(s["source"] for s in found.sources) == ["crm", "partner:boligpartner"]


@pytest.mark.parametrize("batch_size", [1, 20_000], ids=["a-batch-a-row", "one-batch"])
def test_a_row_repeated_in_one_file_stores_one_source_and_one_consent(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path, batch_size: int
) -> None:
    """A batch a row: the repeat joins a contact an earlier batch wrote (the writer
    thread's on PostgreSQL), and what that batch recorded is seen."""
    path = partner_files.write(tmp_path / "a.csv", [person(1), person(2), person(1)])
    with engine.begin() as conn:
        result = import_leads(
            conn, hasher, policy_config, "partner:a", LeadFormat(), path, csvfile.inspect(path),
            filename=path.name, now=NOW, batch_size=batch_size,
        )  # fmt: skip
    assert (result.accepted, result.new_contacts, result.duplicates) == (3, 2, 1)
    assert (count(engine, contacts), count(engine, contact_sources)) == (2, 2)
    assert count(engine, consent_records) == 2


@pytest.mark.parametrize("batch_size", [1, 20_000], ids=["a-batch-a-row", "one-batch"])
def test_a_known_person_twice_in_a_file_gets_one_source_and_consent_from_it(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path, batch_size: int
) -> None:
    run(engine, hasher, policy_config, partner_files.write(tmp_path / "a.csv", [person(1)]), "a")
    path = partner_files.write(tmp_path / "b.csv", [person(1), person(1)])
    with engine.begin() as conn:
        result = import_leads(
            conn, hasher, policy_config, "partner:b", LeadFormat(), path, csvfile.inspect(path),
            filename=path.name, now=NOW, batch_size=batch_size,
        )  # fmt: skip
    assert (result.accepted, result.merged) == (2, 2)
    with engine.connect() as conn:
        found = people.find(conn, hasher, phone_identity(e164(1)))
    assert sorted(s["source"] for s in found.sources) == ["partner:a", "partner:b"]
    assert sorted(c["source"] for c in found.consents) == ["partner:a", "partner:b"]


def test_the_same_lead_with_two_consents_in_one_file_keeps_both_and_one_source(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    rows = [person(1), person(1, Kanaler="sms"), person(1, Kanaler="sms")]
    result = run(engine, hasher, policy_config, partner_files.write(tmp_path / "a.csv", rows))
    assert (result.accepted, result.duplicates) == (3, 2)
    with engine.connect() as conn:
        found = people.find(conn, hasher, phone_identity(e164(1)))
    assert sorted(c["channels"] for c in found.consents) == ["email,sms", "sms"]
    assert [s["source_ref"] for s in found.sources] == ["L-00001"]


def test_a_file_with_a_header_and_no_rows_is_refused_whole(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    result = run(engine, hasher, policy_config, partner_files.write(tmp_path / "a.csv", []))
    assert result.status == REFUSED
    assert result.errors == [RowError(0, "file", "no_rows: the file has a header row and no rows")]
    assert count(engine, imports) == 0


def test_a_missing_column_names_the_headers_that_matched_nothing_and_the_closest_names(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    header = [
        ("Samtykke tidspkt" if h == "Samtykke_tidspunkt" else h) for h in partner_files.HEADER
    ]
    rows = [
        {("Samtykke tidspkt" if k == "Samtykke_tidspunkt" else k): v for k, v in person(1).items()}
    ]
    path = partner_files.write(
        tmp_path / "a.csv", [*rows, {"Merknad": "x"}], header=[*header, "Merknad"]
    )
    result = run(engine, hasher, policy_config, path)
    assert result.status == REFUSED
    assert result.errors[0].reason == (
        "missing_column: no column for consent_at (ES-1); headers that matched nothing: "
        "'Samtykke tidspkt' (closest: 'samtykketidspunkt'), 'Merknad'"
    )


def test_a_file_read_as_detected_without_a_mapping_keeps_the_content_sha256_as_its_identity(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "a.csv", [person(1)])
    result = run(engine, hasher, policy_config, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.sha256 == result.content_sha256 == digest
    with engine.connect() as conn:
        assert conn.execute(select(imports.c.sha256)).scalar_one() == digest


def test_the_same_file_read_with_a_column_mapping_or_an_encoding_is_another_import(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "a.csv", [person(1)])
    source = "partner:boligpartner"
    mapped = LeadFormat(columns={"Skjema/URL": "captured_at"})

    def again(fmt: LeadFormat, encoding: str | None = None) -> ImportResult:
        return import_lead_file(
            engine, hasher, policy_config, source, fmt, path, encoding=encoding, now=NOW
        )

    assert again(LeadFormat()).status == IMPORTED
    assert again(mapped).status == IMPORTED
    assert again(mapped).status == ALREADY_IMPORTED
    assert again(LeadFormat(), "windows-1252").status == IMPORTED
    assert again(LeadFormat(), "cp1252").status == ALREADY_IMPORTED  # the same encoding
    results = [again(LeadFormat()), again(mapped)]
    assert [r.status for r in results] == [ALREADY_IMPORTED, ALREADY_IMPORTED]
    assert len({r.import_id for r in results}) == 2
    assert {r.content_sha256 for r in results} == {hashlib.sha256(path.read_bytes()).hexdigest()}
    assert count(engine, imports) == 3


def test_a_repeated_import_says_when_it_was_imported_and_as_which_import(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    path = partner_files.write(tmp_path / "a.csv", [person(1)])
    first = run(engine, hasher, policy_config, path)
    again = run(engine, hasher, policy_config, path)
    day = NOW.astimezone(clock.OSLO).date().isoformat()
    note = f"already imported on {day} as import {first.import_id} (same content); nothing changed"
    assert again.note == note
    assert again.as_dict()["note"] == note
    assert again.first_imported_at == NOW
