"""A launch decides in bulk (a handful of set-based queries per chunk, read ahead on a
connection of its own) exactly what deciding person by person decides (the queries of
`outreach explain`), for a population mixing every fact the policy reads: consents of
every kind and age, several consents per person, customers, ledger entries of every
scope and reason (ALL-1, ALL-2, ALL-3, ALL-5), recent sends (ALL-8), register
reservations (TP-1, TP-3), missing addresses."""

from __future__ import annotations

import random
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, insert, select

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import people
from campaigns.campaign_schema import recipients
from campaigns.schema import consent_records, contacts
from suppression.identity import email_identity, normalise_phone, phone_identity
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.policy import PolicyConfig, decide
from suppression.register import load_snapshot
from tests.clock import OSLO, working_morning
from tests.conftest import ORG_NAME
from tests.factories import add_person

pytestmark = [pytest.mark.integration, pytest.mark.travel]

TEMPLATE = "Hei fra {{ organisation.name }}. {{ source_notice }} Avmeld: {{ unsubscribe_url }}"
PEOPLE = 60
# The launch: a working-day morning (in UTC, as the worker's clock gives it); the population's
# consents, ledger entries and register snapshot are dated relative to it.
LAUNCH = working_morning().astimezone(UTC)
LEDGER = (
    ("email", "unsubscribe"), ("sms", "unsubscribe"), ("phone", "objection"),
    ("all", "objection"), ("all", "alarm_contact"), ("phone", "unsubscribe"),
)  # fmt: skip


def _population(engine: Engine, hasher: Hasher, seed: int, tmp_path: Path) -> None:
    rnd = random.Random(seed)
    now = LAUNCH
    listed = []
    with engine.begin() as conn:
        ledger = Ledger(conn, hasher)
        for n in range(PEOPLE):
            partner = rnd.choice(["Partner A", "Partner B", None])
            customer = (
                {
                    "product_categories": rnd.choice(["alarm", "alarm,smoke", "insurance"]),
                    "contract_status": rnd.choice(["active", "active", "ended"]),
                    "email_from_sale": rnd.random() < 0.8,
                    "opt_out_offered": rnd.random() < 0.8,
                }
                if partner is None or rnd.random() < 0.2
                else None
            )
            has_email = rnd.random() < 0.9  # and everyone has an address to be found by
            cid = add_person(
                conn, hasher, n,
                email=has_email, phone=not has_email or rnd.random() < 0.9,
                consent_channels=rnd.choice(["email,sms", "email", "sms,call", "call", None]),
                partner=partner, customer=customer,
                given_at=now - timedelta(days=rnd.choice([1, 30, 170, 200, 400])),
                company_named=rnd.choice([ORG_NAME, ORG_NAME.upper(), "Et Annet Firma AS", ""]),
            )  # fmt: skip
            asked = n % 10 == 3  # listed, and asked us to call them: TP-4 unless stopped
            if rnd.random() < 0.3 or asked:  # a second, later consent
                conn.execute(
                    insert(consent_records).values(
                        contact_id=cid, source="partner:Partner B", source_ref=f"X{n}",
                        given_at=now - timedelta(days=rnd.choice([2, 60])),
                        channels=rnd.choice(["email", "sms", "call"]), wording_version="v4",
                        captured_at="https://partner.example.com/ny", company_named=ORG_NAME,
                        # TP-4's facts, each way: the launch reads them by position
                        explicit_call_request=asked or rnd.random() < 0.5,
                        multi_company_form=not asked and rnd.random() < 0.3,
                        from_partner=True, recorded_at=now,
                    )
                )  # fmt: skip
            for k in range(rnd.choice([0, 0, 0, 1, 2])):
                scope, reason = rnd.choice(LEDGER)
                kind, value = rnd.choice([("email", f"ola{n}@example.com"), ("phone", f"4{n:07d}")])
                ident = email_identity(value) if kind == "email" else phone_identity(value)
                ledger.add(
                    hasher.hash(ident), kind, scope=scope, reason=reason, source="web",
                    source_event=f"seed{seed}:{n}:{k}", occurred_at=now - timedelta(days=k), now=now,
                )  # fmt: skip
            if rnd.random() < 0.3 or asked:
                listed.append(normalise_phone(f"4{n:07d}").e164)
        path = tmp_path / f"register-{seed}.csv"
        path.write_text(
            "telefon;reservasjon\n+4799999999;begge\n" + "".join(f"{p};telefon\n" for p in listed),
            encoding="utf-8",
        )
        # TP-2: loaded at the launch, dated the launch's day in Oslo
        load_snapshot(conn, hasher, path, now.astimezone(OSLO).date(), now=now)


@pytest.mark.parametrize("seed", [1, 2])
def test_bulk_decisions_equal_person_by_person(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, seed: int, tmp_path: Path
) -> None:
    _population(engine, hasher, seed, tmp_path)
    now = LAUNCH
    launched: dict[str, int] = {}
    for channel in ("email", "sms", "call"):
        with engine.begin() as conn:
            camp = campaign_mod.create(
                conn, name=channel, channel=channel, purpose="alarm", template_text=TEMPLATE,
                organisation_name=ORG_NAME, sender=campaign_mod.Sender(caller_id="22334455"),
                now=now,
            )  # fmt: skip
        with engine.begin() as conn:  # a transaction of its own: the launch reads ahead
            launch_mod.launch(conn, hasher, policy_config, camp.id, now=now)
        launched[channel] = camp.id
    seen, rules = set(), set()
    with engine.connect() as conn:
        for channel, campaign_id in launched.items():
            rows = conn.execute(
                select(
                    recipients.c.contact_id, recipients.c.decision, recipients.c.rule,
                    recipients.c.basis, recipients.c.evidence,
                ).where(recipients.c.campaign_id == campaign_id)
            ).all()  # fmt: skip
            assert len(rows) == PEOPLE
            for row in rows:
                person = _find(conn, hasher, int(row.contact_id))
                facts, register = people.facts(conn, hasher, person, channel)
                one = decide(channel, "alarm", facts, register, policy_config, now)
                bulk = (row.decision, row.rule, row.basis, row.evidence)
                assert bulk == (one.decision, one.rule, one.basis, " ".join(one.evidence)), (
                    channel,
                    row.contact_id,
                )
                seen.add((channel, row.decision))
                rules.add((channel, row.rule))
    # The population reaches a good share of the outcomes on each channel.
    assert len(seen) >= 10, seen
    assert ("call", "TP-4") in rules  # an explicit request to us, despite the register


def _find(conn: Connection, hasher: Hasher, contact_id: int) -> people.Person:
    """The person as `outreach explain` finds them: by an address."""
    row = conn.execute(
        select(contacts.c.email, contacts.c.phone).where(contacts.c.id == contact_id)
    ).one()
    ident = email_identity(row.email) if row.email else phone_identity(row.phone)
    return people.find(conn, hasher, ident)
