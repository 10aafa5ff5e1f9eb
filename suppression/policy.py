"""The policy: may we contact this person on this channel for this purpose, and on what basis.

`decide` is a pure function over facts gathered by the caller (contact and consent
data from `campaigns`, ledger status, register hit, recent contacts). Every
decision names the rule that decided it, so it can be explained (guarantee 5).
The checks behind a basis (a consent's evidence and age, a customer relationship, the
register's freshness) are `suppression.basis`. Rule ids are those of
../shared/docs/RULES.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from functools import lru_cache
from typing import Final, Literal, NamedTuple

from suppression.basis import (
    active_customer,
    evidenced,
    names_our_company,
    oldest_partner_consent,
    register_fresh,
    soft_opt_in,
)
from suppression.ledger import ALARM_CONTACT, OBJECTION, Entry, Status

Channel = Literal["email", "sms", "call", "post"]
CHANNELS: Final = ("email", "sms", "call", "post")
# The ledger scope a channel is suppressed by (besides "all").
CHANNEL_SCOPE: Final[dict[str, str]] = {
    "email": "email",
    "sms": "sms",
    "call": "phone",
    "post": "post",
}

# Decisions: stable strings that land in the database and in reports.
SEND: Final = "send"
EXCLUDED_ALARM_CONTACT: Final = "excluded:alarm_contact"
EXCLUDED_OBJECTION: Final = "excluded:objection"
EXCLUDED_CHANNEL_OPT_OUT: Final = "excluded:channel_opt_out"
EXCLUDED_FREQUENCY_CAP: Final = "excluded:frequency_cap"
EXCLUDED_NO_CONSENT: Final = "excluded:no_consent"
EXCLUDED_CONSENT_TOO_OLD: Final = "excluded:consent_too_old"
EXCLUDED_REGISTER: Final = "excluded:register"
EXCLUDED_REGISTER_STALE: Final = "excluded:register_stale"
EXCLUDED_NO_ADDRESS: Final = "excluded:no_address"

# Bases of an allowed contact.
BASIS_CONSENT: Final = "consent"
BASIS_SOFT_OPT_IN: Final = "soft_opt_in"
BASIS_NOT_REGISTERED: Final = "not_in_register"
BASIS_CUSTOMER_EXCEPTION: Final = "customer_exception"
BASIS_EXPLICIT_REQUEST: Final = "explicit_request"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    organisation_name: str
    organisation_number: str = ""
    partner_consent_max_age_days: int = 180  # ES-5
    frequency_cap: int = 4  # ALL-8
    frequency_window_days: int = 30  # ALL-8
    register_max_age_days: int = 30  # TP-2
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f) for f in _CONFIG_FIELDS)))

    def __hash__(self) -> int:
        # Computed once: the policy's caches are keyed by the config, and a launch asks
        # them twice per consent (a million times); the generated __hash__ builds and
        # hashes a tuple of every field on each call.
        return self._hash

    def __reduce__(self) -> tuple[type[PolicyConfig], tuple[object, ...]]:
        # Rebuilt from its fields, so that the hash is this process's (str hashes differ).
        return PolicyConfig, tuple(getattr(self, f) for f in _CONFIG_FIELDS)


_CONFIG_FIELDS: Final = tuple(f.name for f in fields(PolicyConfig) if f.compare)


# The facts a launch builds a million of, and the decisions it makes, are named tuples:
# immutable like a frozen dataclass, built in a quarter of the time.
class ConsentFacts(NamedTuple):
    """One consent record, as ES-1 needs it (burden of proof is ours)."""

    reference: str  # evidence reference, e.g. "consent:123" or the partner's lead id
    given_at: datetime
    channels: frozenset[str]  # subset of email, sms, call, post
    wording_version: str
    captured_at: str  # URL or form id where it was given
    company_named: str
    source: str  # partner name, or "customer"
    from_partner: bool = True
    explicit_call_request: bool = False  # TP-4: asked us (only us) to call them
    multi_company_form: bool = False  # a form collecting requests for several companies


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """The ES-2 / TP-3 facts of a customer relationship."""

    customer_id: str
    contract_active: bool
    contract_end: date | None
    product_categories: frozenset[str]
    email_from_sale: bool  # address (or number) collected in connection with a sale
    opt_out_offered: bool  # opt-out offered when it was collected


@dataclass(frozen=True, slots=True)
class RegisterFacts:
    """The register snapshot as it stands, and this person's hit in it."""

    snapshot_date: date | None  # None: no snapshot loaded
    loaded_at: datetime | None
    reserved_phone: bool = False
    reserved_post: bool = False


