"""The policy (suppression/policy.py), rule by rule, with its edge cases. No I/O."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from suppression.ledger import ALARM_CONTACT, OBJECTION, Entry, Status
from suppression.policy import (
    BASIS_CONSENT,
    BASIS_CUSTOMER_EXCEPTION,
    BASIS_EXPLICIT_REQUEST,
    BASIS_NOT_REGISTERED,
    BASIS_SOFT_OPT_IN,
    CHANNELS,
    EXCLUDED_ALARM_CONTACT,
    EXCLUDED_CHANNEL_OPT_OUT,
    EXCLUDED_CONSENT_TOO_OLD,
    EXCLUDED_NO_CONSENT,
    EXCLUDED_OBJECTION,
    EXCLUDED_REGISTER,
    EXCLUDED_REGISTER_STALE,
    SEND,
    ConsentFacts,
    CustomerFacts,
    Decision,
    PersonFacts,
    PolicyConfig,
    RegisterFacts,
    decide,
)
from tests import clock

ORG_NAME = "Trygg Hjem Alarm AS"
ORG_NUMBER = "999999999"
CONFIG = PolicyConfig(organisation_name=ORG_NAME, organisation_number=ORG_NUMBER)
# The suite's instant (tests.clock): the policy decides at whatever moment it is given.
NOW = clock.NOW
KEY = b"\x01" * 32

_ids = itertools.count(1)


def entry(
    *,
    kind: str = "suppression",
    scope: str = "all",
    reason: str = "unsubscribe",
    source: str = "link",
    at: datetime | None = None,
    evidence_ref: str = "",
) -> Entry:
    return Entry(
        id=next(_ids),
        key_hash=KEY,
        kind=kind,
        scope=scope,
        reason=reason,
        source=source,
        evidence_ref=evidence_ref,
        occurred_at=at or NOW - timedelta(days=10),
        actor="test",
    )


def status(*entries: Entry) -> Status:
    return Status(sorted(entries, key=lambda e: (e.occurred_at, e.id)))


def consent(**changes: Any) -> ConsentFacts:
    """A valid partner consent for email and SMS, given 10 days ago, naming us."""
    base = ConsentFacts(
        reference="consent:1",
        given_at=NOW - timedelta(days=10),
        channels=frozenset({"email", "sms"}),
        wording_version="v3",
        captured_at="https://partner.example.no/skjema/42",
        company_named=ORG_NAME,
        source="partner:boligpartner",
        from_partner=True,
    )
    return base._replace(**changes)


def customer(**changes: Any) -> CustomerFacts:
    """An active alarm customer whose address came from the sale, opt-out offered."""
    base = CustomerFacts(
        customer_id="C-1001",
        contract_active=True,
        contract_end=None,
        product_categories=frozenset({"alarm", "smoke_detector"}),
        email_from_sale=True,
        opt_out_offered=True,
    )
    return replace(base, **changes)


def person(**changes: Any) -> PersonFacts:
    return replace(PersonFacts(), **changes)


def fresh_register(
    *, reserved_phone: bool = False, reserved_post: bool = False, now: datetime = NOW
) -> RegisterFacts:
    """A snapshot dated and loaded at the start of `now`'s day in Oslo: fresh (TP-2),
    whatever day of the month it is."""
    loaded = clock.at(now.astimezone(clock.OSLO).date(), 0)
    return RegisterFacts(loaded.date(), loaded, reserved_phone, reserved_post)


NO_REGISTER = RegisterFacts(None, None)
TODAY: date = clock.TODAY  # NOW's date in Oslo


def first_of_next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def month_of_31_days(after: date = TODAY) -> tuple[date, date]:
    """The first and the last day of the first month of 31 days from `after`'s month on."""
    first = after.replace(day=1)
    while (first_of_next_month(first) - timedelta(days=1)).day != 31:
        first = first_of_next_month(first)
    return first, first_of_next_month(first) - timedelta(days=1)


def decide_now(
    channel: str,
    who: PersonFacts,
    register: RegisterFacts | None = None,
    *,
    purpose: str = "alarm",
    now: datetime = NOW,
    config: PolicyConfig = CONFIG,
) -> Decision:
    return decide(channel, purpose, who, register or fresh_register(), config, now)


def everyone_may_be_contacted(**changes: Any) -> PersonFacts:
    """A person every channel allows: consent for every channel, active customer."""
    return person(consents=(consent(channels=frozenset(CHANNELS)),), customer=customer(), **changes)


