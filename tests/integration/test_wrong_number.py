"""A wrong number (call outcome `wrong_number`, "Annen person svarte") is detached from its
contact for every channel, and stays detached (issue 19, point 1). SQLite and PostgreSQL.

The number is not the person's: their phone and phone digest are cleared, so no launch
(SMS, calls), send-time check or call list reaches it as theirs, and explain says why.
The keyed pairing of contact and number is kept (`wrong_numbers`), so that a later import
of the same person with the same number does not attach it again, unless the row brings
a consent for SMS or calls given after the report. The number's real owner is not
suppressed by it (no ledger entry: ALL-1/ALL-2/TP-7 stop a number on its holder's own no,
and ES-1 lets them be reached on their own consent). `forget` removes the pairing (ALL-4).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns.calllist.references import reference
from campaigns.campaign_schema import campaigns, recipients
from campaigns.merge import Merger
from campaigns.rekeying import Rotation
from campaigns.schema import contacts, wrong_numbers
from suppression.calendar import OSLO
from suppression.identity import normalise_phone
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from suppression.schema import ledger_entries
from tests.clock import UTC_NOW
from tests.conftest import ORG_NAME, SECRET, Cli
from tests.factories import add_person
from worker.output import EXIT_REFUSED

pytestmark = pytest.mark.integration

HASHER = Hasher(SECRET.encode())
OLA, OWNER = 1, 2  # Ola's number is wrong; person 2 is its real owner
EMAIL = "ola1@example.com"
PHONE = normalise_phone("40000001").e164
REPORTED = UTC_NOW - timedelta(hours=1)  # when the call centre called
SMS_TEMPLATE = "Hei fra {{ organisation.name }}! {{ source_notice }} Avmeld: {{ unsubscribe_url }}"


def on_a_call_list(engine: Engine, contact_id: int) -> tuple[int, str]:
    """A call campaign that put the contact on its list (as the send path leaves it):
    the campaign id and the recipient's call-list reference."""
    with engine.begin() as conn:
        campaign_id = conn.execute(
            insert(campaigns)
            .values(
                name="Ringerunde", channel="call", purpose="alarm", template="-", subject="",
                audience="{}", sender="{}", batch_size=500, state="running",
                created_at=UTC_NOW, launched_at=UTC_NOW,
            )
            .returning(campaigns.c.id)
        ).scalar_one()  # fmt: skip
        recipient_id = conn.execute(
            insert(recipients)
            .values(
                campaign_id=campaign_id, contact_id=contact_id,
                key_hash=HASHER.digest("phone", PHONE), key_id=HASHER.key_id,
                decision="send", rule="TP-1", basis="not_in_register", evidence="",
                state="sent", updated_at=UTC_NOW,
            )
            .returning(recipients.c.id)
        ).scalar_one()  # fmt: skip
    return int(campaign_id), reference(HASHER, int(campaign_id), int(recipient_id))


def report_wrong_number(cli: Cli, tmp_path: Path, ref: str) -> dict[str, Any]:
    path = tmp_path / "utfall.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["referanse", "utfall", "tidspunkt"])
        writer.writerow([ref, "feil_nummer", REPORTED.astimezone(OSLO).strftime("%d.%m.%Y %H:%M")])
    result = cli("calllist", "outcomes", str(path), "--json")
    assert result.exit_code == 0, result.output
    outcome: dict[str, Any] = json.loads(result.output)
    return outcome


def ola_with_a_wrong_number(engine: Engine, cli: Cli, tmp_path: Path) -> tuple[int, int]:
    with engine.begin() as conn:
        contact_id = add_person(conn, HASHER, OLA)
    campaign_id, ref = on_a_call_list(engine, contact_id)
    report_wrong_number(cli, tmp_path, ref)
    return contact_id, campaign_id


