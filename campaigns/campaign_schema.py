"""Tables of the campaign engine: campaigns, their recipients and batches.

One recipient row per audience member records the decision at launch (with rule
and evidence), the send-time check, and the state the send ended in. The row, not
the broker, is the source of truth: a lost message is re-enqueued from it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from suppression.schema import Id, metadata

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("channel", String(8), nullable=False),  # email | sms | call
    Column("purpose", String(80), nullable=False),  # a product category (ES-2, TP-3)
    Column("template", Text, nullable=False),
    Column("subject", String(300), nullable=False, default=""),
    Column("audience", Text, nullable=False),  # JSON: campaigns.audience.Audience
    Column("sender", Text, nullable=False),  # JSON: from name/address, SMS sender, caller id
    Column("rate_limit", Integer, nullable=True),  # messages per second
    Column("segment_limit", Integer, nullable=True),  # SMS segments
    Column("batch_size", Integer, nullable=False, default=500),
    Column("state", String(12), nullable=False),  # draft | running | paused | done | cancelled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("launched_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id"), nullable=False),
    Column("contact_id", Id, nullable=False),
    Column("key_hash", LargeBinary(32), nullable=False),  # the channel identity's hash
    Column("decision", String(40), nullable=False),
    Column("rule", String(8), nullable=False),
    Column("basis", String(40), nullable=False, default=""),
    Column("evidence", Text, nullable=False, default=""),
    Column("state", String(20), nullable=False),
    Column("batch_no", Integer, nullable=True),
    Column("token_id", BigInteger, nullable=True),
    Column("checked_at", DateTime(timezone=True), nullable=True),  # the send-time check
    Column("send_decision", String(40), nullable=True),
    Column("send_rule", String(8), nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("provider_id", String(200), nullable=True),
    Column("error", String(300), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("campaign_id", "contact_id"),
    Index("ix_recipients_campaign_id_batch_no", "campaign_id", "batch_no"),
    Index("ix_recipients_contact_id_sent_at", "contact_id", "sent_at"),
    Index("ix_recipients_provider_id", "provider_id"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id"), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("state", String(12), nullable=False),  # queued | running | waiting | done
    Column("size", Integer, nullable=False),
    Column("enqueued_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("not_before", DateTime(timezone=True), nullable=True),  # quiet hours (ES-6)
    Column("attempts", Integer, nullable=False, default=0),
    UniqueConstraint("campaign_id", "batch_no"),
)

# Recipient states. Final: sent, failed, excluded, excluded_at_send, cancelled;
# `unknown` is final until reconciled.
EXCLUDED = "excluded"
QUEUED = "queued"
SENDING = "sending"
STAGED = "staged"  # handed to a provider that sends the whole campaign at once
SENT = "sent"
FAILED = "failed"
EXCLUDED_AT_SEND = "excluded_at_send"
UNKNOWN = "unknown"
CANCELLED = "cancelled"
STATES = (EXCLUDED, QUEUED, SENDING, STAGED, SENT, FAILED, EXCLUDED_AT_SEND, UNKNOWN, CANCELLED)
FINAL_STATES = (EXCLUDED, SENT, FAILED, EXCLUDED_AT_SEND, UNKNOWN, CANCELLED)