@dataclass(frozen=True, slots=True)
class PersonFacts:
    consents: tuple[ConsentFacts, ...] = ()
    customer: CustomerFacts | None = None
    ledger: Status = field(default_factory=Status)
    recent_contacts: int = 0  # recorded marketing sends in the frequency window
    has_address: bool = True  # the channel's address (email, phone, postal) is known


class Decision(NamedTuple):
    allowed: bool
    decision: str  # SEND or one of EXCLUDED_*
    rule: str  # the id of the rule that decided
    basis: str = ""  # why a contact is allowed
    evidence: tuple[str, ...] = ()  # consent refs, ledger entry ids, snapshot date

    def as_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "decision": self.decision,
            "rule": self.rule,
            "basis": self.basis,
            "evidence": list(self.evidence),
        }


# The named tuple without its Python-level __new__, for the decisions a launch makes
# by the million (all five fields given, in order).
_new = tuple.__new__


@lru_cache(maxsize=16)
def _snapshot_ref(snapshot_date: date | None) -> str:
    # Cached: a call campaign's launch names one snapshot for every person.
    return f"register:{snapshot_date.isoformat()}" if snapshot_date else ""


def _no(decision: str, rule: str, *evidence: str) -> Decision:
    return Decision(False, decision, rule, "", tuple(evidence))


def _ledger_refs(entries: list[Entry]) -> tuple[str, ...]:
    return tuple(f"ledger:{e.id}:{e.reason}:{e.source}" for e in entries)


def decide(
    channel: str,
    purpose: str,
    person: PersonFacts,
    register: RegisterFacts,
    config: PolicyConfig,
    now: datetime,
) -> Decision:
    """Decide one contact. Exclusions are checked first: exclusion wins (ALL-3).

    Every campaign is marketing, a request for consent included (ES-3): there is no
    purpose that skips the consent rules."""
    return decide_facts(
        channel,
        purpose,
        person.consents,
        person.customer,
        person.ledger,
        person.recent_contacts,
        person.has_address,
        register,
        config,
        now,
    )


def decide_facts(
    channel: str,
    purpose: str,
    consents: tuple[ConsentFacts, ...],
    customer: CustomerFacts | None,
    ledger: Status,
    recent_contacts: int,
    has_address: bool,
    register: RegisterFacts,
    config: PolicyConfig,
    now: datetime,
) -> Decision:
    """`decide` over the facts themselves rather than a PersonFacts: a launch decides a
    million people and would spend a tenth of its time building the PersonFacts."""
    stopped = recheck(channel, ledger, recent_contacts, config)
    if stopped is not None:
        return stopped
    if not has_address:
        return _no(EXCLUDED_NO_ADDRESS, "n/a")
    if channel in ("email", "sms"):
        return _electronic(channel, purpose, consents, customer, config, now)
    return _phone_or_post(channel, purpose, consents, customer, register, config, now)


def recheck(
    channel: str, ledger: Status, recent_contacts: int, config: PolicyConfig
) -> Decision | None:
    """The part of the policy that can change after launch: the ledger and the frequency
    cap. Run at launch and again right before each send (ALL-6). None: nothing stops it."""
    if ledger.entries:  # most people have none: a launch decides millions
        stopped = _ledger_stops(channel, ledger)
        if stopped is not None:
            return stopped
    # ALL-8 (POLICY): at most N marketing contacts per person per window, all channels.
    if recent_contacts >= config.frequency_cap:
        return _no(EXCLUDED_FREQUENCY_CAP, "ALL-8", f"recent_contacts:{recent_contacts}")
    return None


