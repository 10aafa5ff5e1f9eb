"""Tables of the opt-out intake: every provider event we received, and delivery states.

No plaintext identity here either: the identity of an inbound event is its keyed
hash, and the stored payloads keep only the provider's non-personal fields (GD-4).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from suppression.schema import Id, metadata

# One row per provider event (an inbound SMS, a Mailchimp webhook, a mail in the
# company mailbox), whatever it led to: a ledger entry, a review item, or nothing
# but this record (START, HELP, profile updates, ALL-5). A provider's retry of the
# same event finds its row and changes nothing.
inbound_events = Table(
    "inbound_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(40), nullable=False),  # twilio | mailchimp | mailbox
    Column("provider_event_id", String(200), nullable=False),
    Column("name", String(40), nullable=False),  # our event name (events.py)
    Column("action", String(40), nullable=False),  # suppress | review | record | ...
    Column("outcome", String(40), nullable=False),  # what recording it did
    Column("key_hash", LargeBinary(32), nullable=True),
    Column("key_id", String(16), nullable=True),
    Column("identity_kind", String(16), nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("raw", Text, nullable=False, default="{}"),  # JSON, personal fields removed
    UniqueConstraint("provider", "provider_event_id"),
)

# Delivery states from provider status callbacks (Twilio), one row per state.
delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(40), nullable=False),
    Column("provider_message_id", String(80), nullable=False),
    Column("status", String(40), nullable=False),
    Column("error_code", String(20), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("raw", Text, nullable=False, default="{}"),  # JSON, personal fields removed
    UniqueConstraint("provider", "provider_message_id", "status"),
    Index("ix_delivery_events_provider_message_id", "provider_message_id"),
)
