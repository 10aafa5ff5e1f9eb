"""Call lists for the call centre, and the outcomes it sends back (TP-1..TP-7, ALL-6).

A call campaign's send path puts its recipients on the list (`channels.call_list`);
`export` writes the list as a CSV that Excel opens as it is (UTF-8 with BOM, `;`,
CRLF), with every cell a spreadsheet would run as a formula neutralised. It refuses
without a fresh register snapshot (TP-2) or with a hidden or mobile caller id (TP-6),
and checks the ledger (ALL-6, TP-7) and the register (TP-1) again at export time.

`import_outcomes` reads the centre's results: an objection or a reservation becomes
a ledger entry at once (TP-7), keyed by the row's reference and outcome, so importing
the same file twice changes nothing. Notes are never stored (they may hold anything).
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, select

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import SENT, recipients
from campaigns.channels.call_list import CallListChannel
from campaigns.decisions import register_by_contact
from campaigns.schema import contacts
from campaigns.sending import Sender
from suppression import tokens
from suppression.calendar import CALLING_HOURS_TEXT, OSLO
from suppression.errors import FileRefused, InvalidIdentity, OutreachError, RowError
from suppression.identity import normalise_phone
from suppression.keys import Hasher
from suppression.ledger import OBJECTION, UNSUBSCRIBE, Ledger
from suppression.policy import PolicyConfig, RegisterFacts, register_fresh
from suppression.register import active_snapshot, decode, sniff_delimiter, undecodable_line

HEADER: Final = (
    "reference", "name", "phone", "legal_basis", "calling_hours", "unsubscribe_link",
    "register_snapshot_date",
)  # fmt: skip
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
SOURCE: Final = "call_centre"
CHUNK: Final = 5000
_REF_PURPOSE = "calllist-reference"
_REF = re.compile(r"K(\d{1,18})-([A-Z2-7]{16})")

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
_HIDDEN: Final = {"", "hidden", "skjult", "anonymous", "anonym", "private", "unknown", "ukjent"}


class ExportRefused(OutreachError):
    """The list may not be produced now; the message names the rule."""


# -- references -----------------------------------------------------------------------------


def reference(hasher: Hasher, campaign_id: int, recipient_id: int) -> str:
    """An opaque, unforgeable reference: the campaign id and a MAC of the recipient."""
    mac = hasher.sign(_REF_PURPOSE, f"{campaign_id}:{recipient_id}".encode())[:10]
    return f"K{campaign_id}-{base64.b32encode(mac).decode()}"


def _resolve(hasher: Hasher, ref: str, candidates: Sequence[int]) -> int | None:
    """The recipient of `ref` among the campaign's `candidates` (under any known key)."""
    match = _REF.fullmatch(ref)
    if match is None:
        return None
    mac = base64.b32decode(match[2])
    for rid in candidates:
        if hasher.verify(_REF_PURPOSE, f"{match[1]}:{rid}".encode(), mac):
            return rid
    return None


# -- export ---------------------------------------------------------------------------------


def caller_id_problem(caller_id: str) -> str | None:
    """TP-6: the number shown must be a real number, and not a Norwegian mobile."""
    text = caller_id.strip()
    if text.casefold() in _HIDDEN:
        return "TP-6: the campaign's caller id is hidden or empty; calls must show a number"
    try:
        phone = normalise_phone(text)
    except InvalidIdentity:
        return "TP-6: the campaign's caller id is not a valid phone number"
    if phone.e164.startswith("+47") and len(phone.e164) == 11 and phone.number_type == "mobile":
        return "TP-6: the campaign's caller id is an 8-digit Norwegian mobile number"
    return None


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


@dataclass
class Export:
    campaign_id: int
    snapshot_date: date
    rows: list[tuple[str, ...]] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)  # rule -> count

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "register_snapshot_date": self.snapshot_date.isoformat(),
            "rows": len(self.rows),
            "left_out": dict(self.left_out),
        }