def ledger_refs(d: Decision) -> list[str]:
    return [e for e in d.evidence if e.startswith("ledger:")]


# --- the baseline ------------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_the_baseline_person_may_be_contacted_on_every_channel(channel: str) -> None:
    assert decide_now(channel, everyone_may_be_contacted()).allowed


# --- ALL-1 objection ---------------------------------------------------------------


@pytest.mark.parametrize("source", ["link", "sms_reply", "mailbox", "call_outcome", "letter"])
@pytest.mark.parametrize("channel", CHANNELS)
def test_all_1_an_objection_by_any_route_stops_every_channel(source: str, channel: str) -> None:
    objection = entry(scope="all", reason=OBJECTION, source=source)
    d = decide_now(channel, everyone_may_be_contacted(ledger=status(objection)))
    assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_OBJECTION, "ALL-1")
    assert d.evidence == (f"ledger:{objection.id}:{OBJECTION}:{source}",)


@pytest.mark.parametrize("channel", CHANNELS)
def test_all_1_an_objection_recorded_on_one_channel_still_stops_every_channel(
    channel: str,
) -> None:
    objection = entry(scope="sms", reason=OBJECTION, source="sms_reply")
    d = decide_now(channel, everyone_may_be_contacted(ledger=status(objection)))
    assert (d.allowed, d.rule) == (False, "ALL-1")


def test_all_1_an_objection_beats_the_customer_exception_for_calls() -> None:
    who = person(customer=customer(), ledger=status(entry(scope="all", reason=OBJECTION)))
    d = decide_now("call", who, fresh_register(reserved_phone=True))
    assert (d.allowed, d.rule) == (False, "ALL-1")


def test_all_1_a_consent_given_before_the_objection_does_not_outweigh_it() -> None:
    who = person(
        consents=(consent(given_at=NOW - timedelta(days=20)),),
        ledger=status(entry(scope="all", reason=OBJECTION, at=NOW - timedelta(days=5))),
    )
    assert decide_now("email", who).rule == "ALL-1"


# --- ALL-2 channel opt-out ---------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "stopped"),
    [("email", "email"), ("sms", "sms"), ("phone", "call"), ("post", "post")],
)
def test_all_2_a_channel_opt_out_stops_only_that_channel(scope: str, stopped: str) -> None:
    opt_out = entry(scope=scope, reason="unsubscribe", source="link")
    who = everyone_may_be_contacted(ledger=status(opt_out))
    for channel in CHANNELS:
        d = decide_now(channel, who)
        if channel == stopped:
            assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_CHANNEL_OPT_OUT, "ALL-2")
            assert ledger_refs(d) == [f"ledger:{opt_out.id}:unsubscribe:link"]
        else:
            assert d.allowed, channel


def test_tp_7_a_dont_call_me_from_a_call_is_named_as_such() -> None:
    dont_call = entry(scope="phone", reason="unsubscribe", source="call_outcome")
    d = decide_now("call", everyone_may_be_contacted(ledger=status(dont_call)))
    assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_CHANNEL_OPT_OUT, "TP-7")


# --- ALL-3 alarm contacts ----------------------------------------------------------


def _alarm_contact(scope: str = "all") -> Entry:
    return entry(kind="exclusion", scope=scope, reason=ALARM_CONTACT, source="crm")


@pytest.mark.parametrize("channel", CHANNELS)
def test_all_3_an_alarm_contact_is_excluded_even_with_a_valid_consent(channel: str) -> None:
    alarm = _alarm_contact()
    d = decide_now(channel, everyone_may_be_contacted(ledger=status(alarm)))
    assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_ALARM_CONTACT, "ALL-3")
    assert d.evidence == (f"ledger:{alarm.id}:{ALARM_CONTACT}:crm",)


@pytest.mark.parametrize("channel", CHANNELS)
def test_all_3_an_alarm_contact_entry_of_any_scope_excludes_every_channel(channel: str) -> None:
    d = decide_now(channel, everyone_may_be_contacted(ledger=status(_alarm_contact("phone"))))
    assert d.rule == "ALL-3"


def test_all_3_exclusion_wins_over_a_consent_recorded_after_it() -> None:
    later_consent = entry(
        kind="consent",
        scope="email",
        reason="consent",
        at=NOW - timedelta(days=1),
        evidence_ref="consent:9",
    )
    who = everyone_may_be_contacted(ledger=status(_alarm_contact(), later_consent))
    assert decide_now("email", who).rule == "ALL-3"


