"""Resumable transfers: an interrupted upload or download goes on from the verified bytes.

The agreement on the prefix is tested both ways (same bytes: resumed; changed file:
started over, never spliced), and the issue's own test is here: kill `ftpc` at about
half of a transfer, run it again, and count what the second run sends.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ftpc.cli import main as ftpc_main
from ftpc.files import resume_part
from ftpd.auth import UserStore
from ftpd.partials import Partials
from ftpd.storage import Storage
from ftpd.upload import Upload
from shared.protocol import Role, encode
from shared.writeback import DIRECT_FROM
from tests.conftest import (
    ACCOUNTS,
    TEST_ITERATIONS,
    Daemon,
    ProcessDaemon,
    Raw,
    wait_until,
)

SIZE = 4 << 20


def _file(tmp_path: Path, name: str = "big.bin", size: int = SIZE) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _partials(daemon: Daemon) -> list[Path]:
    return sorted(daemon.staging.glob("*.part"))


def _interrupt_upload(daemon: Daemon, path: Path, name: str, cut: int, user: str = "alice") -> None:
    """Send a resumable put of `path` and hang up after `cut` bytes of its body."""
    data = path.read_bytes()
    with Raw(daemon) as raw:
        raw.login(user)
        raw.send("put", name=name, size=len(data), resume=True)
        assert raw.recv().type == "continue"
        raw.chan.send_raw(encode("data", Role.CLIENT, size=len(data)) + data[:cut])
    # The server notices the hang-up and keeps what it wrote.
    assert wait_until(
        lambda: (
            any(p.stat().st_size == cut for p in _partials(daemon))
            and not daemon.server.storage.partials._active
        )
    )


def test_an_interrupted_upload_resumes_from_the_bytes_kept(daemon: Daemon, tmp_path: Path) -> None:
    path = _file(tmp_path)
    _interrupt_upload(daemon, path, "big.bin", SIZE // 2)
    with daemon.client() as c:
        assert c.list() == []  # a partial is never listed
        result = c.put(path, resume=True)
    assert result.resumed_from == SIZE // 2 and result.sent == SIZE - SIZE // 2
    assert result.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert (daemon.root / "big.bin").read_bytes() == path.read_bytes()
    assert _partials(daemon) == [] and list(daemon.staging.glob("*.json")) == []


@pytest.mark.parametrize("cut", [DIRECT_FROM // 2, DIRECT_FROM // 2 + 12345])
def test_a_large_upload_keeps_exactly_the_bytes_that_arrived(
    daemon: Daemon, tmp_path: Path, cut: int
) -> None:
    """A large md5 upload is written by a DirectWriter in aligned slots: what is kept when
    the client hangs up is still the exact prefix, an unaligned tail included."""
    path = _file(tmp_path, size=DIRECT_FROM + (1 << 20))
    _interrupt_upload(daemon, path, "big.bin", cut)
    [part] = _partials(daemon)
    assert part.read_bytes() == path.read_bytes()[:cut]
    with daemon.client() as c:
        result = c.put(path, resume=True)
    assert result.resumed_from == cut
    assert (daemon.root / "big.bin").read_bytes() == path.read_bytes()


def test_a_changed_file_starts_over_and_is_never_spliced(daemon: Daemon, tmp_path: Path) -> None:
    path = _file(tmp_path)
    _interrupt_upload(daemon, path, "big.bin", SIZE // 2)
    path.write_bytes(os.urandom(SIZE))  # same name and size, other bytes
    with daemon.client() as c:
        result = c.put(path, resume=True)
    assert result.resumed_from == 0 and result.sent == SIZE
    assert (daemon.root / "big.bin").read_bytes() == path.read_bytes()


def test_a_change_after_the_prefix_is_sent_fresh(daemon: Daemon, tmp_path: Path) -> None:
    """Only the verified prefix is reused: the stored file is exactly the current local one."""
    path = _file(tmp_path)
    _interrupt_upload(daemon, path, "big.bin", SIZE // 4)
    data = bytearray(path.read_bytes())
    data[-10:] = b"0123456789"
    path.write_bytes(data)
    with daemon.client() as c:
        result = c.put(path, resume=True)
    assert result.resumed_from == SIZE // 4
    assert (daemon.root / "big.bin").read_bytes() == bytes(data)


def test_only_the_same_account_resumes_a_partial(daemon: Daemon, tmp_path: Path) -> None:
    path = _file(tmp_path)
    _interrupt_upload(daemon, path, "big.bin", SIZE // 2, user="writer")
    with daemon.client() as c:
        assert c.put(path, resume=True).resumed_from == 0
    with daemon.client("writer") as c:  # its partial is still there for it
        assert c.put(path, "copy.bin", resume=True).resumed_from == 0
    assert len(_partials(daemon)) == 1  # writer's, for big.bin


def test_a_put_without_resume_keeps_nothing(daemon: Daemon, tmp_path: Path) -> None:
    path = _file(tmp_path)
    data = path.read_bytes()
    with Raw(daemon) as raw:
        raw.login()
        raw.send("put", name="big.bin", size=len(data))
        assert raw.recv().type == "continue"
        raw.chan.send_raw(encode("data", Role.CLIENT, size=len(data)) + data[:1000])
    assert wait_until(lambda: _partials(daemon) == [])


def test_data_must_start_at_zero_or_at_the_offered_offset(daemon: Daemon, tmp_path: Path) -> None:
    path = _file(tmp_path)
    _interrupt_upload(daemon, path, "big.bin", 1000)
    with Raw(daemon) as raw:
        raw.login()
        raw.send("put", name="big.bin", size=SIZE, resume=True)
        offer = raw.recv()
        assert offer.type == "continue" and offer["offset"] == 1000
        assert offer["prefix"] == hashlib.md5(path.read_bytes()[:1000]).hexdigest()
        raw.send("data", size=SIZE - 500, offset=500)
        refusal = raw.recv()
        assert refusal["code"] == "bad-request" and refusal["fatal"]
    # A protocol error drops the partial: it is not worth keeping.
    assert wait_until(lambda: _partials(daemon) == [])


def test_partials_survive_a_restart_and_expire_after_their_ttl(
    tmp_path: Path, users: UserStore
) -> None:
    root = tmp_path / "root"
    storage = Storage(root)
    up = storage.begin_upload("x.bin", 100, owner="alice", resumable=True)
    up.write(memoryview(b"a" * 40))
    up.suspend()
    part = storage.partials.part(up.id)
    storage.close()
    storage = Storage(root)  # a restart keeps it: it is resumable and fresh
    assert Path(part).exists()
    again = storage.begin_upload("x.bin", 100, owner="alice", resumable=True)
    assert again.offset == 40 and again.prefix == hashlib.md5(b"a" * 40).hexdigest()
    again.suspend()
    old = time.time() - 2 * 24 * 3600
    os.utime(part, (old, old))
    assert storage.partials.purge_expired(every=0) == 1
    assert not Path(part).exists() and list(storage.staging.iterdir()) == []
    storage.close()
    (root / ".ftpd" / "staging" / "stray.part").write_bytes(b"left by a crash")
    storage = Storage(root, resume_ttl=0)
    assert storage.purged == 1 and list(storage.staging.iterdir()) == []
    storage.close()


def test_an_interrupted_download_resumes_from_the_part_file(daemon: Daemon, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    (daemon.root / "big.bin").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    resume_part(out / "big.bin").write_bytes(data[: SIZE // 3])
    with daemon.client() as c:
        result = c.get("big.bin", out, resume=True)
    assert result.resumed_from == SIZE // 3 and result.sent == SIZE - SIZE // 3
    assert (out / "big.bin").read_bytes() == data
    assert not resume_part(out / "big.bin").exists()


def test_a_download_part_that_differs_starts_over(daemon: Daemon, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    (daemon.root / "big.bin").write_bytes(data)
    resume_part(tmp_path / "big.bin").write_bytes(os.urandom(SIZE // 3))
    with daemon.client() as c:
        result = c.get("big.bin", tmp_path, resume=True)
    assert result.resumed_from == 0
    assert (tmp_path / "big.bin").read_bytes() == data


def test_get_refuses_an_offset_it_did_not_ask_for(tmp_path: Path) -> None:
    from shared.errors import RemoteProtocolError
    from tests.conftest import fake_server

    body = b"x" * 10
    reply = encode(
        "file", Role.SERVER, name="f", size=10, mtime=0, offset=5, md5=hashlib.md5(body).hexdigest()
    )
    from ftpc.client import Client

    hello = encode(
        "hello",
        Role.SERVER,
        version=1,
        server="fake",
        mechanisms=["SCRAM-SHA-256"],
        capabilities=["resume"],
        max_header=65536,
    )
    with fake_server(hello + reply + body) as port:
        c = Client("127.0.0.1", port)
        with pytest.raises(RemoteProtocolError, match="resume"):
            c.get("f", tmp_path, resume=True)
        c.close()


def test_a_server_without_the_capability_is_not_asked(tmp_path: Path) -> None:
    """An older server would take the new fields as a protocol error: refuse before sending."""
    from ftpc.client import Client
    from shared.errors import BadRequest
    from tests.conftest import fake_hello, fake_server

    (tmp_path / "f").write_bytes(b"x")
    with fake_server(fake_hello()) as port:
        c = Client("127.0.0.1", port)
        for call, what in (
            (lambda: c.get("f", tmp_path / "g", resume=True), "resumable"),
            (lambda: c.put(tmp_path / "f", resume=True), "resumable"),
            (lambda: c.put(tmp_path / "f", "a/f"), "folders"),
            (lambda: c.put(tmp_path / "f", on_conflict="rename"), "on-conflict"),
            (lambda: c.mkdir("a"), "folders"),
            (lambda: c.list("a"), "folders"),
        ):
            with pytest.raises(BadRequest, match=what):
                call()
        assert c.connected
        c.close()


# --- the test: kill the client at about half, run it again, count the bytes ----------


def _ftpc_env(host: str, port: int, tmp_path: Path) -> dict[str, str]:
    """ftpc as alice against a daemon, with its cache and an empty config under tmp_path."""
    (tmp_path / "none.toml").write_text("")
    return {
        "FTPC_HOST": host,
        "FTPC_PORT": str(port),
        "FTPC_USER": "alice",
        "FTPC_PASSWORD": ACCOUNTS["alice"][0],
        "FTPC_CACHE_DIR": str(tmp_path / "cache"),
        "FTPC_CONFIG": str(tmp_path / "none.toml"),
    }


def _ftpc(daemon: ProcessDaemon, tmp_path: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, **_ftpc_env(daemon.host, daemon.port, tmp_path)}
    return [sys.executable, "-m", "ftpc", *args], env


def _kill_at_half(cmd: list[str], env: dict[str, str], progress: Callable[[], float]) -> None:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: progress() >= 0.5 or proc.poll() is not None, timeout=60)
        assert proc.poll() is None and progress() >= 0.5, "the transfer never got halfway"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def _done(cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    [done] = [e for e in events if e["event"] == "done"]
    return done


@pytest.fixture
def slow_daemon(tmp_path: Path) -> Iterator[ProcessDaemon]:
    store = UserStore(tmp_path / "users.json")
    store.add("alice", ACCOUNTS["alice"][0], "rwd", iterations=TEST_ITERATIONS)
    with ProcessDaemon(tmp_path / "root", store.path) as daemon:
        yield daemon


def test_kill_the_client_at_half_an_upload_and_resume(
    slow_daemon: ProcessDaemon, tmp_path: Path
) -> None:
    size = 16 << 20
    path = _file(tmp_path, size=size)
    staging = tmp_path / "root" / ".ftpd" / "staging"
    cmd, env = _ftpc(slow_daemon, tmp_path, "--limit-rate", "4M", "put", "--resume", str(path))

    def uploaded() -> float:
        return max((p.stat().st_size for p in staging.glob("*.part")), default=0) / size

    _kill_at_half(cmd, env, uploaded)
    cmd, env = _ftpc(slow_daemon, tmp_path, "--json", "put", "--resume", str(path))
    done = _done(cmd, env)
    assert 0.3 * size < done["sent"] < 0.7 * size, done  # roughly the other half
    assert done["resumed_from"] + done["sent"] == size
    assert done["md5"] == hashlib.md5(path.read_bytes()).hexdigest()
    assert (tmp_path / "root" / "big.bin").read_bytes() == path.read_bytes()


def test_kill_the_client_at_half_a_download_and_resume(
    slow_daemon: ProcessDaemon, tmp_path: Path
) -> None:
    size = 16 << 20
    data = os.urandom(size)
    (tmp_path / "root" / "big.bin").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    part = resume_part(out / "big.bin")
    args = ("get", "--resume", "--by-name", "big.bin", "-o", str(out))
    cmd, env = _ftpc(slow_daemon, tmp_path, "--limit-rate", "4M", *args)
    _kill_at_half(cmd, env, lambda: part.stat().st_size / size if part.exists() else 0)
    cmd, env = _ftpc(slow_daemon, tmp_path, "--json", *args)
    done = _done(cmd, env)
    assert 0.3 * size < done["sent"] < 0.7 * size, done
    assert done["md5"] == hashlib.md5(data).hexdigest()
    assert (out / "big.bin").read_bytes() == data and not part.exists()


def test_retries_resume_after_the_server_drops_the_connection(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--retries: a connection cut mid-upload is made again, and the upload resumes.

    The cut comes early (after 1 MiB of 16), so the rest cannot already be in flight in
    socket buffers and let the first attempt finish regardless."""
    size = 16 << 20
    path = _file(tmp_path, size=size)
    cut = {"done": False}
    original = Storage.begin_upload

    def begin(self: Storage, *args: object, **kw: object):  # type: ignore[no-untyped-def]
        upload = original(self, *args, **kw)  # type: ignore[arg-type]
        if not cut["done"]:
            # A large body lands in the upload's direct writer (`filled`), a small one is
            # copied (`write`): cut after either.
            for name in ("write", "filled"):
                setattr(upload, name, then_drop(upload, getattr(upload, name)))
        return upload

    def then_drop(upload: Upload, take: Callable[[Any], None]) -> Callable[[Any], None]:
        def take_then_drop(arg: Any) -> None:
            take(arg)
            if upload.received >= 1 << 20 and not cut["done"]:
                cut["done"] = True
                for session in list(daemon.server._sessions):
                    session.abort()

        return take_then_drop

    monkeypatch.setattr(Storage, "begin_upload", begin)
    env = _ftpc_env(daemon.host, daemon.port, tmp_path)
    args = ["--json", "put", "--retries", "3", "--retry-wait", "0", str(path)]
    result = CliRunner().invoke(ftpc_main, args, env=env)
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert "retry" in kinds and kinds[-1] == "summary"
    [done] = [e for e in events if e["event"] == "done"]
    assert done["resumed_from"] > 0 and done["sent"] < size
    assert (daemon.root / "big.bin").read_bytes() == path.read_bytes()


def test_a_resume_waits_briefly_for_the_session_letting_go_of_the_partial(
    tmp_path: Path,
) -> None:
    """The old session may still be writing its last bytes when the client is back: the
    claim waits for it (and no longer than `wait` for a session that keeps it)."""
    partials = Partials(str(tmp_path))
    id_ = partials.new_id()
    Path(partials.part(id_)).write_bytes(b"kept")
    partials.create(id_, "alice", "f", 10, "md5", None)  # active: its session holds it
    assert partials.claim("alice", "f", 10, "md5", wait=0.05) is None
    letting_go = threading.Timer(0.2, partials.release, args=(id_,))
    letting_go.start()
    try:
        claimed = partials.claim("alice", "f", 10, "md5", wait=30)
    finally:
        letting_go.join(10)
    assert claimed is not None and claimed.id == id_
    assert partials.claim("alice", "f", 10, "md5", wait=0.05) is None  # ours now
