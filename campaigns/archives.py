"""Archived and rejected partner files: deleted after the retention period, rewritten or
deleted for an erased person (GD-5).

The poller moves every imported file to its partner's archive folder and records it in
`archived_files` (campaigns.polling.record_archived). The files hold plaintext: names,
emails, phone numbers, addresses. Two duties follow:

- `expire` deletes every archived file recorded more than `keep_days` ago (default 30,
  OUTREACH_ARCHIVE_KEEP_DAYS) from each partner's archive folder (SFTP or local) and
  records the deletion. A file found in a folder that nothing records (archived before
  migration 0010, or by a poller that died between the move and the record) is recorded
  then, and expires `keep_days` after that. A partner whose inbox cannot be reached is
  reported in its result; the other partners go on.
- `erase` rewrites the archived files of an erased person's imports without their rows:
  the caller reads the imports (`imports_of`) and the person's keyed hashes (`Matches`)
  before `forget` deletes them, and calls `erase` after the erasure committed (it needs
  no plaintext, so a failed file can be retried later). Per file it says what it did:
  `rewritten` (with the rows removed; 0 when the file did not hold the person, and then
  the file is not touched), `deleted` (no row left, or not readable as CSV any more),
  `gone` (expired or deleted before) or `failed` (with a reason; never an identity).

Files refused whole sit in the partner's errors folder (the poller moves them there, beside
the error reports it writes for every file) and hold plaintext too, but no table records
them. So their age is their mtime as the folder reports it (SFTP or local), the only
evidence there is: a rename keeps it, so it is when the partner last wrote the file,
never later than its refusal; a file whose server reports no mtime counts as old.
`expire` deletes every file of the errors folder, rejected file or report, older than
`keep_days` (a report is no use once its file expired). `erase_rejected` reads every file
there for the erased person (no import says which holds them) and deletes, whole, each
one that mentions them: it was never imported, and the partner has its error report.

Which rows are the person's: the file is read as an import reads it (csvfile.inspect for
the encoding and delimiter, the same CSV reader, the partner's LeadReader). A row read as
a lead is the person's when its canonical email, phone or name-and-address hashes to one
of the person's digests; any row, read or not, is also the person's when any of its cells
holds the person's email or phone in another spelling (upper case, percent-encoded, a
phone with spaces, +47 or 0047 before it, or the national number inside a longer run of
digits; the last only for rows that could not be read). Kept rows are written back byte
for byte as the partner wrote them (their quoting and line ends, the file's encoding and
byte-order mark), so the file keeps its shape and imports as before, minus the person.
A rejected file is only read as text, in every encoding it may be in (a zip, such as an
Excel workbook, member by member), with the spellings match of rows that could not be read.

Nothing here reads the clock: `now` comes from the caller.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from sqlalchemy import Connection, Engine, insert, select, union, update

from campaigns.hashing import current_digest
from campaigns.polling import InboxOpener, open_inbox
from campaigns.schema import archived_files, consent_records, contact_sources, imports
from campaigns.sources import csvfile
from campaigns.sources.inbox import PART_SUFFIX, REPORT_SUFFIX, Inbox, InboxError, tagged
from campaigns.sources.leadreader import LeadReader
from campaigns.sources.partner import Lead
from campaigns.sources.partners_config import PartnerConfig
from suppression.errors import FileRefused, InvalidIdentity, RowError
from suppression.identity import normalise_email, normalise_phone
from suppression.keys import Hasher, KeyedHash
from suppression.policy import PolicyConfig

log = logging.getLogger(__name__)

KEEP_DAYS: Final = 30
SETTING: Final = "OUTREACH_ARCHIVE_KEEP_DAYS"
# What erase did to a file: stable strings (those of campaigns.filetraces).
REWRITTEN: Final = "rewritten"
DELETED: Final = "deleted"
GONE: Final = "gone"  # expired or deleted before: nothing to do
FAILED: Final = "failed"  # try again later; the reason says why
# Where a traced file is: the archive folder, or the errors folder (refused whole).
ARCHIVE: Final = "archive"
REJECTED: Final = "rejected"

_NATIONAL: Final = 8  # Norwegian national numbers: looked for inside longer digit runs
_CACHE_LIMIT: Final = 100_000
# An email-like token: no whitespace, quotes, brackets or list separators around the @.
_EMAIL_TOKEN = re.compile(r"[^\s@<>()\[\]{}\"'`,;:|/\\]+@[^\s@<>()\[\]{}\"'`,;:|/\\]+")
# A phone-like run: digits with the separators people write between them.
_PHONE_RUN = re.compile(r"\+?\d[\d \xa0\-./()]*\d")
_NOT_DIGIT = re.compile(r"\D")


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchiveTrace:
    """What `erase` did to one archived file, or `erase_rejected` to a rejected one."""

    partner: str
    file: str  # the name in the partner's archive (or errors) folder
    action: str  # rewritten | deleted | gone | failed
    rows_removed: int = 0
    reason: str = ""
    import_id: int | None = None
    kind: str = ARCHIVE  # archive | rejected

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "partner": self.partner,
            "file": self.file,
            "action": self.action,
            "rows_removed": self.rows_removed,
            "reason": self.reason,
            "import_id": self.import_id,
        }


@dataclass
class Expiry:
    """What `expire` did in one partner's archive and errors folders."""

    partner: str
    deleted: int = 0  # older than the retention period: deleted now
    kept: int = 0  # younger: still there
    gone: int = 0  # recorded, but no longer in the folder: recorded as deleted
    found: int = 0  # in the folder, recorded by nothing: recorded now, expire from now
    failed: int = 0  # could not be deleted now: tried again at the next run
    rejected_deleted: int = 0  # refused files in the errors folder, older: deleted now
    rejected_kept: int = 0  # younger: still there
    reports_deleted: int = 0  # error reports in the errors folder, older: deleted now
    error: str | None = None  # the inbox could not be reached or listed

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "ok": self.ok,
            "error": self.error,
            "deleted": self.deleted,
            "kept": self.kept,
            "gone": self.gone,
            "found": self.found,
            "failed": self.failed,
            "rejected_deleted": self.rejected_deleted,
            "rejected_kept": self.rejected_kept,
            "reports_deleted": self.reports_deleted,
        }


