"""A person's plaintext in files we wrote: the outbox and exported call lists (ALL-4, GD-5).

`forget` clears the store; these files hold the same person's email or phone outside
it. `erase` rewrites each file that holds one of the person's recipients without them
(atomically: a temporary file beside it, fsynced, renamed over it), deletes a file left
without a person, and says per file what it did. `expire` deletes call lists older than
the retention period (default 30 days, OUTREACH_CALLLIST_KEEP_DAYS): the call centre has
worked them by then, and a list nobody keeps cannot leak.

Found by recipient: an outbox line names its recipient id; a call-list row its opaque
reference (campaigns.calllist.references), which only our key can map to a recipient.
A file copied elsewhere (the call centre's machine) is out of reach: the result lists
every call list the person was in, so that the operator can ask for it to be deleted.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, select, update

from campaigns.calllist.export import is_workbook, remove_from_xlsx
from campaigns.calllist.references import resolve
from campaigns.campaign_schema import campaigns, exported_files, recipients
from suppression.keys import Hasher

CALLLIST: Final = "calllist"
OUTBOX: Final = "outbox"
KEEP_DAYS: Final = 30
# What erase did to a file.
REWRITTEN: Final = "rewritten"
DELETED: Final = "deleted"
GONE: Final = "gone"  # expired or deleted before: nothing to do
FAILED: Final = "failed"


@dataclass(frozen=True, slots=True)
class FileTrace:
    kind: str  # outbox | calllist
    path: str
    action: str  # rewritten | deleted | gone | failed
    rows_removed: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "action": self.action,
            "rows_removed": self.rows_removed,
            "reason": self.reason,
        }


def record_export(conn: Connection, campaign_id: int, path: Path, *, now: datetime) -> None:
    """Remember a call list written to `path` (its absolute path)."""
    conn.execute(
        exported_files.insert().values(
            kind=CALLLIST,
            campaign_id=campaign_id,
            path=str(path.resolve()),
            written_at=now.astimezone(UTC),
        )
    )


def _recipients_of(conn: Connection, contact_id: int) -> dict[int, list[int]]:
    """Per campaign, the person's recipient ids."""
    found: dict[int, list[int]] = {}
    for rid, cid in conn.execute(
        select(recipients.c.id, recipients.c.campaign_id).where(
            recipients.c.contact_id == contact_id
        )
    ):
        found.setdefault(int(cid), []).append(int(rid))
    return found


def erase(
    conn: Connection,
    hasher: Hasher,
    contact_id: int,
    outbox_dir: Path | None,
    *,
    now: datetime,
) -> list[FileTrace]:
    """Rewrite the outbox files and the known call lists that hold the person."""
    by_campaign = _recipients_of(conn, contact_id)
    if not by_campaign:
        return []
    done: list[FileTrace] = []
    if outbox_dir is not None:
        for campaign_id, ids in sorted(by_campaign.items()):
            folder = outbox_dir / f"campaign-{campaign_id}"
            if not folder.is_dir():
                continue
            wanted = set(ids)
            for path in sorted(folder.glob("*.jsonl")):
                done.append(_rewrite(OUTBOX, path, _outbox_lines(wanted)))
    calls = [
        c for (c,) in conn.execute(select(campaigns.c.id).where(campaigns.c.channel == "call"))
    ]
    listed = conn.execute(
        select(exported_files.c.id, exported_files.c.campaign_id, exported_files.c.path)
        .where(
            exported_files.c.kind == CALLLIST,
            exported_files.c.campaign_id.in_([c for c in calls if c in by_campaign]),
        )
        .order_by(exported_files.c.id)
    ).all()
    for file_id, campaign_id, name in listed:
        path = Path(name)
        ids = by_campaign[int(campaign_id)]
        if is_workbook(path):
            trace = _rewrite_workbook(path, hasher, ids)
        else:
            trace = _rewrite(CALLLIST, path, _calllist_rows(hasher, ids))
        done.append(trace)
        if trace.action == DELETED:
            conn.execute(
                update(exported_files)
                .where(exported_files.c.id == file_id)
                .values(deleted_at=now.astimezone(UTC))
            )
    return done


