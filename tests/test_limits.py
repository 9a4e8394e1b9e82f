"""Connection limits, deadlines, minimum rate, quotas and the disk reserve, on a live daemon."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from ftpc import Client
from ftpd.auth import UserStore
from ftpd.limits import ConnectionGate, Limits
from ftpd.server import FtpServer
from ftpd.storage import Storage
from shared.errors import Busy, NoSpace, QuotaExceeded, TransportError
from shared.protocol import Role
from shared.ratelimit import RateGuard
from shared.wire import Channel
from tests.conftest import ACCOUNTS, Raw, assert_no_traceback, start_daemon, stop_daemon, wait_until


@contextmanager
def limited(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture, **kw: object
) -> Iterator[FtpServer]:
    caplog.set_level(logging.INFO, logger="ftpd")
    kw.setdefault("idle_timeout", 10)
    server, thread = start_daemon(tmp_path / "root", users, limits=Limits(**kw))  # type: ignore[arg-type]
    try:
        yield server
    finally:
        stop_daemon(server, thread)
    assert_no_traceback(caplog)


def first_reply(address: tuple[str, int], source: str = "127.0.0.1") -> tuple[socket.socket, str]:
    """Connect and return the socket with the type (or error code) of the first message."""
    sock = socket.create_connection(address, timeout=5, source_address=(source, 0))
    try:
        msg = Channel(sock, Role.CLIENT).recv_message()
    except BaseException:
        sock.close()
        raise
    return sock, msg["code"] if msg.type == "error" else msg.type


def test_limits_reject_nonsense() -> None:
    for bad in ({"max_connections": 0}, {"max_per_ip": 0}, {"header_timeout": 0}, {"min_rate": -1}):
        with pytest.raises(ValueError):
            Limits(**bad)  # type: ignore[arg-type]


def test_total_connections_are_capped_and_threads_stay_bounded(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    baseline = threading.active_count()
    with (
        limited(tmp_path, users, caplog, max_connections=3, max_per_ip=100) as server,
        ExitStack() as stack,
    ):
        held = []
        for _ in range(3):
            sock, first = first_reply(server.address)
            stack.callback(sock.close)
            assert first == "hello"
            held.append(sock)
        for _ in range(20):  # a burst past the limit: each refused at once, no thread spent
            sock, first = first_reply(server.address)
            with sock:
                assert first == "busy"
                assert sock.recv(1) == b""  # and closed
            assert threading.active_count() <= baseline + 1 + 3
        with pytest.raises(Busy, match="limit of 3 connections"):
            Client(*server.address, "alice", ACCOUNTS["alice"][0], timeout=5)
        held.pop().close()
        assert wait_until(lambda: server.gate.total == 2)
        with Client(*server.address, "alice", ACCOUNTS["alice"][0], timeout=5) as c:
            assert c.list() == []
    assert any("refused ip=127.0.0.1" in r.getMessage() for r in caplog.records)


def test_connections_per_address_are_capped(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    with limited(tmp_path, users, caplog, max_per_ip=2) as server, ExitStack() as stack:
        for _ in range(2):
            sock, first = first_reply(server.address)
            stack.callback(sock.close)
            assert first == "hello"
        sock, first = first_reply(server.address)
        sock.close()
        assert first == "busy"
        # Another address is not held back by the first one's connections.
        sock, first = first_reply(server.address, source="127.0.0.2")
        stack.callback(sock.close)
        assert first == "hello"


def test_gate_counts_are_released() -> None:
    gate = ConnectionGate(Limits(max_connections=2, max_per_ip=1))
    gate.admit("a")
    with pytest.raises(Busy):
        gate.admit("a")
    gate.admit("b")
    with pytest.raises(Busy):
        gate.admit("c")
    gate.release("a")
    gate.release("b")
    assert gate.total == 0
    gate.admit("a")


def test_a_header_must_arrive_within_the_deadline(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    baseline = threading.active_count()
    with limited(tmp_path, users, caplog, header_timeout=0.5) as server:
        with Raw(server.address) as raw:
            raw.login()
            time.sleep(0.7)  # silence between requests is the idle timeout's business
            raw.send("ls")
            assert raw.recv().type == "listing"
        with Raw(server.address) as raw:
            frame = b"\x00\x00\x00\x40" + b'{"type": "ls"' + b" " * 60
            closed_at = None
            for i, byte in enumerate(frame):  # one byte every 0.1 s: 7 s if it were allowed
                if _readable(raw.sock):
                    closed_at = i
                    break
                try:
                    raw.sock.send(bytes([byte]))
                except OSError:
                    closed_at = i
                    break
                time.sleep(0.1)
            assert closed_at is not None and closed_at < 30
            assert raw.closed_by_server()
        assert wait_until(lambda: threading.active_count() <= baseline + 1)
    assert any("took longer than 0.5 s" in r.getMessage() for r in caplog.records)


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_idle_connections_are_closed(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    with limited(tmp_path, users, caplog, idle_timeout=0.3) as server, Raw(server.address) as raw:
        raw.login()
        assert wait_until(raw.closed_by_server, timeout=5)


def test_a_stalled_upload_is_dropped_and_nothing_is_published(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    with limited(tmp_path, users, caplog, min_rate=1 << 20, rate_window=0.5) as server:
        (server.storage.root / "keep").write_bytes(b"old version")
        with Raw(server.address) as raw:
            raw.login()
            raw.send("put", name="keep", size=10 << 20, overwrite=True)
            assert raw.recv().type == "continue"
            raw.send("data", size=10 << 20)
            dropped = False
            for _ in range(50):  # 1 KiB per 0.05 s is far under 1 MiB/s
                try:
                    raw.sock.sendall(b"x" * 1024)
                except OSError:
                    dropped = True
                    break
                if _readable(raw.sock):
                    dropped = raw.closed_by_server()
                    break
                time.sleep(0.05)
            assert dropped
        assert (server.storage.root / "keep").read_bytes() == b"old version"
        assert wait_until(lambda: not any(server.storage.staging.iterdir()))
    assert any("too slow" in r.getMessage() for r in caplog.records)


def test_a_reader_that_stops_reading_is_dropped(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    baseline = threading.active_count()
    with limited(tmp_path, users, caplog, min_rate=1 << 20, rate_window=0.5) as server:
        (server.storage.root / "big").write_bytes(os.urandom(32 << 20))
        with Raw(server.address) as raw:
            raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.login()
            raw.send("get", name="big")
            assert raw.recv().type == "file"
            # Never read: the server's sends stall, and it gives up after the rate window.
            assert wait_until(lambda: server.gate.total == 0, timeout=10)
        assert wait_until(lambda: threading.active_count() <= baseline + 1)
    assert any(
        "stopped reading" in r.getMessage() or "too slow" in r.getMessage() for r in caplog.records
    )


def test_rate_guard_judges_each_window() -> None:
    now = [0.0]
    guard = RateGuard(100, 1.0, clock=lambda: now[0])
    guard.update(50)  # under a window: not judged yet
    now[0] = 1.0
    guard.update(60)  # 110 bytes in 1 s: fine, and a new window starts
    now[0] = 2.5
    with pytest.raises(TransportError, match="too slow"):
        guard.update(10)


def test_quota_is_checked_before_any_data(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    users.set_quota("alice", 1000)
    with limited(tmp_path, users, caplog) as server:
        src = tmp_path / "src"
        src.mkdir()
        for name, size in (("a", 600), ("b", 600), ("c", 900)):
            (src / name).write_bytes(b"x" * size)
        with Client(*server.address, "alice", ACCOUNTS["alice"][0], timeout=5) as c:
            c.put(src / "a")
            with pytest.raises(QuotaExceeded, match="quota of 1000 bytes"):
                c.put(src / "b")
            c.put(src / "c", name="a", overwrite=True)  # replacing one's own file frees it
            c.remove("a")
            c.put(src / "b")
        with Raw(server.address) as raw:  # refused before "continue": not one byte is read
            raw.login()
            raw.send("put", name="big", size=10**6)
            reply = raw.recv()
            assert (reply.type, reply["code"]) == ("error", "quota-exceeded")
            raw.send("ls")
            assert raw.recv().type == "listing"
        # Someone else's uploads do not count against alice, nor hers against them.
        with Client(*server.address, "writer", ACCOUNTS["writer"][0], timeout=5) as w:
            w.put(src / "c", name="w")


def test_concurrent_uploads_reserve_their_bytes(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "root")
    try:
        first = storage.begin_upload("one", 600, "fail", owner="bob", quota=1000)
        with pytest.raises(QuotaExceeded):
            storage.begin_upload("two", 600, "fail", owner="bob", quota=1000)
        free = storage.free_space()
        storage.begin_upload("three", 10, "fail").abort()
        assert storage.free_space() == free
        first.abort()
        storage.begin_upload("two", 600, "fail", owner="bob", quota=1000).abort()
        assert storage.usage("bob") == 0
    finally:
        storage.close()


def test_free_space_reserve_is_kept(tmp_path: Path) -> None:
    vfs = os.statvfs(tmp_path)
    disk_free = vfs.f_bavail * vfs.f_frsize
    storage = Storage(tmp_path / "root", reserve=disk_free + (10 << 30))
    try:
        assert storage.free_space() == 0
        with pytest.raises(NoSpace, match="do not fit"):
            storage.check_upload("one-byte", 1)
    finally:
        storage.close()


def test_a_reader_that_drains_too_slowly_is_dropped_within_a_window_or_so(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The rate is judged after every partial send, not once per 1 MiB sendfile call."""
    with limited(tmp_path, users, caplog, min_rate=1 << 20, rate_window=0.5) as server:
        (server.storage.root / "big").write_bytes(os.urandom(32 << 20))
        with Raw(server.address) as raw:
            raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            raw.login()
            raw.send("get", name="big")
            assert raw.recv().type == "file"
            dropped = False
            for _ in range(25):  # about 200 KB/s, a fifth of the minimum
                time.sleep(0.1)
                with contextlib.suppress(ConnectionResetError):
                    raw.sock.recv(20_000)
                if server.gate.total == 0:  # the server let go (queued bytes still arrive)
                    dropped = True
                    break
            assert dropped  # a whole 1 MiB at this pace would take 5 s
    reasons = ("too slow", "stopped reading")
    assert any(any(r in m.getMessage() for r in reasons) for m in caplog.records)