# -- the person ------------------------------------------------------------------------


class Matches:
    """An erased person's identities as keyed hashes, and whether a value is one of them.

    Built from what `forget` writes to the ledger, `(kind, keyed hashes under every key)`
    per identity, so no plaintext needs to outlive the erasure. A candidate value from a
    file is hashed under each of those keys that is configured and compared.
    """

    def __init__(
        self, hasher: Hasher, identities: Iterable[tuple[str, Sequence[KeyedHash]]]
    ) -> None:
        self.hasher = hasher
        digests: dict[str, set[bytes]] = {}
        key_ids: dict[str, None] = {}
        for kind, keys in identities:
            for key in keys:
                digests.setdefault(kind, set()).add(bytes(key.digest))
                if hasher.knows(key.key_id):
                    key_ids[key.key_id] = None
        self._digests = {kind: frozenset(found) for kind, found in digests.items()}
        self.key_ids: tuple[str, ...] = tuple(key_ids)
        self._seen: dict[tuple[str, str], bool] = {}

    @classmethod
    def of_values(cls, hasher: Hasher, values: Iterable[tuple[str, str]]) -> Matches:
        """From canonical identities (kind, value): hashed under every configured key."""
        return cls(hasher, [(kind, hasher.keyed_all(kind, value)) for kind, value in values])

    def __bool__(self) -> bool:
        return bool(self.key_ids) and any(self._digests.values())

    def has(self, kind: str, value: str) -> bool:
        """Whether the canonical `value` is one of the person's identities of `kind`."""
        wanted = self._digests.get(kind)
        if not wanted:
            return False
        seen = self._seen.get((kind, value))
        if seen is None:
            seen = any(self.hasher.digest(kind, value, k) in wanted for k in self.key_ids)
            if len(self._seen) < _CACHE_LIMIT:
                self._seen[(kind, value)] = seen
        return seen

    def has_digest(self, kind: str, digest: bytes | None) -> bool:
        return digest is not None and digest in self._digests.get(kind, ())

    def mentioned(self, cells: Sequence[str], *, windows: bool) -> bool:
        """Whether any cell holds one of the person's emails or phones in any spelling.

        `windows`: also look for a Norwegian national number inside a longer run of
        digits (two numbers in one cell, a number run into a date): for rows that could
        not be read, where anything may be anywhere.
        """
        for cell in cells:
            text = unquote(cell) if "%" in cell else cell
            if "@" in text:
                for token in _EMAIL_TOKEN.findall(text):
                    try:
                        email = normalise_email(token.strip("."))
                    except InvalidIdentity:
                        continue
                    if self.has("email", email):
                        return True
            for run in _PHONE_RUN.findall(text):
                digits = _NOT_DIGIT.sub("", run)
                if len(digits) < 5:
                    continue
                phone = _phone(run)
                if phone is not None and self.has("phone", phone):
                    return True
                if windows and len(digits) > _NATIONAL:
                    for i in range(len(digits) - _NATIONAL + 1):
                        if self.has("phone", "+47" + digits[i : i + _NATIONAL]):
                            return True
        return False

    def holds(self, lead: Lead | None, cells: Sequence[str]) -> bool:
        """Whether a row is the person's: `lead` is the row as read (None: refused)."""
        if lead is not None and (
            (lead.email is not None and self.has("email", lead.email))
            or (lead.phone is not None and self.has("phone", lead.phone))
            or self.has_digest("name_address", lead.name_address_hash)
        ):
            return True
        return self.mentioned(cells, windows=lead is None)


