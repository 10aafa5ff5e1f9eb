"""The CRM export and alarm contacts into the store, and what the policy makes of them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from campaigns import people
from campaigns.customers import ALARM_SOURCE, NOT_IMPORTED, import_customer_files
from campaigns.importresult import ALREADY_IMPORTED, IMPORTED, REFUSED
from campaigns.intake import import_lead_file
from campaigns.schema import contacts, customers
from campaigns.sources.partner import IDENTITY_CONFLICT, LeadFormat
from suppression.errors import RowError
from suppression.identity import email_identity, phone_identity
from suppression.keys import Hasher
from suppression.ledger import ALARM_CONTACT
from suppression.policy import (
    BASIS_SOFT_OPT_IN,
    EXCLUDED_ALARM_CONTACT,
    SEND,
    PolicyConfig,
    decide,
)
from suppression.schema import ledger_entries
from tests import clock, partner_files
from tests.conftest import Cli
from tests.partner_files import e164, person
from worker.output import EXIT_INPUT_REFUSED

pytestmark = pytest.mark.integration
NOW = clock.NOW  # the import's (and the policy's) moment
# Kari's contract runs two years on; the ended one ended a month ago (dates as the CRM writes them).
CONTRACT_END = clock.TODAY + timedelta(days=730)
ENDED = clock.TODAY - timedelta(days=30)
CRM_HEADER = (
    "kundenummer;fornavn;etternavn;e-post;mobil;adresse;postnummer;poststed;"
    "kontraktstatus;kontrakt_slutt;produktkategorier;e-post_kilde;reservasjon_tilbudt\n"
)


def crm_file(path: Path, *rows: str) -> Path:
    path.write_bytes((CRM_HEADER + "".join(r + "\r\n" for r in rows)).encode("cp1252"))
    return path


def alarm_file(path: Path, *rows: str) -> Path:
    path.write_text("kundenummer;navn;telefon;e-post\n" + "".join(r + "\n" for r in rows))
    return path


KARI = (
    "K-1;Kari;Sæther;kari@example.no;912 34 567;Løkkeveien 3;0253;Oslo;aktiv;"
    f"{CONTRACT_END:%d.%m.%Y};alarm, smarthus;salg;ja"
)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pytest.mark.travel
def test_a_customer_from_the_crm_may_get_email_about_a_similar_product_by_soft_opt_in_es2(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    outcome = import_customer_files(engine, hasher, crm_file(tmp_path / "crm.csv", KARI), now=NOW)
    assert (outcome.customers.status, outcome.customers_added) == (IMPORTED, 1)
    with engine.connect() as conn:
        person_ = people.find(conn, hasher, email_identity("kari@example.no"))
        facts, register = people.facts(conn, hasher, person_, "email")
    assert person_.customer is not None
    assert person_.customer["contract_end"] == CONTRACT_END
    decision = decide("email", "alarm", facts, register, policy_config, now=NOW)
    assert (decision.decision, decision.basis) == (SEND, BASIS_SOFT_OPT_IN)
    other = decide("email", "insurance", facts, register, policy_config, now=NOW)
    assert not other.allowed


def test_a_known_customer_id_is_updated_from_a_newer_export(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    import_customer_files(engine, hasher, crm_file(tmp_path / "crm1.csv", KARI), now=NOW)
    ended = KARI.replace(f"aktiv;{CONTRACT_END:%d.%m.%Y}", f"avsluttet;{ENDED:%d.%m.%Y}")
    outcome = import_customer_files(engine, hasher, crm_file(tmp_path / "crm2.csv", ended), now=NOW)
    assert (outcome.customers_added, outcome.customers_updated) == (0, 1)
    with engine.connect() as conn:
        row = conn.execute(select(customers)).one()._mapping
    assert (row["contract_status"], row["contract_end"]) == ("ended", ENDED)
    assert count(engine, contacts) == 1


def test_the_same_export_twice_imports_once(engine: Engine, hasher: Hasher, tmp_path: Path) -> None:
    path = crm_file(tmp_path / "crm.csv", KARI)
    import_customer_files(engine, hasher, path, now=NOW)
    again = import_customer_files(engine, hasher, path, now=NOW)
    assert again.customers.status == ALREADY_IMPORTED
    assert count(engine, customers) == 1


def test_two_customer_ids_with_the_same_email_refuse_the_second_row(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    twin = KARI.replace("K-1;", "K-2;").replace("912 34 567", "")
    outcome = import_customer_files(
        engine, hasher, crm_file(tmp_path / "crm.csv", KARI, twin), now=NOW
    )
    assert outcome.customers.errors == [RowError(3, "e-post", IDENTITY_CONFLICT)]
    assert count(engine, customers) == 1


def test_alarm_contacts_are_ledger_exclusions_and_never_contacts_all3(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    alarm = alarm_file(
        tmp_path / "alarm.csv",
        "K-1;Nabo Nilsen;+47 412 34 567;nabo@example.no",
        "K-1;Bror;98765432;",
    )
    outcome = import_customer_files(
        engine, hasher, crm_file(tmp_path / "crm.csv", KARI), alarm, now=NOW
    )
    assert outcome.exclusions_added == 3
    assert count(engine, contacts) == 1  # Kari only
    with engine.connect() as conn:
        entries = conn.execute(select(ledger_entries)).all()
        held = [str(v) for r in conn.execute(select(contacts)).all() for v in r]
    assert {(e.kind, e.scope, e.reason, e.source) for e in entries} == {
        ("exclusion", "all", ALARM_CONTACT, ALARM_SOURCE)
    }
    assert {e.key_hash for e in entries} == {
        hasher.digest("phone", "+4741234567"),
        hasher.digest("email", "nabo@example.no"),
        hasher.digest("phone", "+4798765432"),
    }
    assert not any("Nilsen" in v or "nabo@" in v or "98765432" in v for v in held)


def test_reimporting_the_alarm_contacts_adds_nothing(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    crm = crm_file(tmp_path / "crm.csv", KARI)
    import_customer_files(
        engine, hasher, crm, alarm_file(tmp_path / "a1.csv", "K-1;Nabo;41234567;"), now=NOW
    )
    # the same list exported again, with a new line: only the new line is added
    second = alarm_file(tmp_path / "a2.csv", "K-1;Nabo;41234567;", "K-1;Nabo 2;41234568;")
    outcome = import_customer_files(engine, hasher, crm, second, now=NOW)
    assert outcome.exclusions_added == 1
    assert count(engine, ledger_entries) == 2


@pytest.mark.travel
def test_a_lead_whose_phone_is_an_alarm_contacts_is_excluded_by_the_policy_all3(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    """Acceptance: exclusion wins over a partner's valid consent."""
    alarm = alarm_file(tmp_path / "alarm.csv", f"K-1;Nabo;{e164(1)};")
    import_customer_files(engine, hasher, crm_file(tmp_path / "crm.csv", KARI), alarm, now=NOW)
    lead_file = partner_files.write(tmp_path / "leads.csv", [person(1), person(2)])
    result = import_lead_file(
        engine, hasher, policy_config, "partner:p", LeadFormat(), lead_file, now=NOW
    )
    assert result.accepted == 2
    with engine.connect() as conn:
        for channel in ("sms", "email", "call"):
            lead = people.find(conn, hasher, phone_identity(e164(1)))
            facts, register = people.facts(conn, hasher, lead, channel)
            decision = decide(channel, "alarm", facts, register, policy_config, now=NOW)
            assert (decision.decision, decision.rule) == (EXCLUDED_ALARM_CONTACT, "ALL-3")
        neighbour = people.find(conn, hasher, phone_identity(e164(2)))
        facts, register = people.facts(conn, hasher, neighbour, "sms")
        assert decide("sms", "alarm", facts, register, policy_config, now=NOW).decision == SEND