def test_all_3_exclusion_wins_over_an_objection_too() -> None:
    who = person(ledger=status(entry(reason=OBJECTION), _alarm_contact()))
    assert decide_now("email", who).decision == EXCLUDED_ALARM_CONTACT


# --- ALL-5 no resurrection (ledger.Status) -------------------------------------------


def _consent_entry(scope: str, at: datetime) -> Entry:
    return entry(kind="consent", scope=scope, reason="consent", at=at, evidence_ref="consent:7")


def test_all_5_a_consent_after_the_suppression_lifts_it_for_that_channel_only() -> None:
    suppression = entry(scope="all", at=NOW - timedelta(days=10))
    st = status(suppression, _consent_entry("email", NOW - timedelta(days=2)))
    assert st.blocking("email") == []
    assert not st.suppressed("email")
    for other in ("sms", "phone", "post"):
        assert st.blocking(other) == [suppression]


def test_all_5_a_consent_before_the_suppression_does_not_lift_it() -> None:
    suppression = entry(scope="email", at=NOW - timedelta(days=2))
    st = status(_consent_entry("email", NOW - timedelta(days=10)), suppression)
    assert st.blocking("email") == [suppression]


def test_all_5_a_consent_at_the_same_instant_as_the_suppression_does_not_lift_it() -> None:
    moment = NOW - timedelta(days=2)
    suppression = entry(scope="email", at=moment)
    assert status(suppression, _consent_entry("email", moment)).blocking("email") == [suppression]


def test_all_5_a_consent_lifts_only_the_suppressions_before_it() -> None:
    before = entry(scope="sms", at=NOW - timedelta(days=10))
    after = entry(scope="sms", at=NOW - timedelta(days=1))
    st = status(before, _consent_entry("sms", NOW - timedelta(days=5)), after)
    assert st.blocking("sms") == [after]


def test_all_5_an_exclusion_is_never_lifted() -> None:
    exclusion = entry(kind="exclusion", scope="all", reason=ALARM_CONTACT)
    st = status(exclusion, *(_consent_entry(s, NOW) for s in ("email", "sms", "phone", "post")))
    for scope in ("email", "sms", "phone", "post"):
        assert st.blocking(scope) == [exclusion]


def test_all_5_a_lifted_suppression_lets_the_policy_decide_on_the_consent() -> None:
    st = status(
        entry(scope="email", at=NOW - timedelta(days=30)),
        _consent_entry("email", NOW - timedelta(days=3)),
    )
    who = person(consents=(consent(given_at=NOW - timedelta(days=3)),), ledger=st)
    d = decide_now("email", who)
    assert (d.allowed, d.rule, d.basis) == (True, "ES-1", BASIS_CONSENT)


def test_all_5_a_consent_alone_does_not_suppress_anything() -> None:
    st = status(_consent_entry("email", NOW))
    assert all(st.blocking(s) == [] for s in ("email", "sms", "phone", "post"))


# --- ES-1 consent ------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_es_1_a_consent_naming_us_for_the_channel_allows_it(channel: str) -> None:
    d = decide_now(channel, person(consents=(consent(),)))
    assert d == Decision(True, SEND, "ES-1", BASIS_CONSENT, ("consent:1",))


@pytest.mark.parametrize(
    "named",
    ["Trygg Hjem Alarm AS", "trygg hjem alarm as", "Trygg  Hjem Alarm", "999999999", "999 999 999"],
)
def test_es_1_our_company_may_be_named_by_name_or_organisation_number(named: str) -> None:
    assert decide_now("email", person(consents=(consent(company_named=named),))).allowed


@pytest.mark.parametrize(
    "named", ["Annen Alarm AS", "Trygg Hjem", "Trygg Hjem Alarm AS og partnere", "888888888", ""]
)
def test_es_1_a_consent_naming_another_company_is_refused(named: str) -> None:
    d = decide_now("email", person(consents=(consent(company_named=named),)))
    assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_NO_CONSENT, "ES-1")


def test_es_1_a_consent_for_another_channel_is_refused() -> None:
    who = person(consents=(consent(channels=frozenset({"email"})),))
    assert decide_now("email", who).allowed
    d = decide_now("sms", who)
    assert (d.allowed, d.rule) == (False, "ES-1")