@functools.lru_cache(maxsize=65_536)
def _phone(run: str) -> str | None:
    """The E.164 spelling of a phone-like run, or None (dates and ids repeat: cached)."""
    try:
        return normalise_phone(run).e164
    except InvalidIdentity:
        return None


def imports_of(conn: Connection, contact_id: int) -> list[int]:
    """The partner imports a contact came from (their contact sources and consent records):
    the archived files `erase` must rewrite. Read it before `forget` deletes them."""
    found = conn.execute(
        union(
            select(contact_sources.c.import_id).where(
                contact_sources.c.contact_id == contact_id,
                contact_sources.c.import_id.is_not(None),
                contact_sources.c.source.like("partner:%"),
            ),
            select(consent_records.c.import_id).where(
                consent_records.c.contact_id == contact_id,
                consent_records.c.import_id.is_not(None),
                consent_records.c.source.like("partner:%"),
            ),
        )
    )
    return sorted({int(i) for (i,) in found})


# -- erasure ---------------------------------------------------------------------------


def erase(
    engine: Engine,
    partners: Mapping[str, PartnerConfig],
    import_ids: Iterable[int],
    matches: Matches,
    *,
    policy: PolicyConfig,
    now: datetime,
    opener: InboxOpener = open_inbox,
) -> list[ArchiveTrace]:
    """Rewrite the archived files of `import_ids` without the person's rows.

    Also read: the archived files no import is known for (archived before migration
    0010), which may hold the person too. A `failed` file is left as it was: call again.
    """
    ids = sorted(set(import_ids))
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                archived_files.c.id,
                archived_files.c.partner,
                archived_files.c.archived_as,
                archived_files.c.import_id,
                archived_files.c.deleted_at,
            )
            .where(
                archived_files.c.import_id.in_(ids)
                | (archived_files.c.import_id.is_(None) & archived_files.c.deleted_at.is_(None))
            )
            .order_by(archived_files.c.partner, archived_files.c.id)
        ).all()
    traces: list[ArchiveTrace] = []
    live: dict[str, list[_Archived]] = {}
    for r in rows:
        file = _Archived(int(r.id), str(r.partner), str(r.archived_as), r.import_id)
        if file.import_id is None and not has_inbox(partners.get(file.partner)):
            continue  # not known to hold the person, and out of reach: not this erasure's
        if r.deleted_at is not None:
            traces.append(file.trace(GONE))
        else:
            live.setdefault(file.partner, []).append(file)
    if not live:
        return traces
    if not matches:
        return traces + [
            f.trace(FAILED, reason="the person's hashes are under no configured key")
            for files in live.values()
            for f in files
        ]
    for name, files in live.items():
        partner = partners.get(name)
        if partner is None or not has_inbox(partner):
            traces += [
                f.trace(FAILED, reason="the partner has no inbox in the partners file")
                for f in files
            ]
            continue
        done: list[ArchiveTrace] = []
        try:
            with opener(partner) as inbox:
                for f in files:
                    done.append(_erase_file(engine, inbox, partner, f, matches, policy, now))
        except InboxError as exc:
            reason = exc.reason
            log.warning("archive erasure failed", extra={"partner": name, "reason": reason})
        except Exception as exc:  # a dropped connection, a bug: these files are retried
            reason = f"erasure failed: {type(exc).__name__}"
            log.exception("archive erasure failed", extra={"partner": name})
        else:
            reason = ""
        traces += done
        traces += [f.trace(FAILED, reason=reason) for f in files[len(done) :]]
    return traces


