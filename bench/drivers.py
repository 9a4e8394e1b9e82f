"""One client session per kind of server, behind the same four calls.

ftpd is driven through `ftpc.Client`, which verifies every transfer with the endpoint's
digest (md5 unless it says otherwise); FTP servers through the standard library's `ftplib`,
which does not. Both read and write in 1 MiB blocks.
"""

from __future__ import annotations

import contextlib
import ftplib
from pathlib import Path
from typing import Protocol

from bench.data import BUF
from bench.servers import Endpoint

TIMEOUT = 600.0


class Session(Protocol):
    def put(self, path: Path, name: str) -> str | None:
        """Upload; return the verified checksum if the protocol checks one."""

    def get(self, name: str, dest: Path) -> str | None:
        """Download to the file `dest`; return the verified checksum if the protocol checks one."""

    def put_many(self, paths: list[Path], folder: str = "") -> None:
        """Upload every file under its own name (in `folder`, which exists), pipelined where
        the protocol allows it."""

    def mkdir(self, name: str) -> None:
        """Create a folder in the root."""

    def list(self) -> int:
        """List the root; return the number of entries."""

    def close(self) -> None: ...


class FtpdSession:
    """A logged-in `ftpc.Client` (connect, hello and the SCRAM exchange happen here).

    Its checksums are in the endpoint's digest: md5, or e.g. xxh3-128 when it was negotiated.
    """

    def __init__(self, ep: Endpoint) -> None:
        from ftpc import Client

        self.client = Client(
            ep.host, ep.port, ep.user, ep.password, timeout=TIMEOUT, digest=ep.digest
        )

    def put(self, path: Path, name: str) -> str | None:
        return self.client.put(path, name).checksum

    def get(self, name: str, dest: Path) -> str | None:
        return self.client.get(name, dest).checksum

    def put_many(self, paths: list[Path], folder: str = "") -> None:
        """`Client.put_many`: small files go pipelined and the server commits them in groups."""
        names = [_in(folder, p.name) for p in paths]
        for outcome in self.client.put_many(paths, names):
            if isinstance(outcome, Exception):
                raise outcome

    def mkdir(self, name: str) -> None:
        self.client.mkdir(name)

    def list(self) -> int:
        return len(self.client.list())

    def close(self) -> None:
        self.client.close()


class FtpSession:
    """A logged-in `ftplib.FTP` in binary passive mode."""

    def __init__(self, ep: Endpoint) -> None:
        self.ftp = ftplib.FTP(timeout=TIMEOUT)
        try:
            self.ftp.connect(ep.host, ep.port)
            self.ftp.login(ep.user, ep.password)
        except BaseException:
            self.ftp.close()
            raise

    def put(self, path: Path, name: str) -> str | None:
        with open(path, "rb") as f:
            self.ftp.storbinary(f"STOR {name}", f, blocksize=BUF)
        return None

    def get(self, name: str, dest: Path) -> str | None:
        with open(dest, "wb") as f:
            self.ftp.retrbinary(f"RETR {name}", f.write, blocksize=BUF)
        return None

    def put_many(self, paths: list[Path], folder: str = "") -> None:
        """FTP has no pipelined upload: one STOR, and one data connection, per file."""
        for path in paths:
            self.put(path, _in(folder, path.name))

    def mkdir(self, name: str) -> None:
        self.ftp.mkd(name)

    def list(self) -> int:
        lines: list[str] = []
        self.ftp.retrlines("LIST", lines.append)
        return len(lines)

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            with contextlib.suppress(OSError):
                self.ftp.close()


def _in(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def connect(ep: Endpoint) -> Session:
    """A new logged-in session to `ep`."""
    return FtpdSession(ep) if ep.kind == "ftpd" else FtpSession(ep)


def perform(session: Session, op: str, local: Path, name: str) -> str | None:
    """One client operation: `put` or `get` a file as `name`; or upload every file of the
    directory `local` under its own name, one `put` after another (`putdir`) or with
    `put_many` (`putmany`). Returns the verified checksum of a single transfer, if any."""
    if op == "put":
        return session.put(local, name)
    if op == "get":
        return session.get(name, local)
    if op == "putdir":
        for path in sorted(local.iterdir()):
            session.put(path, path.name)
        return None
    if op == "putmany":
        session.put_many(sorted(local.iterdir()))
        return None
    raise ValueError(f"unknown operation {op!r}")