@pytest.mark.parametrize(
    "changes",
    [
        {"wording_version": ""},
        {"wording_version": "  "},
        {"captured_at": ""},
        {"captured_at": " "},
    ],
    ids=["no wording", "blank wording", "no place", "blank place"],
)
def test_es_1_a_consent_without_its_evidence_is_refused(changes: dict[str, str]) -> None:
    d = decide_now("email", person(consents=(consent(**changes),)))
    assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_NO_CONSENT, "ES-1")


def test_es_1_without_any_consent_email_is_refused() -> None:
    d = decide_now("email", person())
    assert (d.allowed, d.decision, d.rule, d.evidence) == (False, EXCLUDED_NO_CONSENT, "ES-1", ())


def test_es_1_a_consent_dated_after_the_contact_is_not_prior_consent() -> None:
    d = decide_now("email", person(consents=(consent(given_at=NOW + timedelta(hours=1)),)))
    assert (d.allowed, d.rule) == (False, "ES-1")


def test_es_1_the_first_usable_consent_is_named_as_evidence() -> None:
    who = person(
        consents=(
            consent(reference="consent:1", company_named="Annen Alarm AS"),
            consent(reference="consent:2"),
        )
    )
    assert decide_now("email", who).evidence == ("consent:2",)


# --- ES-2 soft opt-in ----------------------------------------------------------------


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_es_2_an_active_customer_may_get_offers_on_similar_products(channel: str) -> None:
    d = decide_now(channel, person(customer=customer()), purpose="smoke_detector")
    assert d == Decision(True, SEND, "ES-2", BASIS_SOFT_OPT_IN, ("customer:C-1001",))


@pytest.mark.parametrize(
    "changes",
    [
        {"contract_active": False},
        {"contract_end": TODAY - timedelta(days=1)},
        {"email_from_sale": False},
        {"opt_out_offered": False},
        {"product_categories": frozenset({"insurance"})},
        {"product_categories": frozenset()},
    ],
    ids=[
        "ended contract",
        "end date passed",
        "address not from a sale",
        "opt-out not offered",
        "other product",
        "no product",
    ],
)
def test_es_2_soft_opt_in_is_refused_when_a_condition_fails(changes: dict[str, Any]) -> None:
    d = decide_now("email", person(customer=customer(**changes)))
    assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_NO_CONSENT, "ES-2")
    assert d.evidence == ("customer:C-1001",)


def test_es_2_a_single_past_purchase_is_not_an_active_contract() -> None:
    one_purchase = customer(contract_active=False, contract_end=None)
    assert decide_now("email", person(customer=one_purchase)).rule == "ES-2"
    assert not decide_now("email", person(customer=one_purchase)).allowed


@pytest.mark.travel
def test_es_2_a_contract_ending_today_is_still_active() -> None:
    assert decide_now("email", person(customer=customer(contract_end=TODAY))).allowed


@pytest.mark.travel
def test_es_2_the_end_date_is_read_in_oslo() -> None:
    # 00:30 in Oslo the day after the contract's end is still its end date in UTC: it has ended.
    late = clock.at(TODAY + timedelta(days=1), 0, 30)
    assert late.astimezone(UTC).date() == TODAY
    d = decide_now("email", person(customer=customer(contract_end=TODAY)), now=late)
    assert not d.allowed


def test_es_2_a_valid_consent_is_preferred_as_the_basis() -> None:
    d = decide_now("email", person(consents=(consent(),), customer=customer()))
    assert (d.rule, d.basis) == ("ES-1", BASIS_CONSENT)


# --- ES-5 partner consent age ---------------------------------------------------------


@pytest.mark.travel
def test_es_5_partner_consent_older_than_180_days_is_not_used() -> None:
    old = consent(reference="consent:old", given_at=clock.days_ago(181))
    d = decide_now("email", person(consents=(old,)))
    assert d == Decision(False, EXCLUDED_CONSENT_TOO_OLD, "ES-5", "", ("consent:old",))


@pytest.mark.travel
def test_es_5_partner_consent_exactly_180_days_old_is_still_used() -> None:
    # 180 days of real time, whatever DST did in between (ES-5 counts elapsed time)
    d = decide_now("email", person(consents=(consent(given_at=clock.days_ago(180)),)))
    assert (d.allowed, d.rule) == (True, "ES-1")


@pytest.mark.travel
def test_es_5_partner_consent_a_second_past_180_days_is_too_old() -> None:
    aged = consent(given_at=clock.days_ago(180) - timedelta(seconds=1))
    assert decide_now("email", person(consents=(aged,))).rule == "ES-5"


