"""Polling partner inboxes: take the files whose upload is finished, import, archive, report.

A file is taken when its name is not an upload in progress (`.part`, `.tmp`, ...) and
either a `<name>.done` marker is there or its size and mtime are the same as at the
previous poll (kept in `sftp_observations`): a file still growing is never read. So a
file first seen at this poll waits for the next one (the clock's, every
OUTREACH_SFTP_POLL_MINUTES): each waiting file says when it can be taken at the earliest
(`PollResult.earliest`). `poll_now` (`outreach partners poll --now`) does not wait for the
clock: it polls, lets the caller wait a few seconds, and polls again, so a file whose size
stood still in between is taken by the same command (docs/partners.md, "When a file is
taken").

For each file taken: fetch it, import it in one transaction (`campaigns.intake`),
and only after the commit move it to the archive folder (atomic rename) and write
its error report (row, field, reason; nothing else) to the errors folder. A file
refused whole goes to the errors folder with its report; one that ends inside a row
(`csvfile.TRUNCATED`) may be an upload that paused, so it is left in the inbox, still
arriving, until it has stood still for `incomplete_grace` (a `.done` marker says it is
whole: refused at once). A crash between commit and move imports nothing twice: the
next poll finds the content already imported (same partner, same identity), and only
archives it and writes its report again. Each file
archived is recorded in `archived_files` (`record_archived`), so that it expires and an
erasure finds it (campaigns.archives).

`poll` is the service the CLI (`outreach partners poll`), the dramatiq actor and the
clock call.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, delete, insert, select, update

from campaigns.importresult import ALREADY_IMPORTED, REFUSED, ImportResult, error_report
from campaigns.intake import import_lead_file
from campaigns.schema import archived_files, sftp_observations
from campaigns.sources.csvfile import TRUNCATED
from campaigns.sources.inbox import DONE_SUFFIX, Inbox, InboxError, taken
from campaigns.sources.local import LocalInbox
from campaigns.sources.partners_config import PartnerConfig
from suppression.errors import RowError
from suppression.keys import Hasher
from suppression.policy import PolicyConfig

log = logging.getLogger(__name__)

# What happened to a file in the inbox: stable strings.
ARCHIVED: Final = "archived"  # imported (or imported before): archived, report written
REJECTED: Final = "rejected"  # refused whole: moved to the errors folder, report written
FAILED: Final = "failed"  # could not be processed now; left in the inbox for the next poll
# Ends inside a row and stood still for less than the grace: left in the inbox, waiting.
INCOMPLETE: Final = "incomplete"
ALREADY_IMPORTED_ROW: Final = RowError(0, "file", ALREADY_IMPORTED)
# How long a file that ends inside a row must stand still before it is refused, not
# taken for an upload that paused.
INCOMPLETE_GRACE: Final = timedelta(minutes=15)
# The clock's polling interval when the caller does not say (OUTREACH_SFTP_POLL_MINUTES).
NEXT_POLL: Final = timedelta(minutes=5)

InboxOpener = Callable[[PartnerConfig], AbstractContextManager[Inbox]]


@dataclass
class FileOutcome:
    name: str
    outcome: str  # ARCHIVED | REJECTED | FAILED
    result: ImportResult | None = None
    archived_as: str | None = None
    report: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "outcome": self.outcome,
            "archived_as": self.archived_as,
            "report": self.report,
            "error": self.error,
            "import": self.result.as_dict() if self.result else None,
        }


@dataclass
class PollResult:
    """One partner's poll: the files taken, those still uploading, or why it failed."""

    partner: str
    files: list[FileOutcome] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # seen, not yet stable (or incomplete)
    incomplete: dict[str, str] = field(default_factory=dict)  # waiting: why, by file
    # Waiting: the earliest poll that can take it (the next one; for a file that ends
    # inside a row, once it stood still for the grace), by file.
    earliest: dict[str, datetime] = field(default_factory=dict)
    error: str | None = None  # the inbox could not be reached or listed

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.outcome != FAILED for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "ok": self.ok,
            "error": self.error,
            "files": [f.as_dict() for f in self.files],
            "waiting": self.waiting,
            "incomplete": self.incomplete,
            "earliest": {name: at.isoformat() for name, at in self.earliest.items()},
        }