def build_export(
    engine: Engine,
    hasher: Hasher,
    config: PolicyConfig,
    campaign_id: int,
    public_url: str,
    now: datetime,
) -> Export:
    """The call list as it may be used now, or ExportRefused naming the rule."""
    with engine.connect() as conn:
        camp = campaign_mod.get(conn, campaign_id)
        if camp.channel != "call":
            raise ExportRefused(
                f"campaign {campaign_id} is a {camp.channel} campaign, not a call campaign"
            )
        problem = caller_id_problem(camp.sender.caller_id)
        if problem is not None:
            raise ExportRefused(problem)
        snapshot = active_snapshot(conn)
        stale = register_fresh(
            RegisterFacts(
                snapshot.snapshot_date if snapshot else None,
                snapshot.loaded_at if snapshot else None,
            ),
            config,
            now,
        )
        if stale is not None or snapshot is None:
            raise ExportRefused(f"TP-2: {stale}; load a fresh register snapshot first")
        rows = conn.execute(
            select(
                recipients.c.id, recipients.c.contact_id, recipients.c.token_id,
                recipients.c.rule, recipients.c.basis, contacts.c.first_name,
                contacts.c.last_name, contacts.c.phone, contacts.c.phone_hash,
                contacts.c.name_address_hash,
            )
            .join(contacts, contacts.c.id == recipients.c.contact_id)
            .where(recipients.c.campaign_id == campaign_id, recipients.c.state == SENT)
            .order_by(recipients.c.id)
        ).all()  # fmt: skip
        listed = register_by_contact(
            conn,
            snapshot,
            [
                {
                    "id": r.contact_id,
                    "phone_hash": r.phone_hash,
                    "name_address_hash": r.name_address_hash,
                }
                for r in rows
                if r.rule == "TP-1"
            ],
        )
    # ALL-6 / TP-7: the ledger (and the frequency cap) once more, as at any send.
    checker = Sender(
        engine, hasher, config, lambda _c: CallListChannel(), public_url, now=lambda: now
    )
    stopped: dict[int, str] = {}
    ids = [int(r.id) for r in rows]
    for start in range(0, len(ids), CHUNK):
        stopped.update(checker.recheck(camp, ids[start : start + CHUNK])[0])
    export = Export(campaign_id, snapshot.snapshot_date)
    base = public_url.rstrip("/")
    for r in rows:
        rid = int(r.id)
        if rid in stopped:
            export.left_out[stopped[rid]] += 1
        elif r.rule == "TP-1" and listed.get(int(r.contact_id), _UNLISTED).reserved_phone:
            export.left_out["TP-1"] += 1  # listed in the register since launch
        elif not r.phone:
            export.left_out["erased"] += 1
        else:
            export.rows.append(
                (
                    reference(hasher, campaign_id, rid),
                    " ".join(p for p in (r.first_name, r.last_name) if p),
                    r.phone,
                    f"{r.rule} {r.basis}".strip(),
                    CALLING_HOURS_TEXT,
                    f"{base}/u/{tokens.encode(hasher, int(r.token_id))}",
                    snapshot.snapshot_date.isoformat(),
                )
            )
    return export


_UNLISTED = RegisterFacts(None, None)


def write_csv(export: Export, path: Path) -> None:
    """Excel's CSV: UTF-8 with BOM, `;`, CRLF; written whole, then moved into place."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows([neutralise(cell) for cell in row] for row in export.rows)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


# -- outcomes -------------------------------------------------------------------------------


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
        match = _REF.fullmatch(ref)
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
    entries = _ledger_rows(engine, hasher, parsed, result)
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
                    recipients.c.id, recipients.c.key_hash, contacts.c.key_id,
                    contacts.c.email_hash, contacts.c.name_address_hash,
                )
                .join(contacts, contacts.c.id == recipients.c.contact_id)
                .where(recipients.c.campaign_id == cid, recipients.c.state == SENT)
            ):  # fmt: skip
                keys = [(bytes(r.key_hash), r.key_id, "phone")]
                for digest, kind in (
                    (r.email_hash, "email"),
                    (r.name_address_hash, "name_address"),
                ):
                    if digest is not None:
                        keys.append((bytes(digest), r.key_id, kind))
                people[cid][int(r.id)] = keys
    index = {reference(hasher, cid, rid): rid for cid, found in people.items() for rid in found}
    recorded_at = datetime.now(UTC)
    entries: list[list[dict[str, object]]] = []
    for line, ref, cid, outcome, when in parsed:
        rid = index.get(ref)
        if rid is None:  # made under an earlier key, or not ours
            rid = _resolve(hasher, ref, list(people.get(cid, {})))
        if rid is None:
            result.errors.append(RowError(line, "reference", "no such recipient on a call list"))
            continue
        result.by_outcome[outcome] += 1
        entry = LEDGER_ENTRY[outcome]
        if entry is None:
            continue
        scope, reason = entry
        keys = people[cid][rid] if reason == OBJECTION else people[cid][rid][:1]
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
