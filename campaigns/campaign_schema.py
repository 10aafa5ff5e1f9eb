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
    text,
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
    # No foreign key: its check per row was half of what a launch of a million rows
    # cost the server. Only a launch writes recipients, for the campaign row it reads and
    # moves (locks) in the same transaction, and campaigns are never deleted.
    Column("campaign_id", Id, nullable=False),
    Column("contact_id", Id, nullable=False),
    Column("key_hash", LargeBinary(32), nullable=False),  # the channel identity's hash
    Column("decision", String(40), nullable=False),
    Column("rule", String(8), nullable=False),
    Column("basis", String(40), nullable=False, default=""),
    Column("evidence", Text, nullable=False, default=""),
    Column("state", String(20), nullable=False),
    Column("batch_no", Integer, nullable=True),
    # The unsubscribe token's row for recipients launched before tokens named recipients
    # (migration 0005); since then the token names the recipient row itself.
    Column("token_id", BigInteger, nullable=True),
    Column("key_id", String(16), nullable=True),  # the key of key_hash (the token's target)
    Column("checked_at", DateTime(timezone=True), nullable=True),  # the send-time check
    Column("send_decision", String(40), nullable=True),
    Column("send_rule", String(8), nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("provider_id", String(200), nullable=True),
    Column("error", String(300), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Contact first: it also serves the frequency cap's look-up of a person's recent
    # sends (ALL-8) across campaigns, so a launch maintains one index fewer.
    UniqueConstraint("contact_id", "campaign_id"),
    Index("ix_recipients_campaign_id_batch_no", "campaign_id", "batch_no"),
    # Partial: a launch writes a million rows with no provider id yet.
    Index(
        "ix_recipients_provider_id",
        "provider_id",
        postgresql_where=text("provider_id IS NOT NULL"),
        sqlite_where=text("provider_id IS NOT NULL"),
    ),
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

# Files we wrote with people's plaintext outside the store (call lists for the call
# centre): where, for which campaign, so that `forget` can rewrite them and they expire
# (campaigns.filetraces).
exported_files = Table(
    "exported_files",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # calllist
    Column("campaign_id", Id, nullable=False),
    Column("path", Text, nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
)

# Recipient states. Final: sent, listed, failed, excluded, excluded_at_send, cancelled;
# `unknown` is final until reconciled.
EXCLUDED = "excluded"
QUEUED = "queued"
SENDING = "sending"
STAGED = "staged"  # handed to a provider that sends the whole campaign at once
SENT = "sent"
# A call campaign's recipient on its call list, not yet handed to the call centre: the
# export makes it `sent` (and only then does it count as a contact, ALL-8), so a list that
# is never exported contacts no one (campaigns.calllist.export).
LISTED = "listed"
FAILED = "failed"
EXCLUDED_AT_SEND = "excluded_at_send"
UNKNOWN = "unknown"
CANCELLED = "cancelled"
# The kind of identity a campaign's channel reaches a person by (and an unsubscribe from
# it stops).
IDENTITY_KIND = {"email": "email", "sms": "phone", "call": "phone", "post": "name_address"}
STATES = (
    EXCLUDED, QUEUED, SENDING, STAGED, LISTED, SENT, FAILED, EXCLUDED_AT_SEND, UNKNOWN, CANCELLED,
)  # fmt: skip
FINAL_STATES = (EXCLUDED, LISTED, SENT, FAILED, EXCLUDED_AT_SEND, UNKNOWN, CANCELLED)
