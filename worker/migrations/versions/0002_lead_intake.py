"""lead intake (partners, alarm contacts, retention)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # GD-1: when the written source notice went out to a lead not contacted in time.
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source_notice_sent_at", sa.DateTime(timezone=True), nullable=True)
        )
    # What the partner inbox listing showed last poll: a file is taken once it stood still.
    op.create_table(
        "sftp_observations",
        sa.Column("partner", sa.String(length=80), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner", "filename", name=op.f("pk_sftp_observations")),
    )


def downgrade() -> None:
    op.drop_table("sftp_observations")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("source_notice_sent_at")
