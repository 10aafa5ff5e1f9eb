"""The call centre's outcomes back into the ledger (TP-7, ALL-1), and wrong numbers off
their contacts.

Columns (English or Norwegian names): reference, outcome in reached, no_answer,
objection, reservert, wrong_number; optional note and time. An objection or a
reservation is in the ledger when `import_outcomes` returns; the source event is the
row's reference and outcome, so importing the same file twice changes nothing. Bad
rows are reported (row, field, reason) and good rows kept. Notes are never stored.

A wrong number ("Annen person svarte") says the number is not this person's, not that
anyone objects: the number is detached from the contact for every channel (its phone,
phone type and phone digest cleared, so no launch, send-time check, call list or SMS
reaches it as this person's), and the keyed pairing of contact and number is kept in
`wrong_numbers`, so that a later import of the same person with the same number does not
attach it again without newer consent (campaigns.contactlookup.pairing). No ledger
entry: a phone-scope suppression on the number would stop its real owner's own consented
messages for good (ES-1), where RULES.md stops a number only on its holder's own no
(ALL-1 objection, ALL-2 opt-out, TP-7 "don't call me"; ALL-5 would then need a new
consent to lift it). The person stays off the next call list because they have no phone.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from campaigns.calllist.references import PATTERN, reference, resolve
from campaigns.campaign_schema import SENT, recipients
from campaigns.contactlookup import pairing
from campaigns.schema import contacts, wrong_numbers
from suppression.calendar import OSLO
from suppression.errors import FileRefused, RowError
from suppression.keys import Hasher
from suppression.ledger import OBJECTION, UNSUBSCRIBE, Ledger
from suppression.register import decode, sniff_delimiter, undecodable_line

SOURCE: Final = "call_centre"

# Outcomes (stable strings) -> (ledger scope, reason), None for no ledger entry.
REACHED, NO_ANSWER, OBJECTED, RESERVED, WRONG_NUMBER = (
    "reached", "no_answer", "objection", "reservert", "wrong_number",
)  # fmt: skip
LEDGER_ENTRY: Final[dict[str, tuple[str, str] | None]] = {
    REACHED: None,
    NO_ANSWER: None,
    # ALL-1: an objection to direct marketing stops every channel.
    OBJECTED: ("all", OBJECTION),
    # TP-7: "don't call me" (reservert) stops calls: a channel opt-out, scope phone.
    RESERVED: ("phone", UNSUBSCRIBE),
    # Not a no of the number's holder: the number leaves the contact instead (see above).
    WRONG_NUMBER: None,
}
_OUTCOME_ALIASES: Final = {
    "reached": REACHED, "nådd": REACHED, "svarte": REACHED,
    "no_answer": NO_ANSWER, "ikke_svar": NO_ANSWER, "ubesvart": NO_ANSWER,
    "objection": OBJECTED, "innsigelse": OBJECTED,
    "reservert": RESERVED, "reserved": RESERVED, "ikke_ring": RESERVED,
    "wrong_number": WRONG_NUMBER, "feil_nummer": WRONG_NUMBER,
}  # fmt: skip
_COLUMN_ALIASES: Final = {
    "reference": "reference", "referanse": "reference", "ref": "reference",
    "outcome": "outcome", "utfall": "outcome", "resultat": "outcome",
    "note": "note", "notat": "note", "kommentar": "note",
    "time": "time", "tid": "time", "tidspunkt": "time",
}  # fmt: skip


@dataclass
class OutcomeImport:
    rows: int = 0
    recorded: int = 0  # outcome rows that added ledger entries or detached a number
    already_recorded: int = 0  # outcome rows whose entries were there (an earlier import)
    detached: int = 0  # wrong numbers taken off their contacts by this import
    by_outcome: Counter[str] = field(default_factory=Counter)
    errors: list[RowError] = field(default_factory=list)  # rows not used
    warnings: list[RowError] = field(default_factory=list)  # rows used with a default

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "recorded": self.recorded,
            "already_recorded": self.already_recorded,
            "detached": self.detached,
            "by_outcome": dict(self.by_outcome),
            "errors": [vars_of(e) for e in self.errors],
            "warnings": [vars_of(e) for e in self.warnings],
        }


def vars_of(error: RowError) -> dict[str, Any]:
    return {"row": error.row, "field": error.field, "reason": error.reason}


def _token(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().casefold())


def _when(raw: str, now: datetime) -> datetime | None:
    text = raw.strip()
    for parse in (datetime.fromisoformat, lambda t: datetime.strptime(t, "%d.%m.%Y %H:%M")):
        try:
            moment = parse(text)
        except ValueError:
            continue
        moment = moment if moment.tzinfo else moment.replace(tzinfo=OSLO)
        return min(moment.astimezone(UTC), now)
    return None


def import_outcomes(engine: Engine, hasher: Hasher, path: Path, now: datetime) -> OutcomeImport:
    """Record the centre's outcomes; bad rows are reported (row, field, reason), good rows
    are kept: an objection must never wait for a typo elsewhere in the file."""
    data = path.read_bytes()
    try:
        text = decode(data)
    except UnicodeDecodeError as exc:
        raise FileRefused(
            str(path), f"line {undecodable_line(data, exc)}: not UTF-8 or Windows-1252 text"
        ) from None
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=sniff_delimiter(text.split("\n", 1)[0])
    )
    header = [_COLUMN_ALIASES.get(_token(h)) for h in next(reader, [])]
    for needed in ("reference", "outcome"):
        if needed not in header:
            raise FileRefused(str(path), f"line 1: no column '{needed}'")
    result = OutcomeImport()
    parsed: list[tuple[int, str, int, str, datetime]] = []  # line, ref, campaign, outcome, when
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        result.rows += 1
        row = {c: v.strip() for c, v in zip(header, values, strict=False) if c}
        ref = row.get("reference", "")
        outcome = _OUTCOME_ALIASES.get(_token(row.get("outcome", "")))
        match = PATTERN.fullmatch(ref)
        if match is None:
            result.errors.append(RowError(line, "reference", "not a call-list reference"))
            continue
        if outcome is None:
            result.errors.append(
                RowError(line, "outcome", f"must be one of {', '.join(LEDGER_ENTRY)}")
            )
            continue
        when = _when(row["time"], now) if row.get("time") else now
        if when is None:
            result.warnings.append(
                RowError(line, "time", "not a date and time; the import time was used")
            )
            when = now
        parsed.append((line, ref, int(match[1]), outcome, when))
    entries, detaches = _ledger_rows(engine, hasher, parsed, result, now)
    if entries or detaches:
        with engine.begin() as conn:
            ledger = Ledger(conn, hasher)
            for per_row in entries:
                if ledger.add_many(per_row):
                    result.recorded += 1
                else:
                    result.already_recorded += 1
            for detach in detaches:
                if _detach(conn, hasher, detach, now):
                    result.recorded += 1
                    result.detached += 1
                else:
                    result.already_recorded += 1
    return result


@dataclass(frozen=True, slots=True)
class _Listed:
    """A recipient on a call list: its contact, the number as listed and the contact's
    digests now."""

    contact_id: int
    keys: list[tuple[bytes, str, str]]  # (digest, key id, identity kind), the listed one first


@dataclass(frozen=True, slots=True)
class _Detach:
    """A wrong number to take off its contact."""

    contact_id: int
    listed: tuple[bytes, str]  # the number's digest on the list, and its key
    campaign_id: int
    source_event: str
    reported_at: datetime


def _detach(conn: Connection, hasher: Hasher, detach: _Detach, now: datetime) -> bool:
    """Clear the contact's phone if it is still the number listed, and keep the pairing
    under every configured key (campaigns.contactlookup.pairing); False when there was
    nothing left to do (an earlier import of the same outcome, or the person erased).

    The contact is re-read locked: an import may have changed its phone since the list."""
    found = conn.execute(
        select(contacts.c.phone, contacts.c.phone_hash)
        .where(contacts.c.id == detach.contact_id)
        .with_for_update()
    ).first()
    if found is None or (found.phone is None and found.phone_hash is not None):
        return False  # erased (ALL-4): nothing of the person is filled again anyway
    digest, key_id = detach.listed
    pairs: list[tuple[bytes, str]] = []
    phone: str | None = found.phone
    if phone and hasher.knows(key_id) and hasher.digest("phone", phone, key_id) == digest:
        pairs = [
            (pairing(detach.contact_id, k.digest), k.key_id)
            for k in hasher.keyed_all("phone", phone)
        ]
        conn.execute(
            update(contacts)
            .where(contacts.c.id == detach.contact_id)
            .values(phone=None, phone_type=None, phone_hash=None, updated_at=now)
        )
    if not pairs:
        # Not (or no longer) the contact's number: the pairing as listed is kept all the
        # same, so that an import does not attach it to this person again.
        pairs = [(pairing(detach.contact_id, digest), key_id)]
    rows = [
        {
            "contact_id": detach.contact_id, "pairing_hash": pair, "key_id": key,
            "campaign_id": detach.campaign_id, "source_event": detach.source_event,
            "reported_at": detach.reported_at, "recorded_at": now.astimezone(UTC),
        }
        for pair, key in pairs
    ]  # fmt: skip
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    # A row at a time (a key or two), counted by what RETURNING gives back: the rowcount of
    # an INSERT ... ON CONFLICT is not known on every driver (psycopg here says -1).
    added = 0
    for row in rows:
        stmt = insert(wrong_numbers).values(row).on_conflict_do_nothing()
        added += len(conn.execute(stmt.returning(wrong_numbers.c.id)).all())
    return added > 0


def _ledger_rows(
    engine: Engine,
    hasher: Hasher,
    parsed: list[tuple[int, str, int, str, datetime]],
    result: OutcomeImport,
    now: datetime,
) -> tuple[list[list[dict[str, object]]], list[_Detach]]:
    """Find each row's recipient; an outcome that is a no becomes ledger rows: on the
    phone for a reservation, on every identity of the person for an objection (ALL-1: it
    is the person's no, whichever address they are reached at); a wrong number becomes a
    detach of the number listed."""
    campaign_ids = {cid for _, _, cid, _, _ in parsed}
    people: dict[int, dict[int, _Listed]] = {}  # campaign -> recipient id -> listed
    with engine.connect() as conn:
        for cid in campaign_ids:
            people[cid] = {}
            for r in conn.execute(
                select(
                    recipients.c.id, recipients.c.key_hash, recipients.c.contact_id,
                    recipients.c.key_id.label("listed_key_id"), contacts.c.key_id,
                    contacts.c.phone_hash, contacts.c.email_hash,
                    contacts.c.name_address_hash,
                )
                .join(contacts, contacts.c.id == recipients.c.contact_id)
                .where(recipients.c.campaign_id == cid, recipients.c.state == SENT)
            ):  # fmt: skip
                # The number as listed (under the key of the list), and the contact's
                # digests under the contact's key: a rekey since the export moved them.
                keys = [(bytes(r.key_hash), r.listed_key_id or r.key_id, "phone")]
                for digest, kind in (
                    (r.phone_hash, "phone"),
                    (r.email_hash, "email"),
                    (r.name_address_hash, "name_address"),
                ):
                    if digest is not None and bytes(digest) != keys[0][0]:
                        keys.append((bytes(digest), r.key_id, kind))
                people[cid][int(r.id)] = _Listed(int(r.contact_id), keys)
    index = {reference(hasher, cid, rid): rid for cid, found in people.items() for rid in found}
    recorded_at = now.astimezone(UTC)
    entries: list[list[dict[str, object]]] = []
    detaches: list[_Detach] = []
    for line, ref, cid, outcome, when in parsed:
        rid = index.get(ref)
        if rid is None:  # made under an earlier key, or not ours
            rid = resolve(hasher, ref, list(people.get(cid, {})))
        if rid is None:
            result.errors.append(RowError(line, "reference", "no such recipient on a call list"))
            continue
        result.by_outcome[outcome] += 1
        listed = people[cid][rid]
        if outcome == WRONG_NUMBER:
            digest, key_id, _kind = listed.keys[0]
            detaches.append(
                _Detach(listed.contact_id, (digest, key_id), cid, f"{ref}:{outcome}", when)
            )
            continue
        entry = LEDGER_ENTRY[outcome]
        if entry is None:
            continue
        scope, reason = entry
        found = listed.keys
        keys = found if reason == OBJECTION else [k for k in found if k[2] == "phone"]
        entries.append(
            [
                {
                    "key_hash": digest, "key_id": key_id, "identity_kind": kind,
                    "kind": "suppression", "scope": scope, "reason": reason, "source": SOURCE,
                    "source_event": f"{ref}:{outcome}", "evidence_ref": f"calllist:{ref}:{outcome}",
                    "occurred_at": when, "recorded_at": recorded_at, "actor": SOURCE,
                }
                for digest, key_id, kind in keys
            ]
        )  # fmt: skip
    return entries, detaches
