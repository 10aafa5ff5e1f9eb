"""The call centre's outcomes back into the ledger (TP-7, ALL-1).

Columns (English or Norwegian names): reference, outcome in reached, no_answer,
objection, reservert, wrong_number; optional note and time. An objection or a
reservation is in the ledger when `import_outcomes` returns; the source event is the
row's reference and outcome, so importing the same file twice changes nothing. Bad
rows are reported (row, field, reason) and good rows kept. Notes are never stored.
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

from sqlalchemy import Engine, select

from campaigns.calllist.references import PATTERN, reference, resolve
from campaigns.campaign_schema import SENT, recipients
from campaigns.schema import contacts
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
    WRONG_NUMBER: ("phone", "wrong_number"),
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
    recorded: int = 0  # outcome rows that added ledger entries
    already_recorded: int = 0  # outcome rows whose entries were there (an earlier import)
    by_outcome: Counter[str] = field(default_factory=Counter)
    errors: list[RowError] = field(default_factory=list)  # rows not used
    warnings: list[RowError] = field(default_factory=list)  # rows used with a default

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "recorded": self.recorded,
            "already_recorded": self.already_recorded,
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
    entries = _ledger_rows(engine, hasher, parsed, result, now)
    if entries:
        with engine.begin() as conn:
            ledger = Ledger(conn, hasher)
            for per_row in entries:
                if ledger.add_many(per_row):
                    result.recorded += 1
                else:
                    result.already_recorded += 1
    return result


def _ledger_rows(
    engine: Engine,
    hasher: Hasher,
    parsed: list[tuple[int, str, int, str, datetime]],
    result: OutcomeImport,
    now: datetime,
) -> list[list[dict[str, object]]]:
    """Find each row's recipient; an outcome that is a no becomes ledger rows: on the
    phone for a reservation or a wrong number, on every identity of the person for an
    objection (ALL-1: it is the person's no, whichever address they are reached at)."""
    campaign_ids = {cid for _, _, cid, _, _ in parsed}
    people: dict[int, dict[int, list[tuple[bytes, str, str]]]] = {}  # campaign -> rid -> keys
    with engine.connect() as conn:
        for cid in campaign_ids:
            people[cid] = {}
            for r in conn.execute(
                select(
                    recipients.c.id, recipients.c.key_hash,
                    recipients.c.key_id.label("listed_key_id"), contacts.c.key_id,
                    contacts.c.phone_hash, contacts.c.email_hash, contacts.c.name_address_hash,
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
                people[cid][int(r.id)] = keys
    index = {reference(hasher, cid, rid): rid for cid, found in people.items() for rid in found}
    recorded_at = now.astimezone(UTC)
    entries: list[list[dict[str, object]]] = []
    for line, ref, cid, outcome, when in parsed:
        rid = index.get(ref)
        if rid is None:  # made under an earlier key, or not ours
            rid = resolve(hasher, ref, list(people.get(cid, {})))
        if rid is None:
            result.errors.append(RowError(line, "reference", "no such recipient on a call list"))
            continue
        result.by_outcome[outcome] += 1
        entry = LEDGER_ENTRY[outcome]
        if entry is None:
            continue
        scope, reason = entry
        found = people[cid][rid]
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
    return entries