def _ledger_stops(channel: str, ledger: Status) -> Decision | None:
    scope = CHANNEL_SCOPE[channel]
    blocking = ledger.blocking(scope)
    # ALL-3: alarm contacts are never marketed to, whatever else we know of them: an
    # alarm-contact entry excludes every channel whatever its scope, and no consent lifts it.
    alarm = [e for e in ledger.entries if e.reason == ALARM_CONTACT and e.kind != "consent"]
    if alarm:
        return _no(EXCLUDED_ALARM_CONTACT, "ALL-3", *_ledger_refs(alarm))
    # ALL-1: an objection (scope all, or reason objection whatever its scope) stops every channel.
    everything = [e for e in blocking if e.scope == "all" or e.reason == OBJECTION]
    if everything:
        return _no(EXCLUDED_OBJECTION, "ALL-1", *_ledger_refs(everything))
    # ALL-2 (and TP-7 for calls): an opt-out from this channel.
    if blocking:
        by_call = channel == "call" and any(e.source.startswith("call") for e in blocking)
        return _no(
            EXCLUDED_CHANNEL_OPT_OUT, "TP-7" if by_call else "ALL-2", *_ledger_refs(blocking)
        )
    return None


def _electronic(
    channel: str,
    purpose: str,
    consents: tuple[ConsentFacts, ...],
    customer: CustomerFacts | None,
    config: PolicyConfig,
    now: datetime,
) -> Decision:
    too_old: list[str] = []
    for consent in consents:
        # ES-1: prior, active consent naming our company, for this channel, with its
        # evidence (written out here rather than called: it runs for everyone launched).
        if not (
            channel in consent.channels
            and consent.given_at <= now  # prior: a consent dated after the contact is not one
            and evidenced(
                consent.wording_version, consent.captured_at, consent.company_named, config
            )
        ):
            continue
        # ES-5 (POLICY): partner consent older than the limit is not used.
        if consent.from_partner and consent.given_at < oldest_partner_consent(now, config):
            too_old.append(consent.reference)
            continue
        return _new(Decision, (True, SEND, "ES-1", BASIS_CONSENT, (consent.reference,)))
    if customer is not None and soft_opt_in(customer, purpose, now):
        return Decision(
            True, SEND, "ES-2", BASIS_SOFT_OPT_IN, (f"customer:{customer.customer_id}",)
        )
    if too_old:
        return _no(EXCLUDED_CONSENT_TOO_OLD, "ES-5", *too_old)
    if customer is not None:
        return _no(EXCLUDED_NO_CONSENT, "ES-2", f"customer:{customer.customer_id}")
    return _no(EXCLUDED_NO_CONSENT, "ES-1")


def names_us(named: str, config: PolicyConfig) -> bool:
    """Whether a consent's "company named" is our organisation (ES-1); used by importers too."""
    return names_our_company(named, config)


def _phone_or_post(
    channel: str,
    purpose: str,
    consents: tuple[ConsentFacts, ...],
    customer: CustomerFacts | None,
    register: RegisterFacts,
    config: PolicyConfig,
    now: datetime,
) -> Decision:
    stale = register_fresh(register, config, now)
    if stale is not None:
        return _no(EXCLUDED_REGISTER_STALE, "TP-2", stale)
    snapshot_ref = _snapshot_ref(register.snapshot_date)
    listed = register.reserved_phone if channel == "call" else register.reserved_post
    if not listed:
        return _new(Decision, (True, SEND, "TP-1", BASIS_NOT_REGISTERED, (snapshot_ref,)))
    # TP-3: customers may be contacted about similar products despite the register;
    # a reservation made with us directly was already handled above (ledger wins).
    if (
        customer is not None
        and active_customer(customer, now)
        and purpose in customer.product_categories
    ):
        return Decision(
            True,
            SEND,
            "TP-3",
            BASIS_CUSTOMER_EXCEPTION,
            (f"customer:{customer.customer_id}", snapshot_ref),
        )
    if channel == "call":
        for consent in consents:
            # TP-4: an explicit request to us, not a form collecting for several companies.
            if (
                consent.explicit_call_request
                and not consent.multi_company_form
                and names_our_company(consent.company_named, config)
            ):
                return Decision(
                    True, SEND, "TP-4", BASIS_EXPLICIT_REQUEST, (consent.reference, snapshot_ref)
                )
    return _no(EXCLUDED_REGISTER, "TP-1", snapshot_ref)