@contextmanager
def open_inbox(partner: PartnerConfig) -> Iterator[Inbox]:
    """The partner's inbox: SFTP when configured, else its local folder."""
    inbox: Inbox
    if partner.sftp is not None:
        from campaigns.sources.sftp import SftpInbox  # paramiko only when SFTP is used

        inbox = SftpInbox(partner.name, partner.sftp)
    elif partner.local_dir is not None:
        inbox = LocalInbox(partner.local_dir)
    else:
        raise InboxError(partner.name, "has neither sftp nor local_dir in the partners file")
    try:
        yield inbox
    finally:
        inbox.close()


def poll(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    partners: Mapping[str, PartnerConfig],
    partner_name: str | None = None,
    *,
    now: datetime,
    opener: InboxOpener = open_inbox,
    incomplete_grace: timedelta = INCOMPLETE_GRACE,
    next_poll: timedelta = NEXT_POLL,
) -> list[PollResult]:
    """Poll one partner (by name) or every partner with an inbox; never raises for one
    partner's trouble: it is in that partner's PollResult. `next_poll` is how soon the
    next poll comes (the clock's interval): a waiting file's earliest time."""
    if partner_name is not None:
        chosen = [partners[partner_name]] if partner_name in partners else []
        if not chosen:
            return [PollResult(partner_name, error="no such partner in the partners file")]
    else:
        chosen = [p for p in partners.values() if p.sftp is not None or p.local_dir is not None]
    return [
        poll_partner(
            engine,
            hasher,
            policy,
            p,
            now=now,
            opener=opener,
            incomplete_grace=incomplete_grace,
            next_poll=next_poll,
        )
        for p in chosen
    ]


def poll_now(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    partners: Mapping[str, PartnerConfig],
    partner_name: str | None = None,
    *,
    now: datetime,
    settle: Callable[[], datetime],
    opener: InboxOpener = open_inbox,
    incomplete_grace: timedelta = INCOMPLETE_GRACE,
    next_poll: timedelta = NEXT_POLL,
) -> list[PollResult]:
    """Poll, and when a file waits only because this poll saw it first, let `settle` pass
    (the caller waits a few seconds and returns the time then) and poll those partners
    again: a file whose size and mtime stood still since the first poll is taken now, not
    at the clock's next poll. A file still growing still waits: the rule is the same, only
    the interval is the caller's. Each partner's result holds the files of both polls."""
    first = poll(
        engine,
        hasher,
        policy,
        partners,
        partner_name,
        now=now,
        opener=opener,
        incomplete_grace=incomplete_grace,
        next_poll=next_poll,
    )
    again = [r.partner for r in first if r.error is None and set(r.waiting) - set(r.incomplete)]
    if not again:
        return first
    later = settle()
    second = {
        r.partner: r
        for name in again
        for r in poll(
            engine,
            hasher,
            policy,
            partners,
            name,
            now=later,
            opener=opener,
            incomplete_grace=incomplete_grace,
            next_poll=next_poll,
        )
    }
    return [_merged(r, second[r.partner]) if r.partner in second else r for r in first]


def _merged(first: PollResult, second: PollResult) -> PollResult:
    """One partner's two polls as one: the files either took, what still waits after the
    second (or the second's error)."""
    return PollResult(
        first.partner,
        files=[*first.files, *second.files],
        waiting=second.waiting,
        incomplete=second.incomplete,
        earliest=second.earliest,
        error=second.error,
    )


