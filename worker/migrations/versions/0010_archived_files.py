"""archived files: where each partner file was archived, so that it expires and is erased

Revision ID: 0010
Revises: 0009

archived_files: one row per file the poller moved to a partner's archive folder (the
partner, the archived name, the import, when), with when an erasure last rewrote it and
when it was deleted (campaigns.archives). A table, not columns on `imports`: one import
can be archived more than once (the same content delivered again under another name is
imported once and archived twice), and each copy must expire and be erased.

Files archived before this revision are not known here: the first expiry run finds them
in the archive folders and records them, and they are deleted after the retention period
counted from then (docs/operations.md). A new table only: nothing existing is rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "archived_files",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("import_id", Id, nullable=True),
        sa.Column("partner", sa.String(80), nullable=False),
        sa.Column("archived_as", sa.String(500), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewritten_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archived_files")),
    )
    with op.batch_alter_table("archived_files") as batch:
        batch.create_index("ix_archived_files_import_id", ["import_id"])
        batch.create_index("ix_archived_files_partner_archived_as", ["partner", "archived_as"])


def downgrade() -> None:
    with op.batch_alter_table("archived_files") as batch:
        batch.drop_index("ix_archived_files_partner_archived_as")
        batch.drop_index("ix_archived_files_import_id")
    op.drop_table("archived_files")
