"""A real IMAP server for tests: Dovecot (Debian package `dovecot-imapd`) started by
the test itself, in the foreground, with its own configuration in a temporary
directory and a port on 127.0.0.1.

    with Dovecot() as server:
        server.deliver("ola", raw_mail)           # APPEND over IMAP
        imap = server.client("ola")               # a logged-in imaplib client

Any user name logs in with `server.password`, and each name has its own empty
maildir, so a test that picks a fresh name starts with an empty mailbox. Without
Dovecot installed the tests that need it are skipped, or fail with CI=true.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import pytest

from tests.services import IN_CI

DOVECOT_PACKAGE = "dovecot-imapd"
STARTUP_DEADLINE = 30.0

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = outreach-test-{instance}
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 0
mail_location = maildir:{base}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={base}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
    )


def require_dovecot() -> str:
    binary = dovecot_binary()
    if binary is None:
        message = f"Dovecot is not installed (Debian package {DOVECOT_PACKAGE})"
        if IN_CI:
            pytest.fail(message + " (CI=true: the mailbox tests must not be skipped)")
        pytest.skip(message)
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Dovecot:
    def __init__(self, password: str = "test-imap-password") -> None:
        self.binary = require_dovecot()
        self.password = password
        self.host = "127.0.0.1"
        self.port = 0
        # Short: Dovecot's unix sockets live under it and socket paths are limited.
        self.base = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Dovecot:
        os.chmod(self.base, 0o755)  # Dovecot's own users must reach the files under it
        for sub in ("run", "state", "mail", "home"):
            (self.base / sub).mkdir()
        if os.geteuid() == 0:
            # Dovecot refuses to run its login and mail processes as root.
            login_user, internal_user, internal_group = "dovenull", "dovecot", "dovecot"
            mail_uid = pwd.getpwnam("nobody").pw_uid
            mail_gid = grp.getgrnam("nogroup").gr_gid
            for sub in ("mail", "home"):
                os.chown(self.base / sub, mail_uid, mail_gid)
        else:
            login_user = internal_user = pwd.getpwuid(os.geteuid()).pw_name
            internal_group = grp.getgrgid(os.getegid()).gr_name
            mail_uid, mail_gid = os.geteuid(), os.getegid()
        self.port = _free_port()
        config = self.base / "dovecot.conf"
        config.write_text(
            _CONFIG.format(
                base=self.base,
                instance=uuid.uuid4().hex[:8],
                internal_user=internal_user,
                internal_group=internal_group,
                login_user=login_user,
                password=self.password,
                mail_uid=mail_uid,
                mail_gid=mail_gid,
                port=self.port,
            )
        )
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            try:
                imap = imaplib.IMAP4(self.host, self.port, timeout=5)
            except OSError:
                time.sleep(0.05)
                continue
            imap.logout()
            return
        self.stop()
        raise RuntimeError(f"Dovecot did not start:\n{self.log()}")

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=15)
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- test helpers, all over IMAP -----------------------------------------------

    def client(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        imap.login(user, self.password)
        return imap

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        imap = self.client(user)
        try:
            status, _ = imap.append(folder, None, None, raw)
            assert status == "OK"
        finally:
            imap.logout()

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages in a folder (an encoded name, e.g. "H&AOU-ndtert"), or []
        when the folder does not exist."""
        imap = self.client(user)
        try:
            status, _ = imap.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, found = imap.uid("SEARCH", "ALL")
            result: list[bytes] = []
            for uid in (found[0] or b"").split():
                _, data = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                for item in data:
                    if isinstance(item, tuple):
                        result.append(item[1])
            with contextlib.suppress(imaplib.IMAP4.error):
                imap.close()
            return result
        finally:
            imap.logout()