def poll_partner(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    partner: PartnerConfig,
    *,
    now: datetime,
    opener: InboxOpener = open_inbox,
    incomplete_grace: timedelta = INCOMPLETE_GRACE,
    next_poll: timedelta = NEXT_POLL,
) -> PollResult:
    result = PollResult(partner.name)
    try:
        with opener(partner) as inbox:
            _poll(engine, hasher, policy, partner, inbox, now, result, incomplete_grace)
        for name in result.waiting:
            result.earliest.setdefault(name, now + next_poll)
    except InboxError as exc:
        result.error = exc.reason
        log.warning("partner poll failed", extra={"partner": partner.name, "reason": exc.reason})
    except Exception as exc:  # the store, a bug: this partner's poll fails, the others run
        result.error = f"poll failed: {type(exc).__name__}"
        log.exception("partner poll failed", extra={"partner": partner.name})
    return result


def _poll(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    partner: PartnerConfig,
    inbox: Inbox,
    now: datetime,
    result: PollResult,
    incomplete_grace: timedelta,
) -> None:
    listing = inbox.list()
    names = {f.name for f in listing}
    ready = [f for f in listing if taken(f.name)]
    seen = _observations(engine, partner.name)
    take = []
    with engine.begin() as conn:
        for f in ready:
            before = seen.get(f.name)
            if f.name + DONE_SUFFIX in names or (before and before[:2] == (f.size, f.mtime)):
                take.append(f)
                continue
            result.waiting.append(f.name)
            values = {"size": f.size, "mtime": f.mtime, "observed_at": now}
            if f.name in seen:
                conn.execute(
                    update(sftp_observations)
                    .where(
                        sftp_observations.c.partner == partner.name,
                        sftp_observations.c.filename == f.name,
                    )
                    .values(**values)
                )
            else:
                conn.execute(
                    insert(sftp_observations).values(
                        partner=partner.name, filename=f.name, **values
                    )
                )
        gone = [name for name in seen if name not in names]
        if gone:
            conn.execute(
                delete(sftp_observations).where(
                    sftp_observations.c.partner == partner.name,
                    sftp_observations.c.filename.in_(gone),
                )
            )
    for f in take:
        done = f.name + DONE_SUFFIX in names
        # Stood still since it was first seen at this size (a .done marker: it is whole).
        still = None if done else now - seen[f.name][2]
        outcome = _take(engine, hasher, policy, partner, inbox, f.name, f.size, now)
        if outcome.outcome == INCOMPLETE and still is not None and still < incomplete_grace:
            result.waiting.append(f.name)
            result.incomplete[f.name] = outcome.error or TRUNCATED
            result.earliest[f.name] = max(now + (incomplete_grace - still), now)
            log.info("partner file ends inside a row: waiting", extra={"partner": partner.name})
            continue
        if outcome.outcome == INCOMPLETE and outcome.result is not None:
            # Stood still long enough, or said to be whole: refused, with its report.
            outcome = _file_away(engine, partner, inbox, f.name, outcome.result, now)
        result.files.append(outcome)
        if outcome.outcome == FAILED:
            continue
        if f.name + DONE_SUFFIX in names:
            inbox.remove(f.name + DONE_SUFFIX)
        with engine.begin() as conn:
            conn.execute(
                delete(sftp_observations).where(
                    sftp_observations.c.partner == partner.name,
                    sftp_observations.c.filename == f.name,
                )
            )


