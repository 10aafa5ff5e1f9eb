"""People as the store holds them: find by identity, gather the policy's facts, erase.

Everything here works on keyed hashes; plaintext is read only to show it back to
the compliance officer (`explain`, GD-3) and cleared by `forget` (ALL-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, delete, select, update

from campaigns import archives, erasure
from campaigns.contactlookup import lock_for_writing
from campaigns.optouts.review import clear_texts
from campaigns.schema import (
    PLAINTEXT_COLUMNS,
    consent_records,
    contact_sources,
    contacts,
    customers,
)
from suppression import ledger as ledger_mod
from suppression.identity import Identity
from suppression.keys import Hasher, KeyedHash
from suppression.ledger import Ledger, Status
from suppression.policy import ConsentFacts, CustomerFacts, PersonFacts, RegisterFacts
from suppression.register import active_snapshot, lookup, name_address_key


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Person:
    """What the store holds for one identity."""

    identity: Identity
    digests: list[bytes]
    contact: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    customer: dict[str, Any] | None = None


def find(conn: Connection, hasher: Hasher, ident: Identity, *, lock: bool = False) -> Person:
    """The person with this identity and what the store holds of them; with `lock`, their
    contact row locked FOR UPDATE (waiting for a transaction that holds it) first."""
    digests = hasher.all_digests(ident.kind, ident.value)
    column = contacts.c.email_hash if ident.kind == "email" else contacts.c.phone_hash
    query = select(contacts).where(column.in_(digests))
    row = conn.execute(query.with_for_update() if lock else query).first()
    person = Person(ident, digests)
    if row is None:
        return person
    person.contact = dict(row._mapping)
    contact_id = person.contact["id"]
    person.sources = [
        dict(r._mapping)
        for r in conn.execute(
            select(contact_sources).where(contact_sources.c.contact_id == contact_id)
        )
    ]
    person.consents = [
        dict(r._mapping)
        for r in conn.execute(
            select(consent_records)
            .where(consent_records.c.contact_id == contact_id)
            .order_by(consent_records.c.given_at)
        )
    ]
    cust = conn.execute(select(customers).where(customers.c.contact_id == contact_id)).first()
    person.customer = dict(cust._mapping) if cust else None
    return person


# The columns of a consent record the policy reads, in `consent_from_values` order.
CONSENT_FACT_COLUMNS = (
    "id", "given_at", "channels", "wording_version", "captured_at", "company_named",
    "source", "from_partner", "explicit_call_request", "multi_company_form",
)  # fmt: skip


@lru_cache(maxsize=256)
def channel_set(channels: str) -> frozenset[str]:
    # A handful of distinct spellings ("email,sms", ...) over millions of records.
    return frozenset(c for c in channels.split(",") if c)


def consent_facts(row: Any) -> ConsentFacts:
    return consent_from_values(*(row[name] for name in CONSENT_FACT_COLUMNS))


def consent_from_values(
    record_id: int,
    given_at: datetime,
    channels: str,
    wording_version: str,
    captured_at: str,
    company_named: str,
    source: str,
    from_partner: bool,
    explicit_call_request: bool,
    multi_company_form: bool,
) -> ConsentFacts:
    """A consent record's facts from its CONSENT_FACT_COLUMNS (bulk readers get tuples)."""
    return ConsentFacts(
        f"consent:{record_id}",
        given_at if given_at.tzinfo else given_at.replace(tzinfo=UTC),
        channel_set(str(channels)),
        wording_version,
        captured_at,
        company_named,
        source,
        bool(from_partner),
        bool(explicit_call_request),
        bool(multi_company_form),
    )


# The columns of a customer the policy reads, in `customer_from_values` order.
CUSTOMER_FACT_COLUMNS = (
    "customer_id", "contract_status", "contract_end", "product_categories",
    "email_from_sale", "opt_out_offered",
)  # fmt: skip


@lru_cache(maxsize=256)
def _categories(text: str) -> frozenset[str]:
    # A few distinct category lists over many customers.
    return frozenset(c.strip() for c in text.split(",") if c.strip())


def customer_facts(row: Any) -> CustomerFacts:
    return customer_from_values(*(row[name] for name in CUSTOMER_FACT_COLUMNS))