def has_inbox(partner: PartnerConfig | None) -> bool:
    return partner is not None and (partner.sftp is not None or partner.local_dir is not None)


@dataclass(frozen=True, slots=True)
class _Archived:
    id: int
    partner: str
    name: str
    import_id: int | None

    def trace(self, action: str, removed: int = 0, reason: str = "") -> ArchiveTrace:
        return ArchiveTrace(self.partner, self.name, action, removed, reason, self.import_id)


def _erase_file(
    engine: Engine,
    inbox: Inbox,
    partner: PartnerConfig,
    file: _Archived,
    matches: Matches,
    policy: PolicyConfig,
    now: datetime,
) -> ArchiveTrace:
    with tempfile.TemporaryDirectory(prefix="outreach-archive-") as tmp:
        original, rewritten = Path(tmp) / "archived", Path(tmp) / "rewritten"
        try:
            inbox.fetch_archived(file.name, original)
        except FileNotFoundError:
            _mark(engine, file.id, deleted_at=now)
            return file.trace(GONE)
        except OSError as exc:
            return file.trace(FAILED, reason=f"fetch failed: {why(exc)}")
        try:
            removed, left = _without(original, rewritten, partner, matches, policy, now)
        except (FileRefused, csv.Error, UnicodeError, ValueError):
            # Imported once, unreadable now (the partners file changed its encoding?):
            # whether it holds the person cannot be told, so it goes whole.
            removed, left = -1, 0
        if removed == 0:
            return file.trace(REWRITTEN)
        try:
            if left == 0:
                inbox.delete_archived(file.name)
            else:
                inbox.replace_archived(file.name, rewritten)
        except OSError as exc:
            return file.trace(
                FAILED, reason=f"{'delete' if left == 0 else 'rewrite'} failed: {why(exc)}"
            )
        if left == 0:
            _mark(engine, file.id, deleted_at=now)
            reason = "" if removed > 0 else "no longer readable as CSV: deleted whole"
            return file.trace(DELETED, max(removed, 0), reason)
        _mark(engine, file.id, rewritten_at=now)
        return file.trace(REWRITTEN, removed)


