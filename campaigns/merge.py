"""Merging incoming people into contacts by identity, a batch at a time.

One person, one contact: a row whose email or phone we already hold joins that
contact (a lead from two partners, a partner lead who is also a customer). The rule,
applied row after row in file order (so a row-by-row import gives the same result):

1. the row joins the contact holding its email, else the one holding its phone
   (the CRM import first pins the contact of a known customer id);
2. a row whose email and phone are held by two different contacts, or that would give
   a contact a second email or a second phone, is refused (`identity_conflict`):
   one contact holds one of each, and we do not guess which person is meant;
3. a contact's missing email, phone, names or address are filled from the row;
   nothing it holds is overwritten, except names and address from the CRM, which is
   authoritative for its customers. A number the call centre reported as not the
   contact's is not filled in again unless the row brings a newer consent for SMS or
   calls (`ContactLookup.kept_off`). An erased contact (hashes without plaintext,
   ALL-4) is never filled with plaintext again, and the caller attaches no source or
   consent record to it (`Merger.erased`): only the no remains of that person.

Each batch's contacts are found and locked by `campaigns.contactlookup`; new contacts
are written with COPY under ids taken from the sequence in one statement, and changed
ones with one executemany. The writes go through `submit`, which may do them later
(from another thread, `campaigns.leadwriter.Writer`) as long as it does them in order
and `drain` waits for them: a batch's lookups come after the last batch's writes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, bindparam, text, update

from campaigns.bulkcopy import PreparedCopy
from campaigns.contactlookup import FIELDS, UPDATE_COLUMNS, BatchContact, ContactLookup, Incoming
from campaigns.keyfilter import KeyFilter
from campaigns.rekeying import Rotation
from campaigns.schema import contacts

# Outcomes per row: stable strings.
NEW: Final = "new"
MERGED: Final = "merged"  # joined a contact that existed before this import
DUPLICATE: Final = "duplicate"  # joined a contact an earlier row of this import created
CONFLICT: Final = "identity_conflict"

_E, _EH, _P, _PT, _PH, _FN, _LN, _ST, _PC, _CI, _NAH = range(len(FIELDS))
_values = operator.attrgetter(*FIELDS)
Task = Callable[[], object]  # a write; what it returns is not used
_INSERT_COLUMNS: Final = (
    "id",
    *FIELDS[:5],
    "key_id",
    *FIELDS[5:],
    "is_partner_lead",
    "is_customer",
    "created_at",
    "updated_at",
)


class Merger:
    """Merges batches of incoming rows into `contacts` within the caller's transaction."""

    def __init__(
        self,
        conn: Connection,
        key_id: str,
        now: datetime,
        *,
        partner_lead: bool = False,
        customer: bool = False,
        authoritative: bool = False,
        known: KeyFilter | None = None,
        rotation: Rotation | None = None,
        values: Callable[[Any], Sequence[Any]] = _values,
        submit: Callable[[Task], None] | None = None,
        drain: Callable[[], None] | None = None,
    ) -> None:
        """`known`: every email and phone hash contacts held when the caller's transaction
        began (campaigns.keyfilter); hashes it rules out are not looked up. `values`: a
        row's `FIELDS`, in that order (a caller with tuples can slice them). `submit`
        does a write on the connection, now or later but in order; `drain` returns when
        every write submitted is done (default: each write is done at once)."""
        self.conn = conn
        self.key_id = key_id
        self.now = now
        self.partner_lead = partner_lead
        self.customer = customer
        self.authoritative = authoritative  # names and address overwrite (the CRM)
        self.values = values
        self.submit: Callable[[Task], None] = submit or _at_once
        self._drain = drain
        self.counts = {NEW: 0, MERGED: 0, DUPLICATE: 0, CONFLICT: 0}
        # Erased contacts (ALL-4) rows joined: nothing of the row is attached to them.
        self.erased: set[int] = set()
        # The last batch's rows that joined a contact from the store (created before the
        # batch: by an earlier batch or an earlier import), as their contact ids: an
        # earlier batch may have recorded the same evidence for it (campaigns.leadwriter).
        self.joined_held: set[int] = set()
        self._lookup = ContactLookup(conn, known, rotation)

    def close(self) -> None:
        """Drop the temporary table (PostgreSQL drops it at commit anyway)."""
        self._lookup.close()

    def merge(
        self,
        batch: Sequence[Incoming],
        pinned: Sequence[int | None] | None = None,
        claims: Sequence[str] | None = None,
    ) -> list[int | None]:
        """The contact id of each row, None for a refused one (identity_conflict).

        `pinned`: per row, a contact the row must join (the CRM's known customer ids).
        `claims`: per row, the customer id it is; a row may not join a contact that
        belongs to another customer id (one customer per contact).
        """
        if self._drain is not None:
            self._drain()  # the connection is this thread's until the next submit
        by_email, by_phone, by_id = self._lookup.load(batch, pinned, with_claims=claims is not None)
        # Per new contact, by place: the row that created it, or its BatchContact once
        # another row joined it. by_email and by_phone hold the place of a plain one.
        created: list[Any] = []
        eager = claims is not None or pinned is not None

        def joined(place: int) -> BatchContact:
            entry = created[place]
            if type(entry) is BatchContact:
                return entry
            contact = self._new(entry, place)
            created[place] = contact
            if contact.v[_EH] is not None:
                by_email[contact.v[_EH]] = contact
            if contact.v[_PH] is not None:
                by_phone[contact.v[_PH]] = contact
            return contact

        result: list[int | None] = []
        outcome = self.counts
        held = self.joined_held = set()
        new = merged = duplicate = conflict = 0
        for i, row in enumerate(batch):
            eh, ph = row.email_hash, row.phone_hash
            ce = by_email.get(eh) if eh is not None else None
            cp = by_phone.get(ph) if ph is not None else None
            pin = by_id.get(pinned[i]) if pinned is not None and pinned[i] is not None else None  # type: ignore[arg-type]
            if ce is None and cp is None and pin is None:
                place = len(created)
                created.append(self._new(row, place) if eager else row)
                if eh is not None:
                    by_email[eh] = created[place] if eager else place
                if ph is not None:
                    by_phone[ph] = created[place] if eager else place
                if eager:
                    created[place].claim = claims[i] if claims is not None else None
                new += 1
                result.append(~place)  # resolved to an id below
                continue
            if type(ce) is int:
                ce = joined(ce)
            if type(cp) is int:
                cp = joined(cp)
            target: BatchContact = pin or ce or cp  # type: ignore[assignment]
            claim = claims[i] if claims is not None else None
            v = target.v
            if (
                (ce is not None and ce is not target)
                or (cp is not None and cp is not target)
                or (eh is not None and v[_EH] not in (None, eh))
                or (ph is not None and v[_PH] not in (None, ph))
                or (claim is not None and target.claim not in (None, claim))
            ):
                conflict += 1
                result.append(None)
                continue
            self._fill(target, row)
            if not target.created and target.erased:
                self.erased.add(target.id)
            if claim is not None:
                target.claim = claim
            if eh is not None:
                by_email[eh] = target
            if ph is not None and target.v[_PH] == ph:  # not a number kept off it
                by_phone[ph] = target
            if target.own:
                duplicate += 1
            else:
                merged += 1
            if target.created:
                result.append(~target.pos)
            else:
                held.add(target.id)
                result.append(target.id)
        outcome[NEW] += new
        outcome[MERGED] += merged
        outcome[DUPLICATE] += duplicate
        outcome[CONFLICT] += conflict
        ids = self._write_new(created)
        self._write_changed(by_id.values())
        return [ids[~r] if r is not None and r < 0 else r for r in result]

    def _new(self, row: Incoming, place: int) -> BatchContact:
        contact = BatchContact(list(self.values(row)), created=True, own=True)
        contact.pos = place
        contact.is_partner_lead = self.partner_lead
        contact.is_customer = self.customer
        return contact

    def _fill(self, target: BatchContact, row: Incoming) -> None:
        changed = False
        if not target.created and self.partner_lead and not target.is_partner_lead:
            target.is_partner_lead = changed = True
        if not target.created and self.customer and not target.is_customer:
            target.is_customer = changed = True
        if target.erased:
            target.dirty = target.dirty or changed
            return
        v = target.v
        if v[_EH] is None and row.email_hash is not None:
            v[_E], v[_EH] = row.email, row.email_hash
            changed = True
        if (
            v[_PH] is None
            and row.phone_hash is not None
            and not (target.detached and self._lookup.kept_off(target, row))
        ):
            v[_P], v[_PT], v[_PH] = row.phone, row.phone_type, row.phone_hash
            changed = True
        for at, value in ((_FN, row.first_name), (_LN, row.last_name)):
            if value is not None and (v[at] is None or (self.authoritative and v[at] != value)):
                v[at] = value
                changed = True
        has_address = row.street is not None or row.postal_code is not None
        if has_address and (
            (v[_ST] is None and v[_PC] is None)
            or (self.authoritative and v[_NAH] != row.name_address_hash)
        ):
            v[_ST], v[_PC], v[_CI], v[_NAH] = (
                row.street,
                row.postal_code,
                row.city,
                row.name_address_hash,
            )
            changed = True
        target.dirty = target.dirty or changed

    def _write_new(self, created: list[Any]) -> list[int]:
        if not created:
            return []
        ids = allocate_ids(self.conn, len(created))
        self._lookup.remember(ids)
        # Formatted here, sent by the writer thread (`PreparedCopy`).
        self.submit(
            PreparedCopy(self.conn, contacts, _INSERT_COLUMNS, self._new_rows(created, ids))
        )
        return ids

    def _new_rows(self, created: list[Any], ids: list[int]) -> Iterator[tuple[Any, ...]]:
        now, key_id, values = self.now, self.key_id, self.values
        plain_tail = (self.partner_lead, self.customer, now, now)
        for entry, contact_id in zip(created, ids, strict=True):
            v: Sequence[Any]
            if type(entry) is BatchContact:
                entry.id = contact_id
                v = entry.v
                tail = (entry.is_partner_lead, entry.is_customer, now, now)
            else:
                v = values(entry)
                tail = plain_tail
            yield (contact_id, v[0], v[1], v[2], v[3], v[4], key_id, *v[5:], *tail)

    def _write_changed(self, known: Iterable[BatchContact]) -> None:
        changed = [k for k in known if k.dirty]
        if not changed:
            return
        stmt = (
            update(contacts)
            .where(contacts.c.id == bindparam("_id"))
            .values({name: bindparam(name) for name in (*UPDATE_COLUMNS, "updated_at")})
        )
        conn = self.conn
        params = [
            {
                "_id": k.id,
                "updated_at": self.now,
                "is_partner_lead": k.is_partner_lead,
                "is_customer": k.is_customer,
                **dict(zip(FIELDS, k.v, strict=True)),
            }
            for k in changed
        ]

        def write() -> None:
            conn.execute(stmt, params)

        self.submit(write)
        for k in changed:
            k.dirty = False


def _at_once(task: Task) -> None:
    task()


def allocate_ids(conn: Connection, count: int) -> list[int]:
    """`count` new contact ids, in one statement (the caller holds the transaction)."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        # OFFSET 0 keeps the sequence's name looked up once: in the select list it was
        # looked up for every id, 2 us each, nine tenths of the statement.
        rows = raw.execute(  # type: ignore[union-attr]
            "SELECT nextval(s.seq) FROM generate_series(1, %s), "
            "(SELECT pg_get_serial_sequence('contacts', 'id')::regclass OFFSET 0) AS s (seq)",
            (count,),
        ).fetchall()
        return [int(r[0]) for r in rows]
    # SQLite: the import holds the database's write lock, so max(id) cannot move under us.
    top = conn.execute(text("SELECT coalesce(max(id), 0) FROM contacts")).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))
