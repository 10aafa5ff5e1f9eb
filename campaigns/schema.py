"""Tables of contacts, their sources and the evidence the policy needs.

Plaintext identities live only here (and only as long as needed: GD-2 retention,
ALL-4 erasure). Every identity column has its keyed hash beside it, so that the
ledger, register and campaigns can match without reading plaintext.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from suppression.schema import Id, metadata

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=True),  # canonical spelling
    Column("email_hash", LargeBinary(32), nullable=True, unique=True),
    Column("phone", String(20), nullable=True),  # E.164
    Column("phone_type", String(32), nullable=True),
    Column("phone_hash", LargeBinary(32), nullable=True, unique=True),
    Column("key_id", String(16), nullable=False),
    Column("first_name", String(200), nullable=True),
    Column("last_name", String(200), nullable=True),
    Column("street", String(300), nullable=True),
    Column("postal_code", String(10), nullable=True),
    Column("city", String(120), nullable=True),
    Column("name_address_hash", LargeBinary(32), nullable=True),
    Column("is_partner_lead", Boolean, nullable=False, default=False),
    Column("is_customer", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("first_contacted_at", DateTime(timezone=True), nullable=True),
    Column("last_contacted_at", DateTime(timezone=True), nullable=True),
    # GD-1: when the written source notice went to a partner lead never contacted in time.
    Column("source_notice_sent_at", DateTime(timezone=True), nullable=True),
)

imports = Table(
    "imports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(80), nullable=False),  # partner:<name> | crm | register
    Column("filename", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("rows_total", Integer, nullable=False, default=0),
    Column("accepted", Integer, nullable=False, default=0),
    Column("refused", Integer, nullable=False, default=0),
    Column("duplicates", Integer, nullable=False, default=0),
    Column("merged", Integer, nullable=False, default=0),
    UniqueConstraint("source", "sha256"),
)

import_errors = Table(
    "import_errors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("import_id", Id, ForeignKey("imports.id"), nullable=False),
    Column("row", Integer, nullable=False),
    Column("field", String(80), nullable=False),
    Column("reason", String(300), nullable=False),
    Index("ix_import_errors_import_id", "import_id"),
)

# contact_sources and consent_records have no foreign keys (migration 0006): checked
# row by row they cost more than half of the database's time of a partner import. The
# ids are guaranteed instead: import_id is the import's own row, inserted in the same
# transaction (imports are never deleted); contact_id is one campaigns.merge.Merger
# created or locked (FOR NO KEY UPDATE) in the same transaction; and the trigger
# `contacts_keep_referenced` refuses to delete a contact they still refer to.
contact_sources = Table(
    "contact_sources",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, nullable=False),  # contacts.id (see above)
    Column("source", String(80), nullable=False),  # partner:<name> | crm
    Column("source_ref", String(200), nullable=True),  # partner's lead id / customer id
    Column("import_id", Id, nullable=True),  # imports.id
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Index("ix_contact_sources_contact_id", "contact_id"),
)

consent_records = Table(
    "consent_records",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, nullable=False),  # contacts.id (see contact_sources)
    Column("import_id", Id, nullable=True),  # imports.id
    Column("source", String(80), nullable=False),
    Column("source_ref", String(200), nullable=True),
    Column("given_at", DateTime(timezone=True), nullable=False),
    Column("channels", String(40), nullable=False),  # comma-separated: email,sms,call,post
    Column("wording_version", String(80), nullable=False),
    Column("captured_at", String(500), nullable=False),
    Column("company_named", String(200), nullable=False),
    Column("explicit_call_request", Boolean, nullable=False, default=False),
    Column("multi_company_form", Boolean, nullable=False, default=False),
    Column("from_partner", Boolean, nullable=False, default=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_consent_records_contact_id", "contact_id"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False, unique=True),
    Column("customer_id", String(80), nullable=False, unique=True),
    Column("contract_status", String(20), nullable=False),  # active | ended | ...
    Column("contract_end", Date, nullable=True),
    Column("product_categories", String(400), nullable=False, default=""),
    Column("email_source", String(80), nullable=False, default=""),
    Column("email_from_sale", Boolean, nullable=False, default=False),
    Column("opt_out_offered", Boolean, nullable=False, default=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

# What an SFTP (or local) inbox listing showed last time, per partner file: a file is
# taken only once its size and mtime stood still across two polls (or a `.done`
# marker is there), so a file still being uploaded is never read half-written.
sftp_observations = Table(
    "sftp_observations",
    metadata,
    Column("partner", String(80), primary_key=True),
    Column("filename", String(500), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime", BigInteger, nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
)

# Every partner file the poller archived (campaigns.polling), one row per copy in a
# partner's archive folder: the same content delivered twice under two names is one
# import and two archived files. campaigns.archives deletes them after the retention
# period (deleted_at) and rewrites them without an erased person (GD-5). import_id is
# NULL for a file found in the archive folder that no import is known for (archived
# before migration 0010, or by a poller that died between the move and this row).
archived_files = Table(
    "archived_files",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("import_id", Id, nullable=True),  # imports.id
    Column("partner", String(80), nullable=False),  # the name in the partners file
    Column("archived_as", String(500), nullable=False),  # the name in the archive folder
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Column("rewritten_at", DateTime(timezone=True), nullable=True),  # the last erasure
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Index("ix_archived_files_import_id", "import_id"),
    Index("ix_archived_files_partner_archived_as", "partner", "archived_as"),
)

# GD-5: one row per erasure (`outreach forget`) and processor that holds the person
# (campaigns.erasure), retried until the processor confirms. It keeps what the processor
# needs to find the person once our plaintext is gone: for `mailchimp:<list_id>` the
# subscriber hash (MD5 of the lower-cased email, Mailchimp's member id: an unkeyed hash of
# the email, cleared once done), for `twilio` the SIDs of the messages (a JSON list).
erasure_destinations = Table(
    "erasure_destinations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("erasure_ref", String(32), nullable=False),  # one per forget (uuid4 hex)
    Column("contact_id", Id, nullable=True),  # contacts.id, for explain (NULL: no contact)
    Column("destination", String(60), nullable=False),  # mailchimp:<list_id> | twilio
    Column("status", String(8), nullable=False),  # pending | done | failed
    Column("reason", String(300), nullable=True),  # the last failure, no identity in it
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True),
    Column("subscriber_hash", String(32), nullable=True),
    Column("message_sids", Text, nullable=True),
    UniqueConstraint("erasure_ref", "destination"),
    Index("ix_erasure_destinations_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_erasure_destinations_contact_id", "contact_id"),
)

# A number the call centre reported as not this person's (a `wrong_number` outcome,
# campaigns.calllist.outcomes): the contact's phone was detached, and this row keeps the
# pairing, so that an import bringing the same person with the same number again does not
# re-attach it without new evidence (campaigns.contactlookup.pairing). `pairing_hash` is
# keyed: the SHA-256 of the contact id and the number's keyed digest under `key_id`, one row
# per configured key at the time of the report (like a ledger entry). No plaintext: the
# number itself is gone from the contact. `forget` deletes the contact's rows (ALL-4).
wrong_numbers = Table(
    "wrong_numbers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, nullable=False),  # contacts.id (explain, erasure)
    Column("pairing_hash", LargeBinary(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("campaign_id", Id, nullable=True),  # the call list the outcome came back on
    Column("source_event", String(200), nullable=False),  # <reference>:wrong_number
    Column("reported_at", DateTime(timezone=True), nullable=False),  # the outcome's time
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("pairing_hash", "source_event"),
    Index("ix_wrong_numbers_contact_id", "contact_id"),
)

# Columns that hold plaintext personal data, by table: what erasure must clear.
PLAINTEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "phone", "first_name", "last_name", "street", "postal_code", "city"),
}