def test_a_refused_alarm_contacts_file_stores_nothing_of_either_file(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    bad = tmp_path / "alarm.csv"
    bad.write_text("navn;telefon\nNabo;41234567\n")  # no customer id column
    outcome = import_customer_files(
        engine, hasher, crm_file(tmp_path / "crm.csv", KARI), bad, now=NOW
    )
    assert outcome.alarm_contacts is not None
    assert outcome.alarm_contacts.status == REFUSED
    assert outcome.customers.status == NOT_IMPORTED
    assert count(engine, customers) == 0 and count(engine, ledger_entries) == 0


def test_a_value_too_long_once_case_folded_refuses_its_row_alone_and_keeps_the_good_one(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    # 80 "ß" fit the 80 characters of email_source as written, not once case-folded
    # ("ss"): PostgreSQL refused the whole batch, Kari's row with it.
    long_source = KARI.replace("K-1;", "K-2;").replace(";salg;", ";" + "ß" * 80 + ";")
    long_source = long_source.replace("kari@", "kari2@").replace("912 34 567", "912 34 568")
    path = tmp_path / "crm.csv"
    path.write_bytes((CRM_HEADER + KARI + "\r\n" + long_source + "\r\n").encode("utf-8"))
    outcome = import_customer_files(engine, hasher, path, now=NOW)
    assert outcome.customers.status == IMPORTED
    assert outcome.customers.errors == [RowError(3, "e-post_kilde", "too_long")]
    assert (outcome.customers.accepted, outcome.customers_added) == (1, 1)
    assert count(engine, customers) == 1


def test_an_alarm_contact_row_with_a_field_missing_refuses_the_whole_list_all3(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    crm = crm_file(tmp_path / "crm.csv", KARI)
    first = alarm_file(tmp_path / "a1.csv", "K-1;Nabo;41234567;")
    import_customer_files(engine, hasher, crm, first, now=NOW)
    before = count(engine, ledger_entries)
    # Row 3 lost its last field: read as it was, its phone would have become marketable.
    second = alarm_file(
        tmp_path / "a2.csv", "K-1;Nabo;41234567;", "K-1;Bror;41234568", "K-1;Søster;41234569;"
    )
    outcome = import_customer_files(engine, hasher, crm, second, now=NOW)
    assert outcome.alarm_contacts is not None
    assert outcome.alarm_contacts.status == REFUSED
    assert outcome.alarm_contacts.errors[0].reason.startswith(
        "bad_rows: 1 of its rows cannot be read, nothing imported and the previous alarm contacts "
        "stay in force: row 3, row: wrong_field_count"
    )
    assert outcome.alarm_contacts.errors[1:] == [RowError(3, "row", "wrong_field_count")]
    assert outcome.customers.status == NOT_IMPORTED
    assert count(engine, ledger_entries) == before  # row 4 was not added either


def alarm_rows(n: int) -> list[str]:
    return [f"K-{i};Nabo {i};4123{i:04d};" for i in range(1, n + 1)]


@pytest.mark.parametrize(("rows", "refused"), [(9, False), (8, True)])
def test_an_alarm_list_shorter_than_the_last_by_more_than_a_tenth_is_refused_by_how_much(
    engine: Engine, hasher: Hasher, tmp_path: Path, rows: int, refused: bool
) -> None:
    crm = crm_file(tmp_path / "crm.csv", KARI)
    import_customer_files(
        engine, hasher, crm, alarm_file(tmp_path / "a1.csv", *alarm_rows(10)), now=NOW
    )
    before = count(engine, ledger_entries)
    # The last row is new: a shorter list may still hold contacts the last one did not.
    shorter = alarm_file(tmp_path / "a2.csv", *alarm_rows(rows - 1), "K-99;Ny;41239999;")
    outcome = import_customer_files(engine, hasher, crm, shorter, now=NOW)
    assert outcome.alarm_contacts is not None
    if not refused:  # 10 % fewer: the most the default allows
        assert outcome.alarm_contacts.status == IMPORTED
        assert count(engine, ledger_entries) == before + 1
        return
    assert outcome.alarm_contacts.status == REFUSED
    assert outcome.alarm_contacts.errors[0].reason.startswith(
        "shrink: the alarm contacts would shrink by 20.0% (from 10 rows at the last load to 8), "
        "more than the 10% allowed (OUTREACH_ALARM_MAX_SHRINK); nothing imported and the "
        "previous list stays in force"
    )
    assert outcome.customers.status == NOT_IMPORTED
    assert count(engine, ledger_entries) == before


def test_a_shrink_past_the_setting_is_refused_unless_allowed_and_the_refusal_says_how_much(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    crm = crm_file(tmp_path / "crm.csv", KARI)
    first = alarm_file(tmp_path / "a1.csv", *alarm_rows(10))
    assert cli("customers", "import", str(crm), "--alarm-contacts", str(first)).exit_code == 0
    before = count(engine, ledger_entries)
    shorter = alarm_file(tmp_path / "a2.csv", *alarm_rows(7), "K-99;Ny;41239999;")
    result = cli("customers", "import", str(crm), "--alarm-contacts", str(shorter))
    assert result.exit_code == EXIT_INPUT_REFUSED
    said = " ".join(result.output.split())
    assert "would shrink by 20.0% (from 10 rows at the last load to 8)" in said
    assert "more than the 10% allowed (OUTREACH_ALARM_MAX_SHRINK)" in said
    assert "--allow-shrink" in said
    assert count(engine, ledger_entries) == before
    cli.env["OUTREACH_ALARM_MAX_SHRINK"] = "0.25"
    result = cli("customers", "import", str(crm), "--alarm-contacts", str(shorter))
    assert result.exit_code == 0, result.output
    assert count(engine, ledger_entries) == before + 1  # the new one; none is ever lifted
    cli.env.pop("OUTREACH_ALARM_MAX_SHRINK")
    fewer = alarm_file(tmp_path / "a3.csv", *alarm_rows(2))
    assert cli("customers", "import", str(crm), "--alarm-contacts", str(fewer)).exit_code == 5
    allowed = cli("customers", "import", str(crm), "--alarm-contacts", str(fewer), "--allow-shrink")
    assert allowed.exit_code == 0, allowed.output


def test_a_customer_export_cut_inside_its_last_value_is_refused_whole(
    engine: Engine, hasher: Hasher, tmp_path: Path
) -> None:
    # "ja" cut to "j" still reads as yes: only the missing line ending tells.
    path = tmp_path / "crm.csv"
    path.write_bytes((CRM_HEADER + KARI + "\r\n" + KARI.replace("K-1;", "K-2;")[:-1]).encode())
    outcome = import_customer_files(engine, hasher, path, now=NOW)
    assert outcome.customers.status == REFUSED
    assert outcome.customers.errors[0].reason.startswith(
        "truncated: row 3: the last line has no line ending"
    )
    assert count(engine, customers) == 0 and count(engine, contacts) == 0
