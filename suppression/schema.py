"""Tables of the suppression core. Keyed hashes only: no plaintext identity here (GD-4).

`metadata` is shared by every package; `campaigns.schema` adds its tables to it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids that are plain INTEGER on SQLite, so that they autoincrement there.
Id = BigInteger().with_variant(Integer(), "sqlite")

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_hash", LargeBinary(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("identity_kind", String(16), nullable=False),  # email | phone | name_address
    Column("kind", String(16), nullable=False),  # suppression | exclusion | consent
    Column("scope", String(8), nullable=False),  # all | email | sms | phone | post
    Column("reason", String(40), nullable=False),
    Column("source", String(80), nullable=False),
    Column("source_event", String(200), nullable=False),
    Column("evidence_ref", Text, nullable=False, default=""),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(80), nullable=False),
    # A copy of entry `origin_id` (made under `origin_key_id`) under another key: the
    # same no, written under every configured key or re-keyed (suppression.rotation).
    Column("origin_id", Id, nullable=True),
    Column("origin_key_id", String(16), nullable=True),
    UniqueConstraint("key_hash", "source", "source_event"),
    Index("ix_ledger_entries_key_hash", "key_hash"),
)

register_snapshots = Table(
    "register_snapshots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("snapshot_date", Date, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("phone_reservations", Integer, nullable=False),
    Column("post_reservations", Integer, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("active", Boolean, nullable=False, default=False),
)

register_entries = Table(
    "register_entries",
    metadata,
    Column("snapshot_id", Id, ForeignKey("register_snapshots.id"), nullable=False),
    Column("key_hash", LargeBinary(32), nullable=False),
    # The key of this hash: a snapshot is written under every configured key. NULL in
    # rows loaded before 0007 means the snapshot's own key_id.
    Column("key_id", String(16), nullable=True),
    Column("identity_kind", String(16), nullable=False),  # phone | name_address
    Column("reserved_phone", Boolean, nullable=False),
    Column("reserved_post", Boolean, nullable=False),
    Index("ix_register_entries_key_hash", "key_hash"),
    Index("ix_register_entries_snapshot_id", "snapshot_id"),
)

# Every key id the store has held digests under (campaigns.keyring): a start-up whose
# configured keys miss one that still has rows refuses to run, naming it.
secret_keys = Table(
    "secret_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
)

# A digest that was re-keyed: what holds the old one and is not re-hashed (a token, a
# recipient of a running campaign) is followed to the new one (suppression.rotation).
key_forwards = Table(
    "key_forwards",
    metadata,
    Column("old_hash", LargeBinary(32), primary_key=True),
    Column("old_key_id", String(16), nullable=False),
    Column("new_hash", LargeBinary(32), nullable=False),
    Column("new_key_id", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

unsubscribe_tokens = Table(
    "unsubscribe_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_hash", LargeBinary(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("identity_kind", String(16), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("campaign_id", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row: this database's random id, which every unsubscribe token signs (so that a
# token from another database, whose ids mean other people, never acts here), and the
# highest token and recipient ids issued before tokens signed it (migration 0009): those
# tokens keep working unbound.
installation = Table(
    "installation",
    metadata,
    Column("singleton", Integer, primary_key=True, autoincrement=False),
    Column("installation_id", LargeBinary(16), nullable=False),
    Column("legacy_token_max", BigInteger, nullable=False),
    Column("legacy_recipient_max", BigInteger, nullable=False),
    CheckConstraint("singleton = 1", name="one_installation"),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(40), nullable=False),  # sms | mailbox | ...
    Column("source_event", String(200), nullable=False, unique=True),
    Column("key_hash", LargeBinary(32), nullable=True),
    Column("key_id", String(16), nullable=True),
    Column("identity_kind", String(16), nullable=True),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolution", String(40), nullable=True),
    Column("resolved_by", String(80), nullable=True),
)
