"""A partner's SFTP inbox, with paramiko.

Key authentication only (no agent, no password, no keys looked up elsewhere). The
server's host key must be the one pinned in the partner's known_hosts file: an
unknown or changed key refuses to connect and says which (paramiko's RejectPolicy;
the system's known_hosts are not consulted). Every network step has a timeout.
Moves use the posix-rename extension: atomic, and replacing nothing we did not mean to.
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
import stat
from pathlib import Path

import paramiko

from campaigns.sources.inbox import (
    PART_SUFFIX,
    REPORT_SUFFIX,
    InboxError,
    InboxFile,
    InboxFiles,
    tagged,
)
from campaigns.sources.partners_config import SftpConfig


class SftpInbox:
    def __init__(self, partner: str, config: SftpConfig) -> None:
        self.partner = partner
        self.config = config
        self._client = _connect(partner, config)
        try:
            self._sftp = self._client.open_sftp()
            channel = self._sftp.get_channel()
            if channel is not None:
                channel.settimeout(config.timeout_seconds)
        except (paramiko.SSHException, OSError) as exc:
            self._client.close()
            raise InboxError(partner, f"SFTP session refused: {type(exc).__name__}") from None

    def _path(self, folder: str, name: str) -> str:
        return posixpath.join(folder, name)

    def list(self) -> list[InboxFile]:
        return self._files(self.config.inbox)

    def _files(self, folder: str) -> InboxFiles:
        try:
            entries = self._sftp.listdir_attr(folder)
        except OSError as exc:
            raise InboxError(self.partner, f"cannot list {folder}: {exc}") from None
        found = [
            InboxFile(e.filename, int(e.st_size or 0), int(e.st_mtime or 0))
            for e in entries
            if e.st_mode is not None and stat.S_ISREG(e.st_mode)
        ]
        return sorted(found, key=lambda f: f.name)

    def fetch(self, name: str, dest: Path) -> int:
        return self._copy(self.config.inbox, name, dest)

    def _copy(self, folder: str, name: str, dest: Path) -> int:
        with dest.open("wb") as out:
            self._sftp.getfo(self._path(folder, name), out, prefetch=True)
        return dest.stat().st_size

    def _exists(self, path: str) -> bool:
        try:
            self._sftp.stat(path)
        except FileNotFoundError:
            return False
        return True

    def _move(self, name: str, folder: str, tag: str) -> str:
        target = name if not self._exists(self._path(folder, name)) else tagged(name, tag)
        self._sftp.posix_rename(self._path(self.config.inbox, name), self._path(folder, target))
        return target

    def archive(self, name: str, tag: str) -> str:
        return self._move(name, self.config.archive, tag)

    def reject(self, name: str, tag: str) -> str:
        return self._move(name, self.config.errors, tag)

    def write_report(self, name: str, data: bytes) -> str:
        report = name + REPORT_SUFFIX
        final = self._path(self.config.errors, report)
        part = final + ".part"
        with self._sftp.open(part, "wb") as f:
            f.write(data)
        self._sftp.posix_rename(part, final)
        return report

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._sftp.remove(self._path(self.config.inbox, name))

    def list_archive(self) -> InboxFiles:
        return self._files(self.config.archive)

    def fetch_archived(self, name: str, dest: Path) -> int:
        return self._copy(self.config.archive, name, dest)

    def replace_archived(self, name: str, source: Path) -> None:
        final = self._path(self.config.archive, name)
        part = final + PART_SUFFIX
        with source.open("rb") as src, self._sftp.open(part, "wb") as f:
            f.set_pipelined(True)
            shutil.copyfileobj(src, f, 1 << 16)
        self._sftp.posix_rename(part, final)

    def delete_archived(self, name: str) -> bool:
        return self._delete(self.config.archive, name)

    def list_errors(self) -> InboxFiles:
        return self._files(self.config.errors)

    def fetch_error(self, name: str, dest: Path) -> int:
        return self._copy(self.config.errors, name, dest)

    def delete_error(self, name: str) -> bool:
        return self._delete(self.config.errors, name)

    def _delete(self, folder: str, name: str) -> bool:
        try:
            self._sftp.remove(self._path(folder, name))
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        self._sftp.close()
        self._client.close()


def _connect(partner: str, config: SftpConfig) -> paramiko.SSHClient:
    where = f"{config.host}:{config.port}"
    client = paramiko.SSHClient()
    try:
        # Only the pinned key counts: not the system's or the user's known_hosts.
        client.load_host_keys(str(config.known_hosts))
    except OSError:
        raise InboxError(partner, f"known_hosts file {config.known_hosts} cannot be read") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    timeout = config.timeout_seconds
    try:
        client.connect(
            config.host,
            port=config.port,
            username=config.user,
            key_filename=str(config.private_key),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
        )
    except paramiko.BadHostKeyException:
        client.close()
        raise InboxError(
            partner,
            f"the host key of {where} does not match the key pinned in {config.known_hosts}; "
            "refusing to connect (changed key: confirm it with the partner, then update the file)",
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        raise InboxError(partner, f"{where} refused our key ({config.private_key})") from None
    except paramiko.SSHException as exc:
        client.close()
        if "known_hosts" in str(exc):
            raise InboxError(
                partner,
                f"the host key of {where} is not pinned in {config.known_hosts}; refusing to connect",
            ) from None
        raise InboxError(partner, f"SSH to {where} failed: {exc}") from None
    except TimeoutError:
        client.close()
        raise InboxError(partner, f"{where} did not answer within {timeout:g} s") from None
    except OSError as exc:
        client.close()
        raise InboxError(partner, f"cannot reach {where}: {exc.strerror or exc}") from None
    return client