@pytest.mark.travel
def test_es_5_the_customers_own_consent_does_not_age() -> None:
    own = consent(given_at=NOW - timedelta(days=3 * 365), from_partner=False, source="customer")
    assert decide_now("sms", person(consents=(own,))).allowed


@pytest.mark.travel
def test_es_5_the_age_limit_is_configurable() -> None:
    config = replace(CONFIG, partner_consent_max_age_days=30)
    who = person(consents=(consent(given_at=NOW - timedelta(days=31)),))
    assert decide_now("email", who, config=config).rule == "ES-5"


@pytest.mark.travel
def test_es_5_a_fresh_consent_is_used_when_an_older_one_is_too_old() -> None:
    who = person(
        consents=(
            consent(reference="consent:old", given_at=NOW - timedelta(days=400)),
            consent(reference="consent:new", given_at=NOW - timedelta(days=4)),
        )
    )
    assert decide_now("email", who).evidence == ("consent:new",)


@pytest.mark.travel
def test_es_5_soft_opt_in_still_applies_when_the_partner_consent_is_too_old() -> None:
    who = person(consents=(consent(given_at=NOW - timedelta(days=400)),), customer=customer())
    assert decide_now("email", who).rule == "ES-2"


# --- TP-1 register -------------------------------------------------------------------


def test_tp_1_a_phone_reservation_excludes_calls_but_not_post() -> None:
    register = fresh_register(reserved_phone=True)
    ref = f"register:{register.snapshot_date}"
    assert decide_now("call", person(), register) == Decision(
        False, EXCLUDED_REGISTER, "TP-1", "", (ref,)
    )
    assert decide_now("post", person(), register) == Decision(
        True, SEND, "TP-1", BASIS_NOT_REGISTERED, (ref,)
    )


def test_tp_1_a_post_reservation_excludes_post_but_not_calls() -> None:
    register = fresh_register(reserved_post=True)
    assert decide_now("post", person(), register).decision == EXCLUDED_REGISTER
    assert decide_now("call", person(), register).allowed


def test_tp_1_a_reservation_for_both_excludes_calls_and_post() -> None:
    register = fresh_register(reserved_phone=True, reserved_post=True)
    for channel in ("call", "post"):
        assert decide_now(channel, person(), register).rule == "TP-1"
        assert not decide_now(channel, person(), register).allowed


def test_tp_1_the_register_does_not_decide_email_or_sms() -> None:
    register = fresh_register(reserved_phone=True, reserved_post=True)
    assert decide_now("sms", person(consents=(consent(),)), register).allowed


# --- TP-2 wash freshness -------------------------------------------------------------


@pytest.mark.parametrize("channel", ["call", "post"])
@pytest.mark.travel
def test_tp_2_without_a_snapshot_calls_and_post_are_excluded(channel: str) -> None:
    d = decide_now(channel, everyone_may_be_contacted(), NO_REGISTER)
    assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_REGISTER_STALE, "TP-2")
    assert d.evidence == ("no register snapshot is loaded",)


@pytest.mark.travel
def test_tp_2_a_snapshot_loaded_more_than_30_days_ago_is_stale() -> None:
    loaded = NOW - timedelta(days=31)
    d = decide_now("call", person(), RegisterFacts(loaded.date(), loaded))
    assert (d.decision, d.rule) == (EXCLUDED_REGISTER_STALE, "TP-2")
    assert "31 days" in d.evidence[0]


@pytest.mark.travel
def test_tp_2_a_snapshot_loaded_30_days_ago_in_the_same_month_is_fresh() -> None:
    first, last = month_of_31_days()
    now, loaded = clock.at(last, 14), clock.at(first, 9)
    assert decide_now("call", person(), RegisterFacts(loaded.date(), loaded), now=now).allowed


@pytest.mark.travel
def test_tp_2_a_snapshot_from_yesterday_in_an_earlier_month_is_stale() -> None:
    first = first_of_next_month(TODAY)
    now, loaded = clock.at(first, 10), clock.at(first - timedelta(days=1), 14)
    d = decide_now("post", person(), RegisterFacts(loaded.date(), loaded), now=now)
    assert (d.decision, d.rule) == (EXCLUDED_REGISTER_STALE, "TP-2")
    assert "earlier calendar month" in d.evidence[0]


