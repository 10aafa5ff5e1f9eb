"""The call list as the call centre gets it (TP-1, TP-2, TP-5, TP-6, ALL-6).

A CSV that Excel opens as it is (UTF-8 with BOM, `;`, CRLF), with every cell a
spreadsheet would run as a formula neutralised. Refused without a fresh register
snapshot (TP-2) or with a hidden or mobile caller id (TP-6); the ledger (ALL-6, TP-7)
and the newest register snapshot (TP-1) are checked again when it is written.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, select

from campaigns import campaign as campaign_mod
from campaigns.calllist.references import reference
from campaigns.campaign_schema import SENT, recipients
from campaigns.decisions import register_by_contact
from campaigns.schema import contacts
from campaigns.sendcheck import SendCheck
from suppression import tokens
from suppression.basis import register_fresh
from suppression.calendar import CALLING_HOURS_TEXT
from suppression.errors import InvalidIdentity, OutreachError
from suppression.identity import normalise_phone
from suppression.keys import Hasher
from suppression.policy import PolicyConfig, RegisterFacts
from suppression.register import active_snapshot

HEADER: Final = (
    "reference", "name", "phone", "legal_basis", "calling_hours", "unsubscribe_link",
    "register_snapshot_date",
)  # fmt: skip
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
CHUNK: Final = 5000
_UNLISTED: Final = RegisterFacts(None, None)
_HIDDEN: Final = {"", "hidden", "skjult", "anonymous", "anonym", "private", "unknown", "ukjent"}


class ExportRefused(OutreachError):
    """The list may not be produced now; the message names the rule."""


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
        signer = tokens.signer(conn, hasher)
    # ALL-6 / TP-7: the ledger (and the frequency cap) once more, as at any send.
    checker = SendCheck(engine, config, now=lambda: now)
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
                    f"{base}/u/{tokens.for_recipient(signer, rid, r.token_id)}",
                    snapshot.snapshot_date.isoformat(),
                )
            )
    return export


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
