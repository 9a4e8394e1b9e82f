"""The servers under test, each a separate process on 127.0.0.1 serving its own temp root."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.procs import Processes, python_module, wait_for_line
from bench.pyftpd_server import PASSWORD_ENV

LISTENING = r"listening on ([\d.]+):(\d+)"
BENCH_ITERATIONS = 4096
"""The smallest PBKDF2 count ftpd accepts, so login figures show the protocol, not the KDF."""


@dataclass(frozen=True)
class Endpoint:
    """How a client reaches a server: `kind` is "ftpd" (ftpc.Client) or "ftp" (ftplib).

    `digest` is what an ftpd session verifies its transfers with (ftplib ignores it).
    """

    kind: str
    host: str
    port: int
    user: str
    password: str
    digest: str = "md5"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Endpoint:
        return cls(**obj)


@dataclass
class Server:
    """A running server: `name` labels its figures; `root` is where its files land."""

    name: str
    endpoint: Endpoint
    root: Path
    pid: int
    slow_login: Endpoint | None = None
    """ftpd only: an account with the default 600,000 PBKDF2 iterations."""


def start_ftpd(procs: Processes, work: Path, clients: int) -> Server:
    """`python -m ftpd serve` on port 0, with accounts made through `UserStore`.

    The per-address connection limit is raised to fit the concurrent scenario, in which
    every client comes from 127.0.0.1.
    """
    from ftpd.auth import UserStore

    root, users = work / "ftpd-root", work / "ftpd-users.json"
    password, slow_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    store = UserStore(users)
    store.add("bench", password, "rwd", BENCH_ITERATIONS)
    store.add("bench600k", slow_password, "rwd")
    argv = python_module("ftpd", "serve", "--root", str(root), "--users", str(users))
    argv += ["--host", "127.0.0.1", "--port", "0", "--max-per-ip", str(max(20, clients + 8))]
    proc = procs.start(argv, "ftpd.log")
    match = wait_for_line(proc, procs.logs / "ftpd.log", LISTENING)
    host, port = match[1], int(match[2])
    return Server(
        "ftpd",
        Endpoint("ftpd", host, port, "bench", password),
        root,
        proc.pid,
        slow_login=Endpoint("ftpd", host, port, "bench600k", slow_password),
    )


def start_pyftpdlib(procs: Processes, work: Path) -> Server:
    root = work / "pyftpdlib-root"
    root.mkdir()
    password = secrets.token_urlsafe(12)
    argv = python_module("bench.pyftpd_server", "--root", str(root), "--user", "bench")
    proc = procs.start(argv, "pyftpdlib.log", env={**os.environ, PASSWORD_ENV: password})
    match = wait_for_line(proc, procs.logs / "pyftpdlib.log", LISTENING)
    return Server(
        "pyftpdlib", Endpoint("ftp", match[1], int(match[2]), "bench", password), root, proc.pid
    )


VSFTPD_CONF = """\
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
run_as_launching_user=YES
seccomp_sandbox=NO
anonymous_enable=YES
no_anon_password=YES
local_enable=NO
anon_root={root}
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_umask=022
pasv_enable=YES
pasv_address=127.0.0.1
max_clients=0
max_per_ip=0
xferlog_enable=NO
vsftpd_log_file={log}
secure_chroot_dir={empty}
"""
"""Anonymous uploads into a temp root, run as whoever starts the bench: no system account,
no chroot, nothing outside the temp dir. `listen_port` must be a number, so the bench picks a
free port first."""


def vsftpd_unusable() -> str | None:
    """Why vsftpd cannot be benchmarked here, or None if it can be tried."""
    if shutil.which("vsftpd") is None:
        return "vsftpd not installed (apt-get install vsftpd); its rows are skipped"
    return None


def start_vsftpd(procs: Processes, work: Path) -> Server:
    vsftpd = shutil.which("vsftpd")
    assert vsftpd is not None
    root, empty = work / "vsftpd-root", work / "vsftpd-empty"
    root.mkdir()
    empty.mkdir()
    root.chmod(0o777)
    last: Exception | None = None
    for attempt in range(3):
        port = _free_port()
        conf = work / f"vsftpd-{attempt}.conf"
        conf.write_text(
            VSFTPD_CONF.format(port=port, root=root, log=work / "logs/vsftpd.log", empty=empty)
        )
        conf.chmod(0o600)
        proc = procs.start([vsftpd, str(conf)], "vsftpd.log")
        try:
            _wait_for_banner(port, proc.poll)
        except (OSError, RuntimeError) as exc:
            last = exc
            procs.stop(proc)
            continue
        return Server("vsftpd", Endpoint("ftp", "127.0.0.1", port, "anonymous", ""), root, proc.pid)
    raise RuntimeError(f"vsftpd did not start: {last}; log: {procs.log_tail('vsftpd.log')}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_banner(port: int, exited: Callable[[], int | None], timeout: float = 10.0) -> None:
    """vsftpd prints nothing when ready: wait until it greets on its port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(64).startswith(b"220"):
                    return
        except OSError:
            if exited() is not None or time.monotonic() > deadline:
                raise
        if exited() is not None:
            raise RuntimeError(f"vsftpd exited with {exited()}")
        time.sleep(0.05)


def server_pids(pid: int) -> list[int]:
    """The server and its descendants: vsftpd forks a process per session."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids
