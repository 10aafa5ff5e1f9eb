"""wrong numbers: the (contact, number) pairings the call centre reported as wrong

Revision ID: 0011
Revises: 0010

wrong_numbers: one row per `wrong_number` call outcome and configured key, holding the
keyed digest of the pairing of a contact and the number that was detached from it
(campaigns.calllist.outcomes), the campaign and when it was reported. The contact's phone
itself is cleared by the outcome import; this row is what keeps a later import of the same
person with the same number from attaching it again without newer consent
(campaigns.contactlookup). A new table only: nothing existing is rewritten. Wrong numbers
reported before this revision stay what they were (a phone-scope ledger entry).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "wrong_numbers",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("pairing_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("campaign_id", Id, nullable=True),
        sa.Column("source_event", sa.String(200), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wrong_numbers")),
        sa.UniqueConstraint(
            "pairing_hash",
            "source_event",
            name=op.f("uq_wrong_numbers_pairing_hash_source_event"),
        ),
    )
    with op.batch_alter_table("wrong_numbers") as batch:
        batch.create_index("ix_wrong_numbers_contact_id", ["contact_id"])


def downgrade() -> None:
    with op.batch_alter_table("wrong_numbers") as batch:
        batch.drop_index("ix_wrong_numbers_contact_id")
    op.drop_table("wrong_numbers")
