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
from tests.partner_files import e164, person

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
