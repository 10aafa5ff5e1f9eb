"""installation: this database's random id, which unsubscribe tokens sign; exported files

Revision ID: 0009
Revises: 0008

Ids are unique only within one database: a token signed over an id alone would act in
another database under the same key for whoever holds that id there. From here on every
token signs the installation id too (suppression.tokens, flagged in its first byte).

Tokens issued before this revision carry no such flag; they keep working for the ids
issued up to now, recorded here as legacy_token_max (unsubscribe_tokens) and
legacy_recipient_max (recipients). An unflagged token above those ids is refused.

exported_files: the call lists written for the call centre (path, campaign), so that an
erasure rewrites them and they expire (campaigns.filetraces). Lists exported before this
revision are not known; docs/operations.md says so.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "installation",
        sa.Column("singleton", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("installation_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("legacy_token_max", sa.BigInteger(), nullable=False),
        sa.Column("legacy_recipient_max", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("singleton = 1", name=op.f("ck_installation_one_installation")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_installation")),
    )
    conn = op.get_bind()
    token_max = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM unsubscribe_tokens"))
    recipient_max = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM recipients"))
    op.bulk_insert(
        table,
        [
            {
                "singleton": 1,
                "installation_id": secrets.token_bytes(16),
                "legacy_token_max": int(token_max.scalar_one()),
                "legacy_recipient_max": int(recipient_max.scalar_one()),
            }
        ],
    )

    op.create_table(
        "exported_files",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exported_files")),
    )


def downgrade() -> None:
    op.drop_table("exported_files")
    op.drop_table("installation")
