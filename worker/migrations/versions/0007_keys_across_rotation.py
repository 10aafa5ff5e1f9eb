"""keys across a rotation: ledger copies under other keys, register entries' own key

Revision ID: 0007
Revises: 0006

A key rotation keeps every "no" by writing what comes from a plaintext identity under
every configured key, and by copying what matched a contact under an older key when the
contact is re-keyed (suppression.rotation, campaigns.rekeying):

- ledger_entries.origin_id / origin_key_id: on a copy, the entry it copies and the key
  that entry was made under (NULL on an original);
- register_entries.key_id: the key of the row's hash; the rows already stored get their
  snapshot's key id, which is what they were hashed under;
- key_forwards: a digest that was re-keyed, and its new digest, for what holds the old
  one (a token, a running campaign's recipient);
- secret_keys: every key id the store holds digests under, filled here from the tables
  that hold key ids, so that a start-up without one of those keys refuses to run.

Both columns are added nullable, so no table is rebuilt (SQLite) and no existing row is
rewritten but the register's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Every table with a key_id column, as of this revision.
_KEYED = (
    "contacts", "ledger_entries", "register_snapshots", "unsubscribe_tokens", "review_items",
    "recipients", "inbound_events",
)  # fmt: skip

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.add_column("ledger_entries", sa.Column("origin_id", Id, nullable=True))
    op.add_column("ledger_entries", sa.Column("origin_key_id", sa.String(16), nullable=True))
    op.add_column("register_entries", sa.Column("key_id", sa.String(16), nullable=True))
    op.create_table(
        "key_forwards",
        sa.Column("old_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("old_key_id", sa.String(16), nullable=False),
        sa.Column("new_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("new_key_id", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("old_hash", name=op.f("pk_key_forwards")),
    )
    op.create_table(
        "secret_keys",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_secret_keys")),
    )
    held = " UNION ".join(
        f"SELECT DISTINCT key_id FROM {table} WHERE key_id IS NOT NULL" for table in _KEYED
    )
    op.execute(
        f"INSERT INTO secret_keys (key_id, first_seen_at) SELECT key_id, CURRENT_TIMESTAMP "
        f"FROM ({held}) AS held"
    )
    op.execute(
        "UPDATE register_entries SET key_id = (SELECT s.key_id FROM register_snapshots s"
        " WHERE s.id = register_entries.snapshot_id)"
    )


def downgrade() -> None:
    op.drop_table("secret_keys")
    op.drop_table("key_forwards")
    with op.batch_alter_table("register_entries") as batch:
        batch.drop_column("key_id")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("origin_key_id")
        batch.drop_column("origin_id")
