"""Partner files refused whole, in the partners' errors folders: forget deletes those that
hold the person (GD-5).

Nothing was imported from a file refused whole, so no index says which ones hold the
person: every file there is read as text in every encoding it may be in (a zip member by
member), and one that holds the person's email or phone in any spelling
(campaigns.archives.Matches, which needs their hashes, never their plaintext) is deleted
whole; the partner keeps its error report. Their expiry is campaigns.archives.expire's.
"""

from __future__ import annotations

import codecs
import functools
import io
import logging
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Final

from campaigns.archives import (
    DELETED,
    FAILED,
    GONE,
    REJECTED,
    ArchiveTrace,
    Matches,
    has_inbox,
    why,
)
from campaigns.polling import InboxOpener, open_inbox
from campaigns.sources.inbox import Inbox, InboxError
from campaigns.sources.partners_config import PartnerConfig

log = logging.getLogger(__name__)

# Files are read as text in pieces this long, each starting with the end of the one before
# (longer than any email or phone): a value cut at the edge is whole in the next.
_PIECE: Final = 1 << 20
_OVERLAP: Final = 512


def erase_rejected(
    partners: Mapping[str, PartnerConfig],
    matches: Matches,
    *,
    opener: InboxOpener = open_inbox,
) -> list[ArchiveTrace]:
    """Delete every file in the partners' errors folders that mentions the person.

    Nothing was imported from a file refused whole, so nothing says which ones hold the
    person: every file there is read, and one that holds their email or phone in any
    spelling is deleted whole. Lists those (`deleted`, kind `rejected`) and what could not
    be read (`failed`: call again); a file without the person is not listed. Needs no
    plaintext: `matches` is the person's hashes, as for `erase`.
    """
    traces: list[ArchiveTrace] = []
    for partner in partners.values():
        if not has_inbox(partner):
            continue
        folder = partner.sftp.errors if partner.sftp is not None else "errors"
        if not matches:
            reason = "the person's hashes are under no configured key"
            traces.append(_rejected(partner, folder, FAILED, reason))
            continue
        try:
            with opener(partner) as inbox:
                for f in inbox.list_errors():
                    found = _erase_rejected_file(inbox, partner, f.name, matches)
                    if found is not None:
                        traces.append(found)
        except InboxError as exc:
            traces.append(_rejected(partner, folder, FAILED, exc.reason))
            log.warning(
                "rejected files not erased", extra={"partner": partner.name, "reason": exc.reason}
            )
        except Exception as exc:  # a dropped connection, a bug: call again
            traces.append(
                _rejected(partner, folder, FAILED, f"erasure failed: {type(exc).__name__}")
            )
            log.exception("rejected files not erased", extra={"partner": partner.name})
    return traces


def _rejected(partner: PartnerConfig, name: str, action: str, reason: str = "") -> ArchiveTrace:
    return ArchiveTrace(partner.name, name, action, reason=reason, kind=REJECTED)


def _erase_rejected_file(
    inbox: Inbox, partner: PartnerConfig, name: str, matches: Matches
) -> ArchiveTrace | None:
    reason = ""
    with tempfile.TemporaryDirectory(prefix="outreach-rejected-") as tmp:
        copy = Path(tmp) / "rejected"
        try:
            inbox.fetch_error(name, copy)
        except FileNotFoundError:
            return None  # expired since the listing
        except OSError as exc:
            return _rejected(partner, name, FAILED, f"fetch failed: {why(exc)}")
        found = _mentions(copy, matches)
        if found is None:
            # A zip that cannot be read (damaged, encrypted): whether it holds the person
            # cannot be told, and it was never imported, so it goes whole.
            reason = "not readable: deleted whole"
        elif not found:
            return None
    try:
        deleted = inbox.delete_error(name)
    except OSError as exc:
        return _rejected(partner, name, FAILED, f"delete failed: {why(exc)}")
    return _rejected(partner, name, DELETED if deleted else GONE, reason)


def _mentions(path: Path, matches: Matches) -> bool | None:
    """Whether a file holds the person's email or phone anywhere, read as text in every
    encoding it may be in; a zip (Excel, OpenDocument) member by member, None when its
    members cannot be read."""
    if not zipfile.is_zipfile(path):
        return _text_mentions(lambda: path.open("rb"), matches)
    try:
        with zipfile.ZipFile(path) as archive:
            return any(
                _text_mentions(functools.partial(archive.open, info), matches)
                for info in archive.infolist()
                if not info.is_dir()
            )
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError):
        return None  # damaged, truncated, encrypted, or compressed as zipfile cannot read


def _text_mentions(open_raw: Callable[[], IO[bytes]], matches: Matches) -> bool:
    with open_raw() as raw:
        head = raw.read(_PIECE)
    # (codec, bytes skipped): UTF-16 with its BOM; else UTF-8 (with or without a BOM),
    # Windows-1252, and, with NUL bytes, UTF-16 without a BOM at either byte alignment
    # (text inside a binary file: an Excel 97-2003 workbook).
    readings = [("utf-16", 0)]
    if not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        readings = [("utf-8", 0), ("cp1252", 0)]
        if b"\x00" in head:
            readings += [(c, skip) for c in ("utf-16-le", "utf-16-be") for skip in (0, 1)]
    for encoding, skip in readings:
        with open_raw() as raw:
            raw.read(skip)
            text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
            tail = ""
            while piece := text.read(_PIECE):
                if matches.mentioned([tail + piece], windows=True):
                    return True
                tail = piece[-_OVERLAP:]
    return False