@pytest.mark.travel
def test_tp_2_an_old_snapshot_loaded_today_is_still_stale() -> None:
    last_month = TODAY.replace(day=1) - timedelta(days=2)  # at most 33 days before today
    d = decide_now("call", person(), RegisterFacts(last_month, NOW))
    assert d.rule == "TP-2"


@pytest.mark.travel
def test_tp_2_the_calendar_month_is_read_in_oslo() -> None:
    # 00:30 on the 1st in Oslo is still the last day of the month before in UTC.
    first = first_of_next_month(TODAY)
    loaded, now = clock.at(first, 0, 30), clock.at(first + timedelta(days=1), 11)
    assert loaded.astimezone(UTC).date() < first
    assert decide_now("call", person(), RegisterFacts(first, loaded), now=now).allowed


@pytest.mark.travel
def test_tp_2_a_stale_register_excludes_customers_too() -> None:
    d = decide_now("call", person(customer=customer()), NO_REGISTER)
    assert d.rule == "TP-2"


# --- TP-3 customer exception ---------------------------------------------------------


def test_tp_3_an_active_customer_may_be_called_about_a_similar_product_despite_the_register() -> (
    None
):
    register = fresh_register(reserved_phone=True)
    d = decide_now("call", person(customer=customer()), register)
    assert d == Decision(
        True,
        SEND,
        "TP-3",
        BASIS_CUSTOMER_EXCEPTION,
        ("customer:C-1001", f"register:{register.snapshot_date}"),
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"product_categories": frozenset({"insurance"})},
        {"contract_active": False},
        {"contract_end": TODAY - timedelta(days=1)},
    ],
    ids=["other product", "ended contract", "end date passed"],
)
@pytest.mark.travel
def test_tp_3_the_exception_needs_an_active_relationship_about_the_product(
    changes: dict[str, Any],
) -> None:
    d = decide_now(
        "call", person(customer=customer(**changes)), fresh_register(reserved_phone=True)
    )
    assert (d.allowed, d.rule) == (False, "TP-1")


@pytest.mark.parametrize(
    ("scope", "rule"), [("phone", "ALL-2"), ("all", "ALL-1")], ids=["phone", "all"]
)
def test_tp_3_any_ledger_entry_for_phone_or_all_wins_over_the_exception(
    scope: str, rule: str
) -> None:
    who = person(customer=customer(), ledger=status(entry(scope=scope, source="mailbox")))
    d = decide_now("call", who, fresh_register(reserved_phone=True))
    assert (d.allowed, d.rule) == (False, rule)


def test_tp_3_an_email_opt_out_does_not_stop_the_customer_call() -> None:
    who = person(customer=customer(), ledger=status(entry(scope="email")))
    assert decide_now("call", who, fresh_register(reserved_phone=True)).rule == "TP-3"


# --- TP-4 explicit request ------------------------------------------------------------


def _call_request(**changes: Any) -> ConsentFacts:
    return consent(
        reference="consent:call",
        channels=frozenset({"call"}),
        explicit_call_request=True,
        **changes,
    )


def test_tp_4_a_listed_person_who_asked_us_to_call_may_be_called() -> None:
    register = fresh_register(reserved_phone=True)
    d = decide_now("call", person(consents=(_call_request(),)), register)
    assert d == Decision(
        True,
        SEND,
        "TP-4",
        BASIS_EXPLICIT_REQUEST,
        ("consent:call", f"register:{register.snapshot_date}"),
    )


def test_tp_4_a_form_collecting_requests_for_several_companies_does_not_count() -> None:
    who = person(consents=(_call_request(multi_company_form=True),))
    d = decide_now("call", who, fresh_register(reserved_phone=True))
    assert (d.allowed, d.decision, d.rule) == (False, EXCLUDED_REGISTER, "TP-1")


def test_tp_4_a_request_to_another_company_does_not_count() -> None:
    who = person(consents=(_call_request(company_named="Annen Alarm AS"),))
    assert not decide_now("call", who, fresh_register(reserved_phone=True)).allowed


def test_tp_4_a_plain_consent_is_not_an_explicit_call_request() -> None:
    who = person(consents=(consent(channels=frozenset({"call"})),))
    assert decide_now("call", who, fresh_register(reserved_phone=True)).rule == "TP-1"


def test_tp_4_a_call_request_does_not_open_addressed_post() -> None:
    who = person(consents=(_call_request(),))
    assert not decide_now("post", who, fresh_register(reserved_post=True)).allowed
