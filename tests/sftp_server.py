"""A real SFTP server for tests: asyncssh on 127.0.0.1, chrooted to a folder.

    with sftp_server(root) as (host, port, host_key_path, client_key_path, known_hosts_path):
        ...  # paramiko (or anything) connects with the client key, pinning the host key

Fresh ed25519 host and client keys are generated for each server, outside the chroot
(so they are not visible over SFTP). Only key authentication is accepted, for any
user name. `known_hosts_path` pins the server's key for `[127.0.0.1]:port`; tests of
a changed or unknown key write their own file (`known_hosts_line` helps).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import asyncssh

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


class SftpServer(NamedTuple):
    host: str
    port: int
    host_key_path: Path
    client_key_path: Path
    known_hosts_path: Path


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    """The known_hosts line pinning `key` for host:port (OpenSSH's [host]:port form)."""
    public = key.export_public_key("openssh").decode().strip()
    return f"[{host}]:{port} {public}\n"


@contextmanager
def sftp_server(root: Path) -> Iterator[SftpServer]:
    """An SFTP server whose "/" is `root`; stops when the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    keys = Path(tempfile.mkdtemp(prefix="outreach-sftp-keys-"))
    host_key, client_key = new_key(), new_key()
    host_key_path, client_key_path = keys / "host_ed25519", keys / "client_ed25519"
    host_key_path.write_bytes(host_key.export_private_key("openssh"))
    client_key_path.write_bytes(client_key.export_private_key("openssh"))
    client_key_path.chmod(0o600)
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key("openssh").decode())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sftp-server", daemon=True)
    thread.start()

    def sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=str(root))

    # Closing the listener leaves accepted connections open: they are closed at the stop,
    # so that no socket outlives the server (a client that just hung up included).
    connections: set[asyncssh.SSHServerConnection] = set()

    class Tracked(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            self.conn = conn
            connections.add(conn)

        def connection_lost(self, exc: Exception | None) -> None:
            connections.discard(self.conn)

    async def start() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            HOST,
            0,
            server_factory=Tracked,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            sftp_factory=sftp_factory,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
        )

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(START_TIMEOUT)
    try:
        port = int(server.sockets[0].getsockname()[1])
        known_hosts_path = keys / "known_hosts"
        known_hosts_path.write_text(known_hosts_line(HOST, port, host_key))
        yield SftpServer(HOST, port, host_key_path, client_key_path, known_hosts_path)
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()
            still_open = list(connections)
            for conn in still_open:
                conn.close()
            for conn in still_open:
                await conn.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(START_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT)
        loop.close()
        for path in keys.iterdir():
            path.unlink()
        keys.rmdir()
