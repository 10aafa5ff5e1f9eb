"""`outreach explain` (GD-3, guarantee 5) and `outreach forget` (ALL-4) through the real CLI,
on both stores."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from campaigns.schema import (
    PLAINTEXT_COLUMNS,
    consent_records,
    contact_sources,
    contacts,
    customers,
)
from suppression.keys import Hasher
from suppression.register import name_address_key
from suppression.schema import ledger_entries
from tests.clock import TODAY, UTC_NOW
from tests.conftest import ORG_NAME, SECRET, Cli
from tests.integration.test_register import plaintext_left

pytestmark = pytest.mark.integration


EMAIL = "ola.nordmann@example.com"
PHONE = "+4741234567"
FIRST, LAST, STREET, POSTAL, CITY = "Ola", "Nordmann", "Fjellveien 12", "5019", "Bergen"
HASHER = Hasher(SECRET.encode())


def add_person(engine: Engine, *, customer: bool = False) -> dict[str, int]:
    """Ola as lead intake would store him at the suite's instant: a contact, its source
    and a partner consent given ten days before."""
    now = UTC_NOW
    with engine.begin() as conn:
        contact_id = conn.execute(
            insert(contacts)
            .values(
                email=EMAIL,
                email_hash=HASHER.digest("email", EMAIL),
                phone=PHONE,
                phone_type="mobile",
                phone_hash=HASHER.digest("phone", PHONE),
                key_id=HASHER.key_id,
                first_name=FIRST,
                last_name=LAST,
                street=STREET,
                postal_code=POSTAL,
                city=CITY,
                name_address_hash=HASHER.digest(
                    "name_address", name_address_key(f"{FIRST} {LAST}", STREET, POSTAL)
                ),
                is_partner_lead=True,
                is_customer=customer,
                created_at=now,
                updated_at=now,
            )
            .returning(contacts.c.id)
        ).scalar_one()
        conn.execute(
            insert(contact_sources).values(
                contact_id=contact_id,
                source="partner:boligpartner",
                source_ref="L-77",
                imported_at=now,
            )
        )
        consent_id = conn.execute(
            insert(consent_records)
            .values(
                contact_id=contact_id,
                source="partner:boligpartner",
                source_ref="L-77",
                given_at=now - timedelta(days=10),
                channels="email,sms",
                wording_version="v3",
                captured_at="https://boligpartner.example.no/tilbud",
                company_named=ORG_NAME,
                explicit_call_request=False,
                multi_company_form=False,
                from_partner=True,
                recorded_at=now,
            )
            .returning(consent_records.c.id)
        ).scalar_one()
        if customer:
            conn.execute(
                insert(customers).values(
                    contact_id=contact_id,
                    customer_id="C-1001",
                    contract_status="active",
                    contract_end=None,
                    product_categories="alarm,smoke_detector",
                    email_source="sale",
                    email_from_sale=True,
                    opt_out_offered=True,
                    imported_at=now,
                )
            )
    return {"contact": int(contact_id), "consent": int(consent_id)}


def explain(cli: Cli, *identity: str) -> dict[str, Any]:
    result = cli("explain", *identity, "--json")
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output)
    return payload


def load_register(cli: Cli, tmp_path: Path, content: str) -> None:
    path = tmp_path / "register.csv"
    path.write_text(content, encoding="utf-8")
    result = cli("register", "load", str(path), "--date", TODAY.isoformat())
    assert result.exit_code == 0, result.output


@pytest.mark.travel  # TP-2 (today's snapshot is fresh) and ES-5 (the consent's age)
def test_explain_shows_each_channels_decision_with_its_rule_and_evidence(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    ids = add_person(engine)
    cli(
        "suppress",
        "add",
        "--phone",
        "412 34 567",
        "--reason",
        "unsubscribe",
        "--channel",
        "sms",
        "--source",
        "sms_reply",
    )
    load_register(cli, tmp_path, "telefon;reservasjon\n41234567;telefon\n")
    payload = explain(cli, "--email", EMAIL)
    decisions = payload["decisions"]
    today = TODAY.isoformat()
    assert decisions["email"] == {
        "allowed": True,
        "decision": "send",
        "rule": "ES-1",
        "basis": "consent",
        "evidence": [f"consent:{ids['consent']}"],
    }
    (entry,) = payload["ledger"]
    assert decisions["sms"] == {
        "allowed": False,
        "decision": "excluded:channel_opt_out",
        "rule": "ALL-2",
        "basis": "",
        "evidence": [f"ledger:{entry['id']}:unsubscribe:sms_reply"],
    }
    assert decisions["call"] == {
        "allowed": False,
        "decision": "excluded:register",
        "rule": "TP-1",
        "basis": "",
        "evidence": [f"register:{today}"],
    }
    assert decisions["post"] == {
        "allowed": True,
        "decision": "send",
        "rule": "TP-1",
        "basis": "not_in_register",
        "evidence": [f"register:{today}"],
    }
    assert (entry["scope"], entry["reason"], entry["source"]) == ("sms", "unsubscribe", "sms_reply")
    assert payload["register"] == {
        "snapshot_date": today,
        "reserved_phone": True,
        "reserved_post": False,
    }
    assert payload["contact"]["email"] == EMAIL
    assert [c["id"] for c in payload["consents"]] == [ids["consent"]]
    assert [s["source"] for s in payload["sources"]] == ["partner:boligpartner"]


def test_explain_finds_the_same_person_by_phone(cli: Cli, engine: Engine) -> None:
    add_person(engine)
    by_phone = explain(cli, "--phone", "0047 412 34 567")
    assert by_phone["contact"]["email"] == EMAIL
    assert by_phone["decisions"] == explain(cli, "--email", EMAIL)["decisions"]


@pytest.mark.travel  # TP-2 and TP-3: today's snapshot, a contract active today
def test_explain_names_the_customer_exception_for_a_registered_customer(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    add_person(engine, customer=True)
    load_register(cli, tmp_path, "telefon;reservasjon\n41234567;telefon\n")
    call = explain(cli, "--email", EMAIL)["decisions"]["call"]
    assert (call["allowed"], call["rule"], call["basis"]) == (True, "TP-3", "customer_exception")
    assert "customer:C-1001" in call["evidence"]


@pytest.mark.travel  # TP-2
def test_explain_without_a_register_snapshot_refuses_calls_by_tp_2(
    cli: Cli, engine: Engine
) -> None:
    add_person(engine)
    call = explain(cli, "--email", EMAIL)["decisions"]["call"]
    assert (call["allowed"], call["decision"], call["rule"]) == (
        False,
        "excluded:register_stale",
        "TP-2",
    )


def test_explain_of_a_stranger_says_there_is_no_consent(cli: Cli) -> None:
    payload = explain(cli, "--email", "stranger@example.com")
    assert payload["contact"] is None and payload["ledger"] == []
    assert payload["decisions"]["email"]["rule"] == "ES-1"
    assert not payload["decisions"]["email"]["allowed"]


def test_explain_without_json_prints_the_rules(cli: Cli, engine: Engine) -> None:
    add_person(engine)
    result = cli("explain", "--email", EMAIL)
    assert result.exit_code == 0, result.output
    assert "ES-1" in result.output and "TP-2" in result.output


def test_an_objection_shows_as_all_1_on_every_channel(cli: Cli, engine: Engine) -> None:
    add_person(engine)
    cli("suppress", "add", "--email", EMAIL, "--reason", "objection", "--source", "mailbox")
    decisions = explain(cli, "--phone", PHONE)["decisions"]
    assert {d["rule"] for d in decisions.values()} == {"ALL-1"}
    assert not any(d["allowed"] for d in decisions.values())


# --- forget (ALL-4) ----------------------------------------------------------------


PLAINTEXT = [EMAIL, PHONE, "41234567", FIRST + " ", LAST, STREET, "boligpartner.example.no"]


def test_forget_keeps_the_no_and_leaves_no_plaintext(cli: Cli, engine: Engine) -> None:
    add_person(engine)
    assert plaintext_left(engine, [EMAIL, LAST, STREET])  # there before
    result = cli("forget", "--email", "Ola.Nordmann@Example.com", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["contacts_cleared"] == 1 and counts["consents_deleted"] == 1
    assert cli("suppress", "check", "--email", EMAIL).exit_code == 1
    assert cli("suppress", "check", "--phone", "412 34 567").exit_code == 1
    assert plaintext_left(engine, PLAINTEXT) == []
    with engine.connect() as conn:
        assert conn.execute(select(contacts.c.email_hash)).scalar_one() is not None
        reasons = {r.reason for r in conn.execute(select(ledger_entries))}
    assert reasons == {"erasure"}


def test_after_forget_explain_holds_nothing_but_the_no(cli: Cli, engine: Engine) -> None:
    add_person(engine)
    cli("forget", "--phone", PHONE)
    payload = explain(cli, "--email", EMAIL)
    contact = payload["contact"]
    assert {c: contact[c] for c in PLAINTEXT_COLUMNS["contacts"]} == dict.fromkeys(
        PLAINTEXT_COLUMNS["contacts"]
    )
    assert payload["consents"] == [] and payload["sources"] == []
    assert {d["rule"] for d in payload["decisions"].values()} == {"ALL-1"}
    assert {e["reason"] for e in payload["ledger"]} == {"erasure"}


def test_a_later_import_of_a_forgotten_person_with_a_new_consent_is_still_suppressed(
    cli: Cli, engine: Engine
) -> None:
    ids = add_person(engine)
    cli("forget", "--email", EMAIL)
    # What a later partner import does for the same address: plaintext and a fresh consent
    # on the contact (ALL-4: the hashed no still stands; ALL-5: an import lifts nothing).
    now = UTC_NOW
    with engine.begin() as conn:
        conn.execute(contacts.update().where(contacts.c.id == ids["contact"]).values(email=EMAIL))
        conn.execute(
            insert(consent_records).values(
                contact_id=ids["contact"],
                source="partner:boligpartner",
                given_at=now,
                channels="email,sms",
                wording_version="v4",
                captured_at="form-9",
                company_named=ORG_NAME,
                from_partner=True,
                recorded_at=now,
            )
        )
    decisions = explain(cli, "--email", EMAIL)["decisions"]
    assert (decisions["email"]["allowed"], decisions["email"]["rule"]) == (False, "ALL-1")
    assert cli("suppress", "check", "--email", EMAIL).exit_code == 1


def test_forgetting_a_stranger_still_records_the_no(cli: Cli) -> None:
    result = cli("forget", "--email", "stranger@example.com", "--json")
    assert json.loads(result.output)["ledger_entries_added"] == 1
    assert cli("suppress", "check", "--email", "stranger@example.com").exit_code == 1


def test_forgetting_twice_adds_nothing_the_second_time(cli: Cli, engine: Engine) -> None:
    add_person(engine)
    first = json.loads(cli("forget", "--email", EMAIL, "--json").output)
    again = json.loads(cli("forget", "--email", EMAIL, "--json").output)
    assert first["ledger_entries_added"] == 3  # email, phone, name+address
    assert again["ledger_entries_added"] == 0


def test_after_forget_explain_shows_the_erasure_once_and_labels_it_erasure(
    engine: Engine, store_url: str
) -> None:
    """One line per fact (issue 19, point 5): the erasure is written under each of the
    person's identities and, during a rotation, under each key; explain shows it once,
    and the decision says erasure (ALL-4), not objection, though it stops every channel
    as an objection would (the policy's ALL-1)."""
    add_person(engine)
    rotating = Cli(store_url)
    rotating.env["OUTREACH_SECRET_KEY"] = "test-only-new-secret-key-0123456789"
    rotating.env["OUTREACH_PREVIOUS_SECRET_KEYS"] = SECRET
    assert rotating("forget", "--email", EMAIL).exit_code == 0
    with engine.connect() as conn:
        stored = conn.execute(select(ledger_entries.c.id)).all()
    assert len(stored) >= 3  # email, phone, name+address, each under the keys

    for identity in (("--email", EMAIL), ("--phone", PHONE)):
        result = rotating("explain", *identity)
        assert result.exit_code == 0, result.output
        shown = " ".join(result.output.split())
        assert shown.count("reason=erasure") == 1, shown
        assert "excluded:objection" not in shown
        assert shown.count("excluded:erasure by ALL-4") == 4  # one per channel
    decisions = explain(rotating, "--email", EMAIL)["decisions"]
    assert {d["decision"] for d in decisions.values()} == {"excluded:objection"}  # as launched