def customer_from_values(
    customer_id: str,
    contract_status: str,
    contract_end: date | None,
    product_categories: str,
    email_from_sale: bool,
    opt_out_offered: bool,
) -> CustomerFacts:
    """A customer's facts from its CUSTOMER_FACT_COLUMNS (bulk readers get tuples)."""
    return CustomerFacts(
        customer_id=customer_id,
        contract_active=contract_status == "active",
        contract_end=contract_end,
        product_categories=_categories(str(product_categories)),
        email_from_sale=bool(email_from_sale),
        opt_out_offered=bool(opt_out_offered),
    )


def ledger_status(conn: Connection, hasher: Hasher, person: Person) -> Status:
    """Ledger entries for every identity of the person (email, phone, name+address).

    For a contact, under the contact's key, as a launch reads them (every entry that
    matches a contact exists under its key, suppression.keys); so `explain` names the
    same entries as the launch's evidence. For an identity without a contact, under
    every configured key."""
    digests = list(person.digests)
    if person.contact:
        key_id = str(person.contact["key_id"])
        ident = person.identity
        digests = [hasher.digest(ident.kind, ident.value, key_id)] if hasher.knows(key_id) else []
        for col in ("email_hash", "phone_hash", "name_address_hash"):
            if person.contact.get(col):
                digests.append(bytes(person.contact[col]))
    status = Status()
    seen: set[int] = set()
    for _digest, found in Ledger(conn, hasher).screen(set(digests)):
        for entry in found.entries:
            if entry.id not in seen:
                seen.add(entry.id)
                status.entries.append(entry)
    status.entries.sort(key=lambda e: (e.occurred_at, e.id))
    status.entries = ledger_mod.distinct_facts(status.entries)
    return status


def facts(
    conn: Connection, hasher: Hasher, person: Person, channel: str
) -> tuple[PersonFacts, RegisterFacts]:
    """The policy's input for one person on one channel."""
    status = ledger_status(conn, hasher, person)
    consents = tuple(consent_facts(c) for c in person.consents)
    customer = customer_facts(person.customer) if person.customer else None
    has_address = True
    if person.contact is not None:
        need = {
            "email": "email_hash",
            "sms": "phone_hash",
            "call": "phone_hash",
            "post": "name_address_hash",
        }[channel]
        has_address = person.contact.get(need) is not None
    elif channel == "post" or (channel in ("sms", "call")) != (person.identity.kind == "phone"):
        has_address = False
    snapshot = active_snapshot(conn)
    register = RegisterFacts(None, None)
    if snapshot is not None:
        register_digests = list(person.digests)
        if person.contact and person.contact.get("name_address_hash"):
            register_digests.append(bytes(person.contact["name_address_hash"]))
        if person.contact and person.contact.get("phone_hash"):
            register_digests.append(bytes(person.contact["phone_hash"]))
        hit = lookup(conn, snapshot, register_digests)
        register = RegisterFacts(
            snapshot.snapshot_date,
            snapshot.loaded_at,
            reserved_phone=bool(hit and hit.reserved_phone),
            reserved_post=bool(hit and hit.reserved_post),
        )
    person_facts = PersonFacts(
        consents=consents, customer=customer, ledger=status, has_address=has_address
    )
    return person_facts, register


def _name_address(contact: dict[str, Any]) -> str | None:
    """The contact's name+address key as imports hash it, or None when erased."""
    name = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p)
    street, postal = contact.get("street"), contact.get("postal_code")
    if not name or not street or not postal:
        return None
    return name_address_key(name, street, postal)


def identities_of(hasher: Hasher, person: Person) -> list[tuple[str, Sequence[KeyedHash]]]:
    """Every identity of the person, each under every key it can be hashed under: the
    plaintext ones under every configured key, an identity the contact holds only as a
    hash (erased before) under the contact's own key."""
    ident = person.identity
    identities: list[tuple[str, Sequence[KeyedHash]]] = [(ident.kind, hasher.hash_all(ident))]
    if person.contact:
        contact = person.contact
        for col, kind, value in (
            ("email_hash", "email", contact.get("email")),
            ("phone_hash", "phone", contact.get("phone")),
            ("name_address_hash", "name_address", _name_address(contact)),
        ):
            digest = contact.get(col)
            if digest is None:
                continue
            keys: Sequence[KeyedHash] = (
                hasher.keyed_all(kind, value)
                if value
                else (KeyedHash(str(contact["key_id"]), bytes(digest)),)
            )
            known = {k.digest for _kind, ks in identities for k in ks}
            fresh = [k for k in keys if k.digest not in known]
            if bytes(digest) not in known and all(k.digest != bytes(digest) for k in fresh):
                fresh.append(KeyedHash(str(contact["key_id"]), bytes(digest)))
            if fresh:
                identities.append((kind, fresh))
    return identities