def _observations(engine: Engine, partner: str) -> dict[str, tuple[int, int, datetime]]:
    """(size, mtime, when first seen at them) of the files seen at earlier polls."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                sftp_observations.c.filename,
                sftp_observations.c.size,
                sftp_observations.c.mtime,
                sftp_observations.c.observed_at,
            ).where(sftp_observations.c.partner == partner)
        )
        return {r.filename: (int(r.size), int(r.mtime), _utc(r.observed_at)) for r in rows}


def _utc(moment: datetime) -> datetime:
    """SQLite hands back what it stored in UTC without the zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _take(
    engine: Engine,
    hasher: Hasher,
    policy: PolicyConfig,
    partner: PartnerConfig,
    inbox: Inbox,
    name: str,
    size: int,
    now: datetime,
) -> FileOutcome:
    with tempfile.TemporaryDirectory(prefix="outreach-intake-") as tmp:
        local = Path(tmp) / "partner-file"
        try:
            fetched = inbox.fetch(name, local)
        except OSError as exc:
            return FileOutcome(name, FAILED, error=f"fetch failed: {type(exc).__name__}")
        if fetched != size:
            # Changed between the listing and the fetch: it was not finished after all.
            return FileOutcome(name, FAILED, error="the file changed while it was fetched")
        try:
            result = import_lead_file(
                engine,
                hasher,
                policy,
                partner.source,
                partner.lead_format,
                local,
                filename=name,
                encoding=partner.encoding,
                delimiter=partner.delimiter,
                now=now,
            )
        except Exception as exc:  # the store is down, a bug: retry at the next poll
            log.exception("partner file import failed", extra={"partner": partner.name})
            return FileOutcome(name, FAILED, error=f"import failed: {type(exc).__name__}")
    if result.status == REFUSED and result.errors[0].reason.startswith(f"{TRUNCATED}:"):
        # Perhaps an upload that paused: the caller decides to wait, or to file it away.
        return FileOutcome(name, INCOMPLETE, result, error=result.errors[0].reason)
    return _file_away(engine, partner, inbox, name, result, now)


def _file_away(
    engine: Engine,
    partner: PartnerConfig,
    inbox: Inbox,
    name: str,
    result: ImportResult,
    now: datetime,
) -> FileOutcome:
    # The import has committed (or refused the file whole): only now touch the inbox.
    errors = result.errors
    if result.status == ALREADY_IMPORTED and result.first_filename != name:
        errors = [ALREADY_IMPORTED_ROW, *errors]
    tag = (result.sha256 or now.strftime("%Y%m%d%H%M%S"))[:12]
    try:
        if result.status == REFUSED:
            moved, outcome = inbox.reject(name, tag), REJECTED
        else:
            moved, outcome = inbox.archive(name, tag), ARCHIVED
            _record(engine, partner.name, result.import_id, moved, now)
        report = inbox.write_report(name, error_report(errors))
    except OSError as exc:
        return FileOutcome(name, FAILED, result, error=f"archiving failed: {type(exc).__name__}")
    return FileOutcome(name, outcome, result, moved, report)


def _record(
    engine: Engine, partner: str, import_id: int | None, archived_as: str, now: datetime
) -> None:
    """Record an archived file; a store that fails now is not the file's failure: it is in
    the archive, and the next expiry run finds and records it (campaigns.archives)."""
    try:
        with engine.begin() as conn:
            record_archived(conn, partner, import_id, archived_as, now=now)
    except Exception:
        log.exception("archived file not recorded", extra={"partner": partner})


def record_archived(
    conn: Connection, partner: str, import_id: int | None, archived_as: str, *, now: datetime
) -> int:
    """Record that `archived_as` is in the partner's archive folder (moved there at `now`);
    returns the row's id. A name already recorded and not deleted is the same file,
    replaced (the same content archived again under its tagged name): its row is updated."""
    now = now.astimezone(UTC)
    found = conn.execute(
        select(archived_files.c.id).where(
            archived_files.c.partner == partner,
            archived_files.c.archived_as == archived_as,
            archived_files.c.deleted_at.is_(None),
        )
    ).first()
    if found is not None:
        conn.execute(
            update(archived_files)
            .where(archived_files.c.id == found.id)
            .values(import_id=import_id, archived_at=now)
        )
        return int(found.id)
    return int(
        conn.execute(
            insert(archived_files)
            .values(
                partner=partner,
                import_id=import_id,
                archived_as=archived_as[:500],
                archived_at=now,
            )
            .returning(archived_files.c.id)
        ).scalar_one()
    )