def _without(
    source: Path,
    dest: Path,
    partner: PartnerConfig,
    matches: Matches,
    policy: PolicyConfig,
    now: datetime,
) -> tuple[int, int]:
    """Copy `source` to `dest` without the person's rows: (rows removed, rows left)."""
    shape = csvfile.inspect(source, encoding=partner.encoding, delimiter=partner.delimiter)
    codec, bom = _output_codec(source, shape.encoding)
    encoder = codecs.getincrementalencoder(codec)("strict")
    removed = left = 0
    reader: LeadReader | None = None
    errors: list[RowError] = []
    with dest.open("wb") as out:
        out.write(bom)
        header_seen = False
        for row, cells, raw in _records(source, shape):
            if not cells:  # a blank line: kept as it was
                out.write(encoder.encode(raw))
                continue
            if not header_seen:
                header_seen = True
                try:
                    reader = LeadReader(
                        source.name, cells, partner.lead_format, matches.hasher, policy, now,
                        digest=current_digest(matches.hasher),
                    )  # fmt: skip
                except FileRefused:
                    reader = None  # every row is then looked through as text
                out.write(encoder.encode(raw))
                continue
            lead = reader.read(row, cells, errors) if reader is not None else None
            errors.clear()
            if matches.holds(lead, cells):
                removed += 1
                continue
            left += 1
            out.write(encoder.encode(raw))
        out.write(encoder.encode("", final=True))
    return removed, left


def _records(path: Path, shape: csvfile.Shape) -> Iterator[tuple[int, list[str], str]]:
    """csvfile.records' rows (the same reader, the same numbering, blank lines too), each
    with the text it was read from, exactly as the file holds it."""
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding=shape.encoding, errors="strict", newline="")
        consumed: list[str] = []

        def lines() -> Iterator[str]:
            for line in text:
                consumed.append(line)
                yield line

        row = 0
        for fields in csv.reader(lines(), delimiter=shape.delimiter, strict=False):
            row += 1
            chunk = "".join(consumed)
            consumed.clear()
            yield row, fields, chunk
        if consumed:  # nothing a reader returns a record for: kept as it was
            yield row + 1, [], "".join(consumed)


def _output_codec(path: Path, encoding: str) -> tuple[str, bytes]:
    """The codec that writes the decoded text back to the same bytes, and the BOM first."""
    with path.open("rb") as f:
        head = f.read(4)
    if encoding == "utf-8-sig":
        return "utf-8", codecs.BOM_UTF8 if head.startswith(codecs.BOM_UTF8) else b""
    if encoding == "utf-16":
        if head.startswith(codecs.BOM_UTF16_BE):
            return "utf-16-be", codecs.BOM_UTF16_BE
        if head.startswith(codecs.BOM_UTF16_LE):
            return "utf-16-le", codecs.BOM_UTF16_LE
        return "utf-16-le", b""
    return encoding, b""


def _mark(
    engine: Engine,
    file_id: int,
    *,
    deleted_at: datetime | None = None,
    rewritten_at: datetime | None = None,
) -> None:
    values = {
        k: v.astimezone(UTC)
        for k, v in (("deleted_at", deleted_at), ("rewritten_at", rewritten_at))
        if v is not None
    }
    with engine.begin() as conn:
        conn.execute(update(archived_files).where(archived_files.c.id == file_id).values(**values))


def why(exc: OSError) -> str:
    """An OSError's kind and the system's words for it: never the path or a file's content."""
    return f"{type(exc).__name__}: {exc.strerror}" if exc.strerror else type(exc).__name__


# -- retention -------------------------------------------------------------------------


def expire(
    engine: Engine,
    partners: Mapping[str, PartnerConfig],
    *,
    now: datetime,
    keep_days: int = KEEP_DAYS,
    opener: InboxOpener = open_inbox,
) -> list[Expiry]:
    """Delete the archived files of every partner with an inbox recorded more than
    `keep_days` before `now`, and the files of its errors folder whose mtime is older;
    never raises for one partner's trouble (its Expiry says)."""
    cutoff = now.astimezone(UTC) - timedelta(days=keep_days)
    results = []
    for partner in partners.values():
        if not has_inbox(partner):
            continue
        result = Expiry(partner.name)
        try:
            with opener(partner) as inbox:
                _expire(engine, partner, inbox, now, cutoff, result)
                _expire_errors(partner, inbox, cutoff, result)
        except InboxError as exc:
            result.error = exc.reason
            log.warning(
                "archive expiry failed", extra={"partner": partner.name, "reason": exc.reason}
            )
        except Exception as exc:  # the store, a dropped connection, a bug: the others go on
            result.error = f"expiry failed: {type(exc).__name__}"
            log.exception("archive expiry failed", extra={"partner": partner.name})
        results.append(result)
    return results


