"""A real daemon on 127.0.0.1 port 0, driven through the real Client and raw sockets."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

import pytest

from ftpc import Client
from shared.errors import (
    AuthFailed,
    BadName,
    ChecksumMismatch,
    Exists,
    LocalFileExists,
    NotFound,
    PermissionDenied,
    StaleListing,
    TransportError,
    VersionMismatch,
)
from tests.conftest import Daemon, Raw, fake_hello, fake_server, wait_until

MiB = 1 << 20


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def make(tmp_path: Path, name: str, data: bytes) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    path = src / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("empty", 0),
        ("one-byte", 1),
        ("fifty.bin", 50 * MiB),
        ("中文 文件.txt", 1000),
        ("name with spaces.txt", 12345),
    ],
)
def test_put_ls_get_rm(
    daemon: Daemon, client: Client, tmp_path: Path, name: str, size: int
) -> None:
    data = os.urandom(size)
    path = make(tmp_path, name, data)
    progress: list[int] = []
    put = client.put(path, on_progress=progress.append)
    assert (put.name, put.size, put.md5, put.existed) == (name, size, md5(data), False)
    assert sum(progress) == size
    [entry] = client.list()
    assert (entry.index, entry.name, entry.size, entry.md5) == (1, name, size, md5(data))
    out = tmp_path / "out"
    out.mkdir()
    progress.clear()
    got = client.get(name, out, on_progress=progress.append)
    assert got.path == out / name and got.path.read_bytes() == data
    assert sum(progress) == size
    assert sorted(p.name for p in out.iterdir()) == [name]  # no temporary file left beside it
    assert client.remove(name) == name
    assert client.list() == []
    assert not (daemon.root / name).exists()


def test_get_by_index_resolves_against_the_listing_seen(client: Client, tmp_path: Path) -> None:
    for n in ("b", "c"):
        client.put(make(tmp_path, n, n.encode()))
    client.list()
    assert client.resolve(["2", "b"]) == ["c", "b"]


def test_stale_number_is_refused(daemon: Daemon, client: Client, tmp_path: Path) -> None:
    client.put(make(tmp_path, "b", b"b"))
    client.list()
    with daemon.client("alice") as other:
        other.put(make(tmp_path, "a", b"a"))  # now #1 is "a", not "b"
    with pytest.raises(StaleListing, match="#1 was 'b'"):
        client.resolve(["1"])
    with pytest.raises(NotFound):
        client.resolve(["7"])
    fresh = Client(daemon.host, daemon.port, "alice", "alice-password")
    with fresh, pytest.raises(StaleListing, match="run ls first"):
        fresh.resolve(["1"])


def test_existing_name_identical_and_overwrite(client: Client, tmp_path: Path) -> None:
    path = make(tmp_path, "f", b"v1")
    client.put(path)
    again = client.put(path)
    assert again.existed
    path.write_bytes(b"v2 is different")
    with pytest.raises(Exists):
        client.put(path)
    assert client.list()[0].md5 == md5(b"v1")
    replaced = client.put(path, overwrite=True)
    assert not replaced.existed and client.list()[0].md5 == md5(b"v2 is different")


def test_get_never_replaces_a_local_file_without_overwrite(client: Client, tmp_path: Path) -> None:
    client.put(make(tmp_path, "f", b"server"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_bytes(b"local")
    with pytest.raises(LocalFileExists):
        client.get("f", out)
    assert (out / "f").read_bytes() == b"local"
    client.get("f", out, overwrite=True)
    assert (out / "f").read_bytes() == b"server"
    client.get("f", out / "renamed.txt")
    assert (out / "renamed.txt").read_bytes() == b"server"
    assert sorted(p.name for p in out.iterdir()) == ["f", "renamed.txt"]


def test_errors_keep_the_session_alive(client: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        client.get("missing", tmp_path)
    with pytest.raises(NotFound):
        client.remove("missing")
    with pytest.raises(BadName):
        client.put(make(tmp_path, "ok", b"x"), name="../escape")
    assert client.list() == []


def test_wrong_password_and_unknown_user(daemon: Daemon, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AuthFailed) as wrong:
        daemon.client("alice", "not-her-password")
    with pytest.raises(AuthFailed) as unknown:
        Client(daemon.host, daemon.port, "mallory", "whatever", timeout=10)
    assert str(wrong.value) == str(unknown.value)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("login")]
    assert any('user="alice"' in m and "result=failed" in m for m in lines)
    assert any('user="mallory"' in m and "result=failed" in m for m in lines)


def test_permissions_are_enforced(daemon: Daemon, client: Client, tmp_path: Path) -> None:
    client.put(make(tmp_path, "f", b"data"))
    with daemon.client("reader") as reader:
        assert [e.name for e in reader.list()] == ["f"]
        reader.get("f", tmp_path)
        with pytest.raises(PermissionDenied):
            reader.put(make(tmp_path, "g", b"x"))
        with pytest.raises(PermissionDenied):
            reader.remove("f")
    with daemon.client("writer") as writer:
        writer.put(make(tmp_path, "g", b"x"))
        with pytest.raises(PermissionDenied):
            writer.list()
        with pytest.raises(PermissionDenied):
            writer.get("f", tmp_path / "elsewhere")
    assert sorted(p.name for p in daemon.root.iterdir() if p.name != ".ftpd") == ["f", "g"]


def test_everything_but_login_needs_authentication(daemon: Daemon) -> None:
    with Raw(daemon) as raw:
        for verb, fields in (
            ("ls", {}),
            ("get", {"name": "f"}),
            ("rm", {"name": "f"}),
            ("put", {"name": "f", "size": 1}),
        ):
            raw.send(verb, **fields)
            reply = raw.recv()
            assert (reply.type, reply["code"]) == ("error", "not-authenticated")
        raw.login()
        raw.send("ls")
        assert raw.recv().type == "listing"
        raw.chan.recv_body(lambda chunk: None)
        raw.send("auth", version=1, mechanism="SCRAM-SHA-256", data="n,,n=alice,r=abc")
        assert raw.recv()["code"] == "bad-request"  # a replayed login is refused


def test_auth_final_without_auth_is_refused(daemon: Daemon) -> None:
    with Raw(daemon) as raw:
        raw.send("auth-final", data="c=biws,r=x,p=eA==")
        assert raw.recv()["code"] == "bad-request"


def test_hello_and_version_mismatch(daemon: Daemon) -> None:
    with Raw(daemon) as raw:
        assert raw.hello["version"] == 1 and "SCRAM-SHA-256" in raw.hello["mechanisms"]
        raw.send("auth", version=2, mechanism="SCRAM-SHA-256", data="n,,n=alice,r=abc")
        reply = raw.recv()
        assert reply["code"] == "unsupported-version" and "version 1" in reply["message"]


def test_client_refuses_another_protocol_version() -> None:
    with fake_server(fake_hello(version=2)) as port, pytest.raises(VersionMismatch, match="2"):
        Client("127.0.0.1", port, timeout=5)


@pytest.mark.parametrize("fault", ["wrong-md5", "short-body"])
def test_client_rejects_a_bad_download(tmp_path: Path, fault: str) -> None:
    from shared.protocol import Role, encode

    data = b"x" * 1000
    stated = "0" * 32 if fault == "wrong-md5" else md5(data)
    body = data if fault == "wrong-md5" else data[:500]
    script = fake_hello() + encode(
        "file", Role.SERVER, name="f", size=len(data), md5=stated, mtime=0
    )
    out = tmp_path / "out"
    out.mkdir()
    expected = ChecksumMismatch if fault == "wrong-md5" else TransportError
    with (
        fake_server(script + body) as port,
        Client("127.0.0.1", port, timeout=5) as c,
        pytest.raises(expected),
    ):
        c.get("f", out)
    assert list(out.iterdir()) == []  # no final file, no temporary file


def _raw_put(
    raw: Raw, name: str, data: bytes, *, trailer_md5: str | None, overwrite: bool = False
) -> None:
    raw.send("put", name=name, size=len(data), overwrite=overwrite)
    assert raw.recv().type == "continue"
    raw.send("data", size=len(data))
    raw.chan.send_raw(data)
    if trailer_md5 is not None:
        raw.send("done", md5=trailer_md5)


def test_md5_mismatch_on_upload_publishes_nothing(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    client.put(make(tmp_path, "f", b"original"))
    with Raw(daemon) as raw:
        raw.login()
        _raw_put(raw, "f", b"corrupted", trailer_md5=md5(b"something else"), overwrite=True)
        reply = raw.recv()
        assert (reply.type, reply["code"]) == ("error", "checksum-mismatch")
        _raw_put(raw, "new", b"corrupted", trailer_md5="0" * 32)
        assert raw.recv()["code"] == "checksum-mismatch"
        # md5 given up front instead of in a trailer: same check
        raw.send("put", name="new", size=3, md5=md5(b"abc"))
        assert raw.recv().type == "continue"
        raw.send("data", size=3)
        raw.chan.send_raw(b"abd")
        assert raw.recv()["code"] == "checksum-mismatch"
        raw.send("ls")
        assert raw.recv()["count"] == 1
        raw.chan.recv_body(lambda chunk: None)
    assert [(e.name, e.md5) for e in client.list()] == [("f", md5(b"original"))]
    assert list(daemon.staging.iterdir()) == []


def test_client_killed_mid_upload_publishes_nothing(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    client.put(make(tmp_path, "f", b"old version"))
    raw = Raw(daemon)
    raw.login()
    raw.send("put", name="f", size=8 * MiB, overwrite=True)
    assert raw.recv().type == "continue"
    raw.send("data", size=8 * MiB)
    raw.chan.send_raw(os.urandom(4 * MiB))
    assert wait_until(lambda: any(daemon.staging.iterdir()))
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()  # a reset, as when the client is killed
    assert wait_until(lambda: not any(daemon.staging.iterdir()))
    assert [(e.name, e.md5) for e in client.list()] == [("f", md5(b"old version"))]


def test_twenty_concurrent_clients(daemon: Daemon, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    results: dict[str, str] = {}

    def work(i: int) -> None:
        try:
            data = os.urandom(256 * 1024 + i)
            path = make(tmp_path / f"c{i}", f"file-{i:02d}", data)
            with daemon.client() as c:
                c.put(path)
                out = tmp_path / f"c{i}" / "out"
                out.mkdir()
                got = c.get(path.name, out)
                assert got.md5 == md5(data) == md5(got.path.read_bytes())
                results[path.name] = md5(data)
        except BaseException as exc:
            errors.append(exc)

    for i in range(20):
        (tmp_path / f"c{i}").mkdir()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    assert len(results) == 20
    with daemon.client() as c:
        assert {e.name: e.md5 for e in c.list()} == results


def test_pipelined_requests_are_answered_in_order(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    from shared.protocol import Role, encode

    client.put(make(tmp_path, "f", b"abc"))
    with Raw(daemon) as raw:
        raw.login()
        raw.chan.send_raw(
            encode("ls", Role.CLIENT)
            + encode("get", Role.CLIENT, name="f")
            + encode("rm", Role.CLIENT, name="nope")
            + encode("ls", Role.CLIENT)
        )
        first = raw.recv()
        assert first.type == "listing"
        body = bytearray()
        raw.chan.recv_body(body.extend)
        second = raw.recv()
        assert second.type == "file"
        raw.chan.recv_body(body.extend)
        assert raw.recv()["code"] == "not-found"
        assert raw.recv().type == "listing"


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x00",
        b"\xff\xff\xff\xff",
        b"\x00\x00\x00\x05[1,2]",
        b"\x00\x00\x00\x02\xc3\x28",
        b'\x00\x00\x00\x0f{"type":"nope"}',
        b'\x00\x00\x00\x18{"type":"data","size":1}x',
    ],
)
def test_protocol_violations_close_only_that_connection(daemon: Daemon, garbage: bytes) -> None:
    with Raw(daemon) as raw:
        raw.chan.send_raw(garbage)
        reply = raw.recv()
        assert (reply.type, reply["code"], reply["fatal"]) == ("error", "bad-request", True)
        assert wait_until(raw.closed_by_server)
    with daemon.client() as c:
        assert c.list() == []


def test_transfers_are_logged(
    daemon: Daemon, client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client.put(make(tmp_path, "f", b"abc"))
    client.get("f", tmp_path / "copy")

    def logged_get() -> bool:  # the server logs a download after its last byte is sent
        return any(r.getMessage().startswith("get ") for r in caplog.records)

    assert wait_until(logged_get)
    lines = [r.getMessage() for r in caplog.get_records("setup") + caplog.records]
    put = next(m for m in lines if m.startswith("put "))
    for part in (
        "user=alice",
        "peer=127.0.0.1:",
        'name="f"',
        "bytes=3",
        f"md5={md5(b'abc')}",
        "seconds=",
        "result=ok",
    ):
        assert part in put
    assert any(m.startswith("get ") and "result=ok" in m for m in lines)
    assert any(m.startswith("login ") and "result=ok" in m for m in lines)


def test_shutdown_cuts_idle_sessions(tmp_path: Path, users: object) -> None:
    from tests.conftest import start_daemon, stop_daemon

    server, thread = start_daemon(tmp_path / "root", users)  # type: ignore[arg-type]
    host, port = server.address
    idle = Client(host, port, "alice", "alice-password", timeout=10)
    stop_daemon(server, thread)  # must not wait for the idle client's timeout
    with pytest.raises(TransportError):
        idle.list()
    idle.close()


def test_symlink_planted_in_root_is_not_served(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("private")
    os.symlink(secret, daemon.root / "leak")
    assert client.list() == []
    with pytest.raises(NotFound):
        client.get("leak", tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()
    with pytest.raises(Exists, match="not a file"):
        client.put(make(tmp_path, "leak", b"mine"), overwrite=True)
    assert secret.read_text() == "private"
    (daemon.root / "folder").mkdir()
    with pytest.raises(Exists, match="not a file"):
        client.put(make(tmp_path, "folder", b"mine"), overwrite=True)


@pytest.mark.no_cover  # traced, it took 52 s instead of 20; the listing code is covered elsewhere
def test_a_listing_of_100000_files(tmp_path: Path, users: object) -> None:
    """The listing travels as a body, far past what one header could hold."""
    from ftpd.limits import Limits
    from tests.conftest import start_daemon, stop_daemon

    # The first listing hashes 100,000 files dropped in by hand, and the client then reads
    # 100,000 entries before its next request: allow both time on a busy CI box (the usual
    # 10 s idle limit dropped the session once, in a run that took twice its usual time).
    server, thread = start_daemon(tmp_path / "root", users, limits=Limits(idle_timeout=120))  # type: ignore[arg-type]
    try:
        for i in range(100_000):
            os.close(os.open(server.storage.root / f"f{i:06d}", os.O_CREAT | os.O_WRONLY, 0o644))
        host, port = server.address
        with Client(host, port, "alice", "alice-password", timeout=120) as client:
            entries = client.list()
            assert len(entries) == 100_000
            assert entries[0].name == "f000000" and entries[-1].index == 100_000
            assert entries[-1].md5 == md5(b"")
            assert client.resolve(["100000"]) == ["f099999"]
    finally:
        stop_daemon(server, thread)


def test_too_large_is_refused_before_any_byte(tmp_path: Path, users: object) -> None:
    from shared.errors import TooLarge
    from tests.conftest import start_daemon, stop_daemon

    server, thread = start_daemon(tmp_path / "root", users, max_file_size=1000)  # type: ignore[arg-type]
    try:
        host, port = server.address
        with Raw((host, port)) as raw:
            raw.login()
            raw.send("put", name="big", size=1001)
            reply = raw.recv()  # the refusal comes instead of `continue`
            assert (reply.type, reply["code"]) == ("error", "too-large")
            assert "fatal" not in reply.fields
            raw.send("ls")
            assert raw.recv().type == "listing"
        with Client(host, port, "alice", "alice-password", timeout=10) as c:
            with pytest.raises(TooLarge):
                c.put(make(tmp_path, "big", b"x" * 1001))
            assert c.put(make(tmp_path, "fits", b"x" * 1000)).size == 1000
    finally:
        stop_daemon(server, thread)
