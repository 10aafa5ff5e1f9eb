"""Whether the facts behind a basis for contact hold: a consent's evidence and age
(ES-1, ES-5), a customer relationship (ES-2, TP-3), a fresh register wash (TP-2).

Pure checks over the facts, for `suppression.policy`, which decides and names the
basis. Cached where a launch asks the same question for a million people.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from suppression.calendar import OSLO

if TYPE_CHECKING:
    # Types only: suppression.policy imports these checks.
    from suppression.policy import CustomerFacts, PolicyConfig, RegisterFacts


@lru_cache(maxsize=1024)
def evidenced(
    wording_version: str, captured_at: str, company_named: str, config: PolicyConfig
) -> bool:
    """ES-1's evidence: the wording and where it was captured, naming our company. Cached:
    a launch sees a few forms' worth of these over millions of consents."""
    return (
        bool(wording_version.strip())
        and bool(captured_at.strip())
        and names_our_company(company_named, config)
    )


@lru_cache(maxsize=64)
def oldest_partner_consent(now: datetime, config: PolicyConfig) -> datetime:
    """ES-5: a partner's consent given before this is too old at `now` (cached per moment).
    Counted in UTC: 180 days back from a local time would be an hour off across DST."""
    return now.astimezone(UTC) - timedelta(days=config.partner_consent_max_age_days)


def names_our_company(named: str, config: PolicyConfig) -> bool:
    """The consent names our company: by name (case and an "AS" suffix aside) or number."""
    given = _plain(named)
    if not given:
        return False
    if config.organisation_number and given.replace(" ", "") == config.organisation_number:
        return True
    return given == _plain(config.organisation_name)


@lru_cache(maxsize=1024)
def _plain(text: str) -> str:
    # Cached: a launch asks about the same few company names for millions of consents.
    return " ".join(text.casefold().split()).removesuffix(" as").strip()


def soft_opt_in(customer: CustomerFacts, purpose: str, now: datetime) -> bool:
    """ES-2: active contract, address from a sale, similar product, opt-out offered."""
    return (
        active_customer(customer, now)
        and customer.email_from_sale
        and customer.opt_out_offered
        and purpose in customer.product_categories
    )


def active_customer(customer: CustomerFacts, now: datetime) -> bool:
    # An ended contract is not a relationship (POLICY); nor is a contract past its end date.
    today = _oslo_date(now)
    return customer.contract_active and (
        customer.contract_end is None or customer.contract_end >= today
    )


@lru_cache(maxsize=64)
def _oslo_date(moment: datetime) -> date:
    # Cached: a launch asks about the same moment for every person.
    return moment.astimezone(OSLO).date()


def register_fresh(register: RegisterFacts, config: PolicyConfig, now: datetime) -> str | None:
    """TP-2: None when the snapshot may be used now, else the reason it may not."""
    return _register_stale(register.snapshot_date, register.loaded_at, config, now)


@lru_cache(maxsize=64)
def _register_stale(
    snapshot_date: date | None, loaded_at: datetime | None, config: PolicyConfig, now: datetime
) -> str | None:
    # Cached: a launch of a call campaign asks about one snapshot for every person.
    if snapshot_date is None or loaded_at is None:
        return "no register snapshot is loaded"
    today = _oslo_date(now)
    # The older of the snapshot's own date and its load date: loading an old file today
    # does not make its content fresh (POLICY, the stricter reading).
    loaded = min(_oslo_date(loaded_at), snapshot_date)
    if (today - loaded).days > config.register_max_age_days:
        return f"the register snapshot is {(today - loaded).days} days old (limit {config.register_max_age_days})"
    if (loaded.year, loaded.month) != (today.year, today.month):
        return "the register snapshot is from an earlier calendar month"
    return None
