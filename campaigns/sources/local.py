"""A local folder standing in for a partner's SFTP inbox (the demo, one machine, tests).

Layout: `<local_dir>/inbox`, `<local_dir>/archive`, `<local_dir>/errors`, created when
missing. Moves are `os.replace` within one file system: atomic, as on SFTP.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from campaigns.sources.inbox import PART_SUFFIX, REPORT_SUFFIX, InboxFile, InboxFiles, tagged

_NS = 1_000_000_000  # st_mtime_ns: nanoseconds


class LocalInbox:
    def __init__(self, root: Path) -> None:
        self.inbox = root / "inbox"
        self.archive_dir = root / "archive"
        self.errors_dir = root / "errors"
        for folder in (self.inbox, self.archive_dir, self.errors_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def list(self) -> list[InboxFile]:
        return _files(self.inbox)

    def fetch(self, name: str, dest: Path) -> int:
        return _copy(self.inbox / name, dest)

    def _move(self, name: str, folder: Path, tag: str) -> str:
        target = name if not (folder / name).exists() else tagged(name, tag)
        os.replace(self.inbox / name, folder / target)
        return target

    def archive(self, name: str, tag: str) -> str:
        return self._move(name, self.archive_dir, tag)

    def reject(self, name: str, tag: str) -> str:
        return self._move(name, self.errors_dir, tag)

    def write_report(self, name: str, data: bytes) -> str:
        report = name + REPORT_SUFFIX
        part = self.errors_dir / (report + ".part")
        part.write_bytes(data)
        os.replace(part, self.errors_dir / report)
        return report

    def remove(self, name: str) -> None:
        (self.inbox / name).unlink(missing_ok=True)

    def list_archive(self) -> InboxFiles:
        return _files(self.archive_dir)

    def fetch_archived(self, name: str, dest: Path) -> int:
        return _copy(self.archive_dir / name, dest)

    def replace_archived(self, name: str, source: Path) -> None:
        part = self.archive_dir / (name + PART_SUFFIX)
        with source.open("rb") as src, part.open("wb") as out:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, self.archive_dir / name)

    def delete_archived(self, name: str) -> bool:
        return _delete(self.archive_dir / name)

    def list_errors(self) -> InboxFiles:
        return _files(self.errors_dir)

    def fetch_error(self, name: str, dest: Path) -> int:
        return _copy(self.errors_dir / name, dest)

    def delete_error(self, name: str) -> bool:
        return _delete(self.errors_dir / name)

    def close(self) -> None:
        pass


def _copy(source: Path, dest: Path) -> int:
    shutil.copyfile(source, dest)
    return dest.stat().st_size


def _delete(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _files(folder: Path) -> list[InboxFile]:
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                found.append(InboxFile(entry.name, st.st_size, st.st_mtime_ns, _NS))
    return sorted(found, key=lambda f: f.name)