def test_a_wrong_number_is_detached_from_the_contact_for_every_channel(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        contact_id = add_person(conn, HASHER, OLA)
    campaign_id, ref = on_a_call_list(engine, contact_id)
    before = json.loads(cli("explain", "--email", EMAIL, "--json").output)["decisions"]
    assert before["sms"]["allowed"]  # ES-1: the consent covers SMS

    first = report_wrong_number(cli, tmp_path, ref)
    again = report_wrong_number(cli, tmp_path, ref)

    assert (first["recorded"], first["detached"]) == (1, 1), first
    assert (again["recorded"], again["already_recorded"], again["detached"]) == (0, 1, 0)
    with engine.connect() as conn:
        held = conn.execute(
            select(contacts.c.phone, contacts.c.phone_type, contacts.c.phone_hash)
        ).one()
        assert tuple(held) == (None, None, None)
        assert conn.execute(select(func.count()).select_from(wrong_numbers)).scalar_one() == 1
    decisions = json.loads(cli("explain", "--email", EMAIL, "--json").output)["decisions"]
    assert {c: decisions[c]["decision"] for c in ("sms", "call")} == {
        "sms": "excluded:no_address",
        "call": "excluded:no_address",
    }
    assert decisions["email"]["allowed"]  # only the number went
    text = cli("explain", "--email", EMAIL).output
    when = REPORTED.astimezone(OSLO).strftime("%Y-%m-%d %H:%M:00 %Z")
    assert (
        f"phone detached: wrong number reported by the call centre on {when} "
        f"(campaign {campaign_id})"
    ) in " ".join(text.split())


def test_the_next_sms_campaign_does_not_text_the_wrong_number(
    cli: Cli, engine: Engine, tmp_path: Path, policy_config: PolicyConfig
) -> None:
    contact_id, _ = ola_with_a_wrong_number(engine, cli, tmp_path)
    with engine.begin() as conn:
        campaign_id = campaign_mod.create(
            conn, name="Vinter-SMS", channel="sms", purpose="alarm", template_text=SMS_TEMPLATE,
            organisation_name=ORG_NAME, now=UTC_NOW,
        ).id  # fmt: skip
        launch_mod.launch(conn, HASHER, policy_config, campaign_id, now=UTC_NOW)
        decided = conn.execute(
            select(recipients.c.decision, recipients.c.state).where(
                recipients.c.campaign_id == campaign_id, recipients.c.contact_id == contact_id
            )
        ).first()
    assert decided is None or (decided.decision, decided.state) == (
        "excluded:no_address",
        "excluded",
    )


def test_the_numbers_own_holder_is_not_suppressed_by_someone_elses_wrong_number(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    """No ledger entry on the number: its holder, with their own consent, may be texted
    (ES-1); the wrong number was not their no (ALL-2, TP-7)."""
    ola_with_a_wrong_number(engine, cli, tmp_path)
    with engine.begin() as conn:
        owner = add_person(conn, HASHER, OWNER, phone=False)
        conn.execute(
            contacts.update()
            .where(contacts.c.id == owner)
            .values(phone=PHONE, phone_type="mobile", phone_hash=HASHER.digest("phone", PHONE))
        )
        assert conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one() == 0
    assert cli("suppress", "check", "--phone", PHONE).exit_code == 0
    sms = json.loads(cli("explain", "--phone", PHONE, "--json").output)["decisions"]["sms"]
    assert (sms["allowed"], sms["rule"]) == (True, "ES-1")


@dataclass(frozen=True)
class Lead:
    """A partner row as Merger reads it (campaigns.contactlookup.Incoming), with the
    consent it brings (campaigns.sources.partner.Lead)."""

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
    given_at: datetime
    channels: str


def ola_again(hasher: Hasher, given_at: datetime, channels: str = "email,sms") -> Lead:
    return Lead(
        EMAIL, hasher.digest("email", EMAIL), PHONE, "mobile", hasher.digest("phone", PHONE),
        None, None, None, None, None, None, given_at, channels,
    )  # fmt: skip


def merged_phone(conn: Connection, hasher: Hasher, lead: Lead) -> str | None:
    merger = Merger(
        conn, hasher.key_id, UTC_NOW, partner_lead=True, rotation=Rotation.of(conn, hasher, UTC_NOW)
    )
    (contact_id,) = merger.merge([lead])
    merger.close()
    phone: str | None = conn.execute(
        select(contacts.c.phone).where(contacts.c.id == contact_id)
    ).scalar_one()
    return phone


@pytest.mark.parametrize(
    ("given_at", "channels", "attached"),
    [
        (REPORTED - timedelta(days=10), "email,sms", False),  # the claim found wrong, again
        (REPORTED + timedelta(minutes=30), "email", False),  # newer, but names no phone channel
        (REPORTED + timedelta(minutes=30), "sms", True),  # new evidence: a newer SMS consent
    ],
)
def test_a_later_import_of_the_same_person_and_number_attaches_it_only_on_newer_consent(
    cli: Cli,
    engine: Engine,
    tmp_path: Path,
    given_at: datetime,
    channels: str,
    attached: bool,
) -> None:
    ola_with_a_wrong_number(engine, cli, tmp_path)
    with engine.begin() as conn:
        phone = merged_phone(conn, HASHER, ola_again(HASHER, given_at, channels))
    assert (phone == PHONE) is attached


def test_after_a_key_rotation_the_pairing_still_keeps_the_number_off(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    """The pairing written under the key of the day is matched under it while it is a
    previous key (suppression.keys: what has no plaintext left stays under its key)."""
    ola_with_a_wrong_number(engine, cli, tmp_path)
    rotated = Hasher(b"test-only-new-secret-key-0123456789", previous=[SECRET.encode()])
    with engine.begin() as conn:
        phone = merged_phone(conn, rotated, ola_again(rotated, REPORTED - timedelta(days=1)))
        moved = conn.execute(select(contacts.c.key_id)).scalar_one()
    assert phone is None
    assert moved == rotated.key_id  # the contact itself moved to the new key


def test_a_wrong_number_is_written_under_every_configured_key(
    engine: Engine, tmp_path: Path, store_url: str
) -> None:
    with engine.begin() as conn:
        contact_id = add_person(conn, HASHER, OLA)
    _, ref = on_a_call_list(engine, contact_id)
    cli = Cli(store_url)
    cli.env["OUTREACH_SECRET_KEY"] = "test-only-new-secret-key-0123456789"
    cli.env["OUTREACH_PREVIOUS_SECRET_KEYS"] = SECRET
    report_wrong_number(cli, tmp_path, ref)
    with engine.connect() as conn:
        keys = set(conn.execute(select(wrong_numbers.c.key_id)).scalars())
    new = Hasher(b"test-only-new-secret-key-0123456789")
    assert keys == {HASHER.key_id, new.key_id}


def test_forget_removes_the_pairing(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    ola_with_a_wrong_number(engine, cli, tmp_path)
    assert cli("forget", "--email", EMAIL).exit_code == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(wrong_numbers)).scalar_one() == 0


def test_the_key_a_wrong_number_is_kept_under_is_not_retired_while_only_it_holds_it(
    cli: Cli, engine: Engine, tmp_path: Path, store_url: str
) -> None:
    """The pairing cannot be re-keyed (the number is gone from the contact): like an
    erased person's no, it keeps its key configured (docs/operations.md)."""
    ola_with_a_wrong_number(engine, cli, tmp_path)
    rotated = Cli(store_url)
    rotated.env["OUTREACH_SECRET_KEY"] = "test-only-new-secret-key-0123456789"
    rotated.env["OUTREACH_PREVIOUS_SECRET_KEYS"] = SECRET
    assert rotated("keys", "rekey").exit_code == 0  # Ola's contact moves to the new key

    refused = rotated("keys", "retire", HASHER.key_id)

    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert "1 wrong numbers are kept only under it" in " ".join(refused.output.split())