Records = Callable[[Path], Iterator[tuple[bool, bytes]]]  # (the person's, as written)


def _outbox_lines(wanted: set[int]) -> Records:
    def records(path: Path) -> Iterator[tuple[bool, bytes]]:
        with path.open("rb") as lines:
            for line in lines:
                try:
                    rid = int(json.loads(line)["recipient_id"])
                except (ValueError, KeyError, TypeError):
                    rid = None  # a line cut short by a crash: kept, it was never a message
                yield rid in wanted, line

    return records


def _calllist_rows(hasher: Hasher, ids: Sequence[int]) -> Records:
    """campaigns.calllist.export.write_csv's shape: UTF-8 with BOM, `;`, CRLF, the
    reference in the first column; rows are written back as that writer writes them."""

    def records(path: Path) -> Iterator[tuple[bool, bytes]]:
        text = path.read_bytes().decode("utf-8-sig")
        for n, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=";")):
            line = io.StringIO()
            csv.writer(line, delimiter=";", lineterminator="\r\n").writerow(row)
            if n == 0:
                yield False, ("\ufeff" + line.getvalue()).encode("utf-8")
                continue
            yield bool(row) and resolve(hasher, row[0], ids) is not None, line.getvalue().encode()

    return records


def _rewrite_workbook(path: Path, hasher: Hasher, ids: Sequence[int]) -> FileTrace:
    """A call list written as a workbook (campaigns.calllist.export.write_xlsx)."""

    if not path.exists():
        return FileTrace(CALLLIST, str(path), GONE)
    try:
        removed, left = remove_from_xlsx(path, lambda ref: resolve(hasher, ref, ids) is not None)
        if removed and not left:
            path.unlink()
            return FileTrace(CALLLIST, str(path), DELETED, removed)
        return FileTrace(CALLLIST, str(path), REWRITTEN, removed)
    except OSError as exc:
        return FileTrace(CALLLIST, str(path), FAILED, reason=exc.strerror or type(exc).__name__)


def _rewrite(kind: str, path: Path, records: Records) -> FileTrace:
    if not path.exists():
        return FileTrace(kind, str(path), GONE)
    try:
        removed = 0
        kept: list[bytes] = []
        for mine, raw in records(path):
            if mine:
                removed += 1
            else:
                kept.append(raw)
        if not removed:
            return FileTrace(kind, str(path), REWRITTEN, 0)
        people_left = len(kept) - (1 if kind == CALLLIST else 0)
        if people_left <= 0:
            path.unlink()
            return FileTrace(kind, str(path), DELETED, removed)
        tmp = path.with_name(path.name + ".erasing")
        with tmp.open("wb") as out:
            out.writelines(kept)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
        return FileTrace(kind, str(path), REWRITTEN, removed)
    except OSError as exc:
        return FileTrace(kind, str(path), FAILED, reason=exc.strerror or type(exc).__name__)


def expire(conn: Connection, *, now: datetime, keep_days: int = KEEP_DAYS) -> list[FileTrace]:
    """Delete the call lists written more than `keep_days` ago."""
    cutoff = now.astimezone(UTC) - timedelta(days=keep_days)
    done: list[FileTrace] = []
    for file_id, name in conn.execute(
        select(exported_files.c.id, exported_files.c.path).where(
            exported_files.c.deleted_at.is_(None), exported_files.c.written_at < cutoff
        )
    ).all():
        path = Path(name)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            done.append(FileTrace(CALLLIST, name, FAILED, reason=exc.strerror or "unlink"))
            continue
        conn.execute(
            update(exported_files)
            .where(exported_files.c.id == file_id)
            .values(deleted_at=now.astimezone(UTC))
        )
        done.append(FileTrace(CALLLIST, name, DELETED))
    return done
