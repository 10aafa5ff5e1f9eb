"""opt-out intake (webhook events, delivery states)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbound_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_event_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("identity_kind", sa.String(length=16), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_events")),
        sa.UniqueConstraint(
            "provider",
            "provider_event_id",
            name=op.f("uq_inbound_events_provider_provider_event_id"),
        ),
    )
    op.create_table(
        "delivery_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_message_id", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("error_code", sa.String(length=20), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_events")),
        sa.UniqueConstraint(
            "provider",
            "provider_message_id",
            "status",
            name=op.f("uq_delivery_events_provider_provider_message_id_status"),
        ),
    )
    with op.batch_alter_table("delivery_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_events_provider_message_id", ["provider_message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_events", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_events_provider_message_id")
    op.drop_table("delivery_events")
    op.drop_table("inbound_events")
