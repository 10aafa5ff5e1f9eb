"""recipient tokens: the unsubscribe link names the recipient row

A launch writes one recipient row per audience member anyway; the link in a message
now names that row (with the key id of its hash) instead of a token row of its own,
so a launch of a million people writes a million rows, not two million. Token rows
issued before stay valid. The provider id index leaves out the rows not yet sent; the
unique (contact, campaign) key, contact first, also serves the frequency cap's look-up
by contact, which had an index of its own. The foreign key to campaigns goes: its
check per row was half of what storing a million recipients cost the server, and the
only writer of recipients (a launch) writes them for the campaign row it holds locked.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SENT_ONLY = sa.text("provider_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("recipients") as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch_op.drop_constraint("fk_recipients_campaign_id_campaigns", type_="foreignkey")
        batch_op.drop_constraint("uq_recipients_campaign_id_contact_id", type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_recipients_contact_id_campaign_id"), ["contact_id", "campaign_id"]
        )
        batch_op.drop_index("ix_recipients_contact_id_sent_at")
        batch_op.drop_index("ix_recipients_provider_id")
        batch_op.create_index(
            "ix_recipients_provider_id",
            ["provider_id"],
            unique=False,
            postgresql_where=_SENT_ONLY,
            sqlite_where=_SENT_ONLY,
        )


def downgrade() -> None:
    with op.batch_alter_table("recipients") as batch_op:
        batch_op.drop_index("ix_recipients_provider_id")
        batch_op.create_index("ix_recipients_provider_id", ["provider_id"], unique=False)
        batch_op.create_index(
            "ix_recipients_contact_id_sent_at", ["contact_id", "sent_at"], unique=False
        )
        batch_op.drop_constraint("uq_recipients_contact_id_campaign_id", type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_recipients_campaign_id_contact_id"), ["campaign_id", "contact_id"]
        )
        batch_op.create_foreign_key(
            op.f("fk_recipients_campaign_id_campaigns"), "campaigns", ["campaign_id"], ["id"]
        )
        batch_op.drop_column("key_id")
