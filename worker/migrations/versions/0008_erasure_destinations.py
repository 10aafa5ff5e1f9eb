"""erasure destinations: an erasure reaches the processors that hold the person (GD-5)

Revision ID: 0008
Revises: 0007

One row per erasure (`outreach forget`) and processor (`mailchimp:<list_id>`, `twilio`),
with its status (pending, done, failed), the last failure's reason, the attempts and the
next one, and what the processor needs to find the person without our plaintext: the
Mailchimp subscriber hash (cleared once done) or the Twilio message SIDs (a JSON list).
A new table only: nothing existing is rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "erasure_destinations",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("erasure_ref", sa.String(32), nullable=False),
        sa.Column("contact_id", Id, nullable=True),
        sa.Column("destination", sa.String(60), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subscriber_hash", sa.String(32), nullable=True),
        sa.Column("message_sids", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_destinations")),
        sa.UniqueConstraint(
            "erasure_ref",
            "destination",
            name=op.f("uq_erasure_destinations_erasure_ref_destination"),
        ),
    )
    with op.batch_alter_table("erasure_destinations") as batch:
        batch.create_index(
            "ix_erasure_destinations_status_next_attempt_at", ["status", "next_attempt_at"]
        )
        batch.create_index("ix_erasure_destinations_contact_id", ["contact_id"])


def downgrade() -> None:
    with op.batch_alter_table("erasure_destinations") as batch:
        batch.drop_index("ix_erasure_destinations_contact_id")
        batch.drop_index("ix_erasure_destinations_status_next_attempt_at")
    op.drop_table("erasure_destinations")
