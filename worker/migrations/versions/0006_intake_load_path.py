"""intake load path: no per-row foreign-key checks on consent_records and contact_sources

Revision ID: 0006
Revises: 0005

A partner file of a million rows writes a million consent records and a million
contact sources. PostgreSQL checks a foreign key with one query per inserted row
(`SELECT 1 FROM contacts WHERE id = $1 FOR KEY SHARE`): the four keys of these two
tables cost more than half of the server's time of an import. What they guarded is
guaranteed instead by the code and by one trigger:

- import_id: written only by the import that inserted the `imports` row in the same
  transaction (campaigns.intake, campaigns.customers); imports are never deleted.
- contact_id, on insert: written only with ids `campaigns.merge.Merger` returned in
  the same transaction: contacts it created, or contacts its lookup locked FOR KEY
  SHARE (the lock the foreign key took, once per contact instead of once per row),
  so none can be deleted before the import commits.
- contact_id, on delete of a contact: the trigger `contacts_keep_referenced` refuses
  to delete a contact that consent records or contact sources still refer to (the
  foreign key's ON DELETE NO ACTION). It runs after the statement with a new
  snapshot, so a purge that waited for an import's lock sees the import's rows and
  fails, as it did with the foreign key. On SQLite it is a row trigger.

ix_contacts_postal_code is dropped: nothing looks contacts up by postal code (the
campaign filter is a LIKE prefix, which this B-tree does not serve under the
databases' C.UTF-8 collation nor on SQLite), and it cost a tenth of the time of
writing a contact.

Note for later migrations: SQLite batch mode recreates a table without its triggers;
a batch operation on `contacts` must create `contacts_keep_referenced` again.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FOREIGN_KEYS = (
    ("consent_records", "contact_id", "contacts"),
    ("consent_records", "import_id", "imports"),
    ("contact_sources", "contact_id", "contacts"),
    ("contact_sources", "import_id", "imports"),
)

_PG_FUNCTION = """
CREATE FUNCTION contacts_keep_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM gone
        WHERE EXISTS (SELECT 1 FROM consent_records r WHERE r.contact_id = gone.id)
           OR EXISTS (SELECT 1 FROM contact_sources s WHERE s.contact_id = gone.id)
    ) THEN
        RAISE EXCEPTION 'a deleted contact is still referenced by consent_records or contact_sources'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER contacts_keep_referenced AFTER DELETE ON contacts
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
EXECUTE FUNCTION contacts_keep_referenced()
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER contacts_keep_referenced BEFORE DELETE ON contacts
WHEN EXISTS (SELECT 1 FROM consent_records WHERE contact_id = OLD.id)
  OR EXISTS (SELECT 1 FROM contact_sources WHERE contact_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'a deleted contact is still referenced by consent_records or contact_sources');
END
"""


def upgrade() -> None:
    for table, column, referred in _FOREIGN_KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_{column}_{referred}", type_="foreignkey")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_postal_code")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER contacts_keep_referenced ON contacts")
        op.execute("DROP FUNCTION contacts_keep_referenced()")
    else:
        op.execute("DROP TRIGGER contacts_keep_referenced")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_postal_code", ["postal_code"], unique=False)
    for table, column, referred in _FOREIGN_KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                f"fk_{table}_{column}_{referred}", referred, [column], ["id"]
            )
