"""A live daemon on 127.0.0.1, port 0, serving a root under tmp_path."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import scramp

from ftpc import Client
from ftpd.auth import UserStore
from ftpd.limits import Limits
from ftpd.server import FtpServer
from ftpd.storage import Storage
from shared.protocol import PROTOCOL_VERSION, Message, Role, encode
from shared.wire import Channel

# Tests use the RFC minimum so that logins are quick; the default (600,000) is tested in test_auth.
TEST_ITERATIONS = 4096

ACCOUNTS = {
    "alice": ("alice-password", "rwd"),
    "reader": ("reader-password", "r"),
    "writer": ("writer-password", "w"),
}


@dataclass
class Daemon:
    server: FtpServer
    root: Path
    users: UserStore
    host: str
    port: int

    def client(self, user: str = "alice", password: str | None = None, **kw: object) -> Client:
        if password is None:
            password = ACCOUNTS[user][0]
        return Client(self.host, self.port, user, password, timeout=10, **kw)  # type: ignore[arg-type]

    @property
    def staging(self) -> Path:
        return self.server.storage.staging


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    store = UserStore(tmp_path / "users.json")
    for name, (password, perms) in ACCOUNTS.items():
        store.add(name, password, perms, iterations=TEST_ITERATIONS)
    return store


def start_daemon(
    root: Path, users: UserStore, max_file_size: int | None = None, **kw: object
) -> tuple[FtpServer, threading.Thread]:
    """A daemon in a thread; keyword arguments go to FtpServer (limits default to idle 10 s)."""
    storage = Storage(root, max_file_size=max_file_size)
    kw.setdefault("limits", Limits(idle_timeout=10))
    server = FtpServer(("127.0.0.1", 0), storage, users, **kw)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return server, thread


def stop_daemon(server: FtpServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture
def daemon(tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture) -> Iterator[Daemon]:
    caplog.set_level(logging.INFO, logger="ftpd")
    root = tmp_path / "root"
    server, thread = start_daemon(root, users)
    host, port = server.address
    try:
        yield Daemon(server, server.storage.root, users, host, port)
    finally:
        stop_daemon(server, thread)
    assert_no_traceback(caplog)


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Every phase's records: at teardown, `caplog.records` holds only teardown's own."""
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    tracebacks = [r for r in records if r.exc_info]
    assert not tracebacks, f"the daemon logged a traceback: {tracebacks[0].getMessage()}"


@pytest.fixture
def bare_root() -> Iterator[logging.Logger]:
    """The root logger with no handlers and at INFO, restored after."""
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    for handler in saved:
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    yield root
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(saved_level)


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with daemon.client() as c:
        yield c


class Raw:
    """A hand-driven connection, for sending what the real client never would."""

    def __init__(self, target: Daemon | tuple[str, int]) -> None:
        address = (target.host, target.port) if isinstance(target, Daemon) else target
        self.sock = socket.create_connection(address, timeout=10)
        self.chan = Channel(self.sock, Role.CLIENT)
        self.hello = self.chan.expect("hello")

    def login(self, user: str = "alice") -> Message:
        scram = scramp.ScramClient(["SCRAM-SHA-256"], user, ACCOUNTS[user][0])
        self.chan.send(
            "auth",
            version=PROTOCOL_VERSION,
            mechanism="SCRAM-SHA-256",
            data=scram.get_client_first(),
        )
        scram.set_server_first(self.chan.expect("challenge")["data"])
        self.chan.send("auth-final", data=scram.get_client_final())
        ok = self.chan.expect("ok")
        scram.set_server_final(ok["data"])
        return ok

    def send(self, type_: str, **fields: object) -> None:
        self.chan.send(type_, **fields)

    def recv(self) -> Message:
        return self.chan.recv_message()

    def closed_by_server(self) -> bool:
        """True once the server has closed its end (reads EOF or a reset)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll a condition a bounded number of times."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def fake_hello(version: int = 1) -> bytes:
    return encode(
        "hello",
        Role.SERVER,
        version=version,
        server="fake",
        mechanisms=["SCRAM-SHA-256"],
        capabilities=[],
        max_header=65536,
    )


@contextmanager
def fake_server(script: bytes) -> Iterator[int]:
    """A lying server: sends `script` to the first client, drains it, closes. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(script)
                conn.settimeout(2)
                with suppress(OSError):
                    while conn.recv(65536):
                        pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(15)


class ProcessDaemon:
    """`ftpd serve` as a real process, for faults a thread cannot show (SIGKILL, a full disk).

    stderr (the log) goes to a file, so a chatty daemon never blocks on a full pipe.
    """

    def __init__(self, root: Path, users: Path, *args: str, wrap: list[str] | None = None) -> None:
        self.log_path = root.parent / f"{root.name}.log"
        cmd = [sys.executable, "-m", "ftpd", "serve", "--root", str(root), "--users", str(users)]
        cmd += ["--port", "0", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*(wrap or []), *cmd], stdout=subprocess.PIPE, stderr=log, text=True, env=env
            )
        assert self.proc.stdout is not None
        line = ""
        self.banner: list[str] = []
        for _ in range(5):  # a TLS fingerprint line may come first
            line = self.proc.stdout.readline()
            self.banner.append(line)
            if line.startswith("listening on") or not line:
                break
        match = re.match(r"listening on ([\d.]+):(\d+)", line)
        if not match:
            self.kill()
            raise RuntimeError(f"ftpd did not start: {line!r}\n{self.log}")
        self.host, self.port = match.group(1), int(match.group(2))

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, user: str = "alice", **kw: Any) -> Client:
        kw.setdefault("timeout", 30)
        return Client(self.host, self.port, user, ACCOUNTS[user][0], **kw)

    def rss(self) -> tuple[int, int]:
        """(current, peak) resident memory of the daemon, in bytes."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
        return int(values["VmRSS"]) * 1024, int(values["VmHWM"]) * 1024

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)

    def stop(self) -> int:
        """SIGTERM, as systemd would; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.proc.returncode

    def __enter__(self) -> ProcessDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