@dataclass(frozen=True)
class FileTargets:
    """What the files outside the store need to find a person after their erasure
    (campaigns.filetraces, campaigns.archives): read before `forget` clears it."""

    contact_id: int | None
    import_ids: list[int]
    identities: list[tuple[str, Sequence[KeyedHash]]]


def file_targets(conn: Connection, hasher: Hasher, ident: Identity) -> FileTargets:
    """In the erasure's transaction, before `forget` (which deletes the sources)."""
    lock_for_writing(conn)
    person = find(conn, hasher, ident, lock=True)
    if not person.contact:
        return FileTargets(None, [], identities_of(hasher, person))
    contact_id = int(person.contact["id"])
    return FileTargets(
        contact_id, archives.imports_of(conn, contact_id), identities_of(hasher, person)
    )


def forget(
    conn: Connection,
    hasher: Hasher,
    ident: Identity,
    *,
    now: datetime,
    actor: str,
    source: str = "erasure",
    mailchimp_lists: Sequence[str] = (),
) -> dict[str, int | str]:
    """Erasure (GDPR art. 17, ALL-4): clear every plaintext trace, keep the no.

    A ledger entry (scope all, reason erasure) is written for each of the person's
    hashes first, so a later import of the same email or phone stays suppressed.
    Consent records and sources are deleted; the contact row keeps only hashes.
    """
    # The contact is locked as it is read: an import that joined the person (its rows
    # locked FOR NO KEY UPDATE, campaigns.contactlookup) commits first, and what it wrote
    # (a phone, a consent record) is read and erased here; none joins it after, until this
    # commits. Read unlocked, the erasure would leave that import's consent record
    # behind and the import would write back the plaintext the erasure cleared.
    # SQLite locks the database, not rows: taken before the read, for the same reason.
    lock_for_writing(conn)
    person = find(conn, hasher, ident, lock=True)
    ledger = Ledger(conn, hasher)
    identities = identities_of(hasher, person)
    now = now.astimezone(UTC)
    rows: list[dict[str, object]] = []
    for kind, keys in identities:
        rows += ledger_mod.entry_rows(
            keys,
            identity_kind=kind,
            kind="suppression",
            scope="all",
            reason=ledger_mod.ERASURE,
            source=source,
            source_event=ledger_mod.default_event("suppression", "all", ledger_mod.ERASURE),
            evidence_ref="",
            occurred_at=now,
            recorded_at=now,
            actor=actor,
        )
    counts: dict[str, int | str] = {
        "ledger_entries_added": ledger.add_many(rows),
        "contacts_cleared": 0,
        "consents_deleted": 0,
    }
    # Review-queue items (mails, SMS) keep the text a person wrote: it goes too.
    digests = [k.digest for _kind, keys in identities for k in keys]
    counts["review_texts_cleared"] = clear_texts(conn, digests)
    # GD-5: the processors holding the person (`mailchimp_lists`: the audiences synced to),
    # recorded with what they need to find them before the plaintext goes.
    counts["erasure"] = erasure.plan(
        conn,
        person.contact,
        identity=ident,
        hashes=identities,
        now=now,
        mailchimp_lists=mailchimp_lists,
    )
    if person.contact:
        contact_id = person.contact["id"]
        counts["consents_deleted"] = conn.execute(
            delete(consent_records).where(consent_records.c.contact_id == contact_id)
        ).rowcount
        conn.execute(delete(contact_sources).where(contact_sources.c.contact_id == contact_id))
        conn.execute(
            update(customers)
            .where(customers.c.contact_id == contact_id)
            .values(product_categories="", email_source="", contract_status="erased")
        )
        cleared = {col: None for col in PLAINTEXT_COLUMNS["contacts"]}
        counts["contacts_cleared"] = conn.execute(
            update(contacts).where(contacts.c.id == contact_id).values(**cleared, updated_at=now)
        ).rowcount
    return counts