def _expire(
    engine: Engine,
    partner: PartnerConfig,
    inbox: Inbox,
    now: datetime,
    cutoff: datetime,
    result: Expiry,
) -> None:
    now = now.astimezone(UTC)
    # The records first, then the folder: a file the poller records meanwhile is in the
    # folder and not in `recorded` (looked up again below), never the other way round.
    with engine.connect() as conn:
        recorded = conn.execute(
            select(archived_files.c.id, archived_files.c.archived_as, archived_files.c.archived_at)
            .where(archived_files.c.partner == partner.name, archived_files.c.deleted_at.is_(None))
            .order_by(archived_files.c.id)
        ).all()
    listed = {f.name for f in inbox.list_archive()}
    known = {str(r.archived_as) for r in recorded}
    with engine.begin() as conn:
        gone = [int(r.id) for r in recorded if r.archived_as not in listed]
        if gone:
            conn.execute(
                update(archived_files).where(archived_files.c.id.in_(gone)).values(deleted_at=now)
            )
            result.gone += len(gone)
        unknown = sorted(listed - known)
        if unknown:
            result.found += _adopt(conn, partner, unknown, now)
    for r in recorded:
        if r.archived_as not in listed:
            continue
        if _utc(r.archived_at) >= cutoff:
            result.kept += 1
            continue
        try:
            inbox.delete_archived(str(r.archived_as))
        except OSError as exc:
            result.failed += 1
            log.warning(
                "archived file not deleted", extra={"partner": partner.name, "reason": why(exc)}
            )
            continue
        _mark(engine, int(r.id), deleted_at=now)
        result.deleted += 1


def _expire_errors(partner: PartnerConfig, inbox: Inbox, cutoff: datetime, result: Expiry) -> None:
    """The errors folder: nothing records its files, their mtime is their age."""
    for f in inbox.list_errors():
        report = f.name.endswith((REPORT_SUFFIX, REPORT_SUFFIX + PART_SUFFIX))
        if f.modified_at >= cutoff:
            result.rejected_kept += not report
            continue
        try:
            deleted = inbox.delete_error(f.name)
        except OSError as exc:
            result.failed += 1
            log.warning(
                "rejected file not deleted", extra={"partner": partner.name, "reason": why(exc)}
            )
            continue
        if deleted and report:
            result.reports_deleted += 1
        elif deleted:
            result.rejected_deleted += 1


def _adopt(conn: Connection, partner: PartnerConfig, names: list[str], now: datetime) -> int:
    """Record files found in the archive folder that nothing recorded, linked to the import
    their name says (the name as imported, or tagged with its SHA-256 as the poller does);
    returns how many were recorded."""
    still = {
        str(n)
        for (n,) in conn.execute(
            select(archived_files.c.archived_as).where(
                archived_files.c.partner == partner.name,
                archived_files.c.archived_as.in_(names),
                archived_files.c.deleted_at.is_(None),
            )
        )
    }
    names = [n for n in names if n not in still]  # recorded by the poller meanwhile
    if not names:
        return 0
    by_tag: dict[str, int] = {}  # the poller's tagged name: exact (the content's digest)
    by_name: dict[str, int] = {}  # the name as imported: the latest import under it
    for i, filename, sha256 in conn.execute(
        select(imports.c.id, imports.c.filename, imports.c.sha256)
        .where(imports.c.source == partner.source)
        .order_by(imports.c.id)
    ):
        by_tag[tagged(str(filename), str(sha256)[:12])] = int(i)
        by_name[str(filename)] = int(i)
    conn.execute(
        insert(archived_files),
        [
            {
                "partner": partner.name,
                "import_id": by_tag.get(n, by_name.get(n)),
                "archived_as": n[:500],
                "archived_at": now,
            }
            for n in names
        ],
    )
    return len(names)


def _utc(moment: datetime) -> datetime:
    """SQLite hands back what it stored in UTC without the zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
