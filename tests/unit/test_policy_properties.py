"""Properties of the policy over generated facts (hypothesis). No I/O."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suppression.ledger import ALARM_CONTACT, CHANNEL_SCOPES, OBJECTION, REASONS, Entry, Status
from suppression.policy import CHANNEL_SCOPE, CHANNELS, SEND, PersonFacts, RegisterFacts, decide
from tests.unit.test_policy import CONFIG, KEY, NOW, consent, customer, fresh_register

# Consent ages (ES-5) and the register's freshness (TP-2) around the suite's instant.
pytestmark = pytest.mark.travel

RULE_ID = re.compile(r"(ALL|ES|TP|GD|EM|SM)-\d+|n/a")

moments = st.integers(min_value=-400 * 24, max_value=0).map(lambda h: NOW + timedelta(hours=h))


@st.composite
def entries(
    draw: st.DrawFn, kinds: tuple[str, ...] = ("suppression", "exclusion", "consent")
) -> Entry:
    kind = draw(st.sampled_from(kinds))
    scopes = CHANNEL_SCOPES if kind == "consent" else ("all", *CHANNEL_SCOPES)
    return Entry(
        id=draw(st.integers(min_value=1, max_value=10**6)),
        key_hash=KEY,
        kind=kind,
        scope=draw(st.sampled_from(scopes)),
        reason="consent" if kind == "consent" else draw(st.sampled_from(REASONS)),
        source=draw(st.sampled_from(["link", "sms_reply", "call_outcome", "mailbox", "crm"])),
        evidence_ref="consent:1" if kind == "consent" else "",
        occurred_at=draw(moments),
        actor="test",
    )


ledgers = st.lists(entries(), max_size=6).map(
    lambda es: Status(sorted(es, key=lambda e: (e.occurred_at, e.id)))
)
consents = st.builds(
    consent,
    given_at=moments,
    channels=st.frozensets(st.sampled_from(CHANNELS)),
    company_named=st.sampled_from(["Trygg Hjem Alarm AS", "999999999", "Annen Alarm AS", ""]),
    from_partner=st.booleans(),
    explicit_call_request=st.booleans(),
    multi_company_form=st.booleans(),
)
customers = st.none() | st.builds(
    customer,
    contract_active=st.booleans(),
    email_from_sale=st.booleans(),
    opt_out_offered=st.booleans(),
    product_categories=st.frozensets(st.sampled_from(["alarm", "insurance"])),
)
people = st.builds(
    PersonFacts,
    consents=st.lists(consents, max_size=3).map(tuple),
    customer=customers,
    ledger=ledgers,
    recent_contacts=st.integers(min_value=0, max_value=6),
    has_address=st.booleans(),
)
FRESH = fresh_register()
registers = st.builds(
    RegisterFacts,
    snapshot_date=st.sampled_from([None, FRESH.snapshot_date]),
    loaded_at=st.sampled_from([None, FRESH.loaded_at]),
    reserved_phone=st.booleans(),
    reserved_post=st.booleans(),
)
purposes = st.sampled_from(["alarm", "insurance"])


@settings(max_examples=500)
@given(channel=st.sampled_from(CHANNELS), purpose=purposes, who=people, register=registers)
def test_decide_never_allows_a_contact_when_a_blocking_entry_has_scope_all(
    channel: str, purpose: str, who: PersonFacts, register: RegisterFacts
) -> None:
    d = decide(channel, purpose, who, register, CONFIG, NOW)
    if any(e.scope == "all" for e in who.ledger.blocking(CHANNEL_SCOPE[channel])):
        assert not d.allowed


@settings(max_examples=500)
@given(channel=st.sampled_from(CHANNELS), purpose=purposes, who=people, register=registers)
def test_decide_never_allows_a_contact_the_ledger_blocks_on_its_channel(
    channel: str, purpose: str, who: PersonFacts, register: RegisterFacts
) -> None:
    d = decide(channel, purpose, who, register, CONFIG, NOW)
    if who.ledger.suppressed(CHANNEL_SCOPE[channel]):
        assert not d.allowed
        assert d.rule in ("ALL-1", "ALL-2", "ALL-3", "TP-7")


@settings(max_examples=300)
@given(channel=st.sampled_from(CHANNELS), purpose=purposes, who=people, register=registers)
def test_an_alarm_contact_is_never_contacted_whatever_else_is_known(
    channel: str, purpose: str, who: PersonFacts, register: RegisterFacts
) -> None:
    d = decide(channel, purpose, who, register, CONFIG, NOW)
    alarm = any(e.reason == ALARM_CONTACT and e.kind != "consent" for e in who.ledger.entries)
    if alarm:
        assert (d.allowed, d.rule) == (False, "ALL-3")


@settings(max_examples=300)
@given(channel=st.sampled_from(CHANNELS), purpose=purposes, who=people, register=registers)
def test_every_decision_names_a_rule_and_an_allowed_one_its_basis(
    channel: str, purpose: str, who: PersonFacts, register: RegisterFacts
) -> None:
    d = decide(channel, purpose, who, register, CONFIG, NOW)
    assert RULE_ID.fullmatch(d.rule), d.rule
    if d.allowed:
        assert d.decision == SEND
        assert d.basis
        assert d.evidence
    else:
        assert d.decision.startswith("excluded:")
        assert d.basis == ""


@given(st.lists(entries(), max_size=8), st.sampled_from(CHANNEL_SCOPES))
def test_no_consent_ever_lifts_an_exclusion_or_an_objection_before_it_on_other_channels(
    found: list[Entry], scope: str
) -> None:
    status = Status(sorted(found, key=lambda e: (e.occurred_at, e.id)))
    blocking = status.blocking(scope)
    for e in found:
        if e.kind == "exclusion" and e.scope in ("all", scope):
            assert e in blocking
    consents_here = [e for e in found if e.kind == "consent" and e.scope == scope]
    for e in found:
        if e.kind == "suppression" and e.reason == OBJECTION:
            lifted = any(c.occurred_at > e.occurred_at for c in consents_here)
            assert (e in blocking) is not lifted
