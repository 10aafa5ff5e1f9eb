"""Synthetic people straight into the store, for tests that are not about intake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from campaigns.schema import consent_records, contact_sources, contacts, customers
from suppression.identity import normalise_email, normalise_phone
from suppression.keys import Hasher
from suppression.register import name_address_key
from tests.clock import NOW
from tests.conftest import ORG_NAME


def add_person(
    conn: Connection,
    hasher: Hasher,
    n: int,
    *,
    email: bool = True,
    phone: bool = True,
    consent_channels: str | None = "email,sms",
    partner: str | None = "Partner A",
    customer: dict[str, Any] | None = None,
    given_at: datetime | None = None,
    company_named: str = ORG_NAME,
    now: datetime = NOW,
) -> int:
    """Person number `n`: ola{n}@example.com, +47 4xxxxxxx, stored at `now` (the suite's
    instant) with a consent given ten days before unless `given_at` says; returns the
    contact id."""
    now = now.astimezone(UTC)
    address = normalise_email(f"ola{n}@example.com") if email else None
    number = normalise_phone(f"4{n:07d}") if phone else None
    first, last, street, postal = f"Ola{n}", "Nordmann", f"Storgata {n}", f"{n % 10}155"
    contact_id = conn.execute(
        contacts.insert().values(
            email=address,
            email_hash=hasher.digest("email", address) if address else None,
            phone=number.e164 if number else None,
            phone_type=number.number_type if number else None,
            phone_hash=hasher.digest("phone", number.e164) if number else None,
            key_id=hasher.key_id,
            first_name=first,
            last_name=last,
            street=street,
            postal_code=postal,
            city="Oslo",
            name_address_hash=hasher.digest(
                "name_address", name_address_key(f"{first} {last}", street, postal)
            ),
            is_partner_lead=partner is not None,
            is_customer=customer is not None,
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key[0]
    if partner is not None:
        conn.execute(
            contact_sources.insert().values(
                contact_id=contact_id,
                source=f"partner:{partner}",
                source_ref=f"L{n}",
                imported_at=now,
            )
        )
    if consent_channels:
        conn.execute(
            consent_records.insert().values(
                contact_id=contact_id,
                source=f"partner:{partner}" if partner else "customer",
                source_ref=f"L{n}",
                given_at=given_at or now - timedelta(days=10),
                channels=consent_channels,
                wording_version="v3",
                captured_at="https://partner.example.com/skjema",
                company_named=company_named,
                explicit_call_request=False,
                multi_company_form=False,
                from_partner=partner is not None,
                recorded_at=now,
            )
        )
    if customer is not None:
        conn.execute(
            customers.insert().values(
                contact_id=contact_id,
                customer_id=customer.get("customer_id", f"C{n}"),
                contract_status=customer.get("contract_status", "active"),
                contract_end=customer.get("contract_end", date(2030, 1, 1)),
                product_categories=customer.get("product_categories", "alarm"),
                email_source="sale",
                email_from_sale=customer.get("email_from_sale", True),
                opt_out_offered=customer.get("opt_out_offered", True),
                imported_at=now,
            )
        )
    return int(contact_id)
