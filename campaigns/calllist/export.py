"""The call list as the call centre gets it (TP-1, TP-2, TP-5, TP-6, ALL-6, ALL-8).

A CSV that Excel opens as it is (UTF-8 with BOM, `;`, CRLF), with every cell a
spreadsheet would run as a formula neutralised; or an Excel workbook (`write_xlsx`)
whose cells are all typed as text, so that nothing runs and no apostrophe is needed,
with Norwegian headers, the address and the call script. Refused without a fresh
register snapshot (TP-2) or with a hidden or mobile caller id (TP-6), the checks
campaigns.preflight also runs at create and launch; the ledger (ALL-6, TP-7) and the
newest register snapshot (TP-1) are checked again when it is written. The people it
hands over for the first time go from `listed` to `sent` (`mark_handed`): a call list
counts as a contact (ALL-8) when it is exported, not when it is made.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, func, select, update

from campaigns import campaign as campaign_mod
from campaigns.calllist.references import reference
from campaigns.campaign_schema import LISTED, SENT, recipients
from campaigns.decisions import among, register_by_contact
from campaigns.messages import render_messages
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
# The workbook's columns, in Norwegian for the call centre: the CSV's (the reference first,
# as the outcomes file gives it back) with the address and the call script besides.
XLSX_HEADER: Final = (
    "Referanse", "Navn", "Telefon", "Adresse", "Postnummer", "Poststed", "Rettslig grunnlag",
    "Ringetider", "Manus", "Avmeldingslenke", "Registerutdrag (dato)",
)  # fmt: skip
XLSX_SHEET: Final = "Ringeliste"
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
    """The rows of the list (HEADER's columns), each row's `details` (XLSX_EXTRA's), and
    the recipients this export hands over for the first time (`listed` until now)."""

    campaign_id: int
    snapshot_date: date
    rows: list[tuple[str, ...]] = field(default_factory=list)
    details: list[tuple[str, ...]] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)  # rule -> count
    handed: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "register_snapshot_date": self.snapshot_date.isoformat(),
            "rows": len(self.rows),
            "handed_over_now": len(self.handed),
            "left_out": dict(self.left_out),
        }


def register_problem(conn: Connection, config: PolicyConfig, now: datetime) -> str | None:
    """TP-2: None when the active register snapshot may be used for calls now, else why not
    and what to do. Checked at create, at launch (campaigns.preflight) and at export."""
    snapshot = active_snapshot(conn)
    stale = register_fresh(
        RegisterFacts(
            snapshot.snapshot_date if snapshot else None,
            snapshot.loaded_at if snapshot else None,
        ),
        config,
        now,
    )
    if stale is None and snapshot is not None:
        return None
    return (
        f"TP-2: {stale}; load this month's register snapshot first "
        "(outreach register load FILE --date DATE)"
    )


def build_export(
    engine: Engine,
    hasher: Hasher,
    config: PolicyConfig,
    campaign_id: int,
    public_url: str,
    now: datetime,
    *,
    partner_names: Mapping[str, str] | None = None,
) -> Export:
    """The call list as it may be used now, or ExportRefused naming the rule: the people
    listed (and those handed over by an earlier export, whose list this rewrites), each
    with the call script rendered from the campaign's template (GD-1's notice naming the
    partner by its display name in `partner_names`)."""
    with engine.connect() as conn:
        camp = campaign_mod.get(conn, campaign_id)
        if camp.channel != "call":
            raise ExportRefused(
                f"campaign {campaign_id} is a {camp.channel} campaign, not a call campaign"
            )
        problem = caller_id_problem(camp.sender.caller_id)
        if problem is not None:
            raise ExportRefused(problem)
        stale = register_problem(conn, config, now)
        snapshot = active_snapshot(conn)
        if stale is not None or snapshot is None:
            raise ExportRefused(stale or "TP-2: no register snapshot is loaded")
        rows = conn.execute(
            select(
                recipients.c.id, recipients.c.contact_id, recipients.c.token_id,
                recipients.c.rule, recipients.c.basis, recipients.c.state, contacts.c.first_name,
                contacts.c.last_name, contacts.c.phone, contacts.c.phone_hash,
                contacts.c.name_address_hash, contacts.c.street, contacts.c.postal_code,
                contacts.c.city,
            )
            .join(contacts, contacts.c.id == recipients.c.contact_id)
            .where(
                recipients.c.campaign_id == campaign_id,
                recipients.c.state.in_((LISTED, SENT)),
            )
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
        scripts = _scripts(conn, hasher, config, public_url, camp, rows, partner_names)
        conn.rollback()
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
            export.details.append(
                (
                    r.street or "",
                    r.postal_code or "",
                    r.city or "",
                    scripts.get(rid, ""),
                )
            )
            if r.state == LISTED:
                export.handed.append(rid)
    return export


def _scripts(
    conn: Connection,
    hasher: Hasher,
    config: PolicyConfig,
    public_url: str,
    camp: campaign_mod.Campaign,
    rows: Sequence[Any],
    partner_names: Mapping[str, str] | None,
) -> dict[int, str]:
    """The call script of each row: the campaign's template rendered as for a message."""
    scripts: dict[int, str] = {}
    ids = [int(r.id) for r in rows if r.phone]
    for start in range(0, len(ids), CHUNK):
        for message in render_messages(
            conn, hasher, config, public_url.rstrip("/"), camp, ids[start : start + CHUNK],
            partner_names=partner_names,
        ):  # fmt: skip
            scripts[message.recipient_id] = " ".join(message.body.split())
    return scripts


def mark_handed(conn: Connection, export: Export, now: datetime) -> int:
    """The people the export handed to the call centre for the first time become `sent`
    now, and are contacted now: the frequency cap (ALL-8) and GD-1's first contact count
    from the export, not from the launch that listed them. In the transaction that records
    the file, after it is written."""
    done = 0
    for start in range(0, len(export.handed), CHUNK):
        chunk = export.handed[start : start + CHUNK]
        done += conn.execute(
            update(recipients)
            .where(among(conn, recipients.c.id, chunk), recipients.c.state == LISTED)
            .values(state=SENT, sent_at=now, updated_at=now)
        ).rowcount
        conn.execute(
            update(contacts)
            .where(contacts.c.id == recipients.c.contact_id, among(conn, recipients.c.id, chunk))
            .values(
                first_contacted_at=func.coalesce(contacts.c.first_contacted_at, now),
                last_contacted_at=now,
            )
        )
    return done


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


def _text_cells(sheet: Any, values: Sequence[str]) -> list[Any]:
    """Cells typed as text (inline strings, number format "@"): Excel runs no formula in
    them and keeps a leading "+" or "0", so nothing needs an apostrophe in front."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    cells = []
    for value in values:
        # Control characters other than tab and newline cannot be stored in the XML.
        cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"  # also over a value that starts with "=": text, not a formula
        cell.number_format = "@"
        cells.append(cell)
    return cells


def xlsx_rows(export: Export) -> Iterator[tuple[str, ...]]:
    """The workbook's rows after its header, in XLSX_HEADER's order."""
    for (ref, name, phone, basis, hours, link, snapshot), details in zip(
        export.rows, export.details, strict=True
    ):
        street, postal_code, city, script = details
        yield (ref, name, phone, street, postal_code, city, basis, hours, script, link, snapshot)


def write_xlsx(export: Export, path: Path) -> None:
    """An Excel workbook of the list, every cell text (`_text_cells`), with Norwegian
    headers, the address and the call script; written whole, then moved into place."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(XLSX_SHEET)
    sheet.freeze_panes = "A2"
    sheet.append(_text_cells(sheet, XLSX_HEADER))
    for row in xlsx_rows(export):
        sheet.append(_text_cells(sheet, row))
    tmp = path.with_name(path.name + ".tmp")
    book.save(tmp)
    with tmp.open("rb+") as out:
        os.fsync(out.fileno())
    tmp.replace(path)


def is_workbook(path: Path) -> bool:
    """Whether the file is a workbook (`write_xlsx`'s: a zip), whatever its name."""
    try:
        with path.open("rb") as raw:
            return raw.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def remove_from_xlsx(path: Path, theirs: Callable[[str], bool]) -> tuple[int, int]:
    """GD-5 for a workbook written by `write_xlsx`: rewrite it without the rows whose
    reference (the first column) `theirs` accepts. (rows removed, rows left); the file is
    left as it was when none is removed (campaigns.filetraces deletes it when none is left)."""
    from openpyxl import load_workbook

    with path.open("rb") as raw:  # by its content: `--format xlsx` takes any file name
        book = load_workbook(raw, read_only=True)
        try:
            rows = [
                tuple("" if v is None else str(v) for v in row)
                for row in book.worksheets[0].iter_rows(values_only=True)
            ]
        finally:
            book.close()
    header, body = rows[0] if rows else XLSX_HEADER, rows[1:]
    kept = [row for row in body if not (row and theirs(row[0]))]
    removed = len(body) - len(kept)
    if removed and kept:
        from openpyxl import Workbook

        out = Workbook(write_only=True)
        sheet = out.create_sheet(XLSX_SHEET)
        sheet.freeze_panes = "A2"
        for row in (header, *kept):
            sheet.append(_text_cells(sheet, row))
        tmp = path.with_name(path.name + ".erasing")
        out.save(tmp)
        tmp.replace(path)
    return removed, len(kept)
