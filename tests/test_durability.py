"""Faults: nothing lost, nothing half-visible (SIGKILL, a full disk, races on one name)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from ftpc import Client
from ftpd.auth import UserStore
from ftpd.limits import Limits
from shared.errors import Exists, NoSpace, TransportError
from tests.conftest import (
    ACCOUNTS,
    TEST_ITERATIONS,
    Daemon,
    ProcessDaemon,
    start_daemon,
    stop_daemon,
    wait_until,
)


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    store = UserStore(tmp_path / "users.json")
    for name, (password, perms) in ACCOUNTS.items():
        store.add(name, password, perms, iterations=TEST_ITERATIONS)
    return store.path


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_sigkill_mid_upload_keeps_the_old_version(tmp_path: Path, users_file: Path) -> None:
    root = tmp_path / "root"
    old, new = os.urandom(1 << 20), os.urandom(64 << 20)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    daemon = ProcessDaemon(root, users_file)
    try:
        with daemon.client() as c:
            c.put(tmp_path / "old", name="doc")
        sent = [0]

        def kill_half_way(n: int) -> None:
            sent[0] += n
            if sent[0] >= len(new) // 2 and daemon.proc.poll() is None:
                daemon.proc.kill()

        with pytest.raises(TransportError), daemon.client() as c:
            c.put(tmp_path / "new", name="doc", overwrite=True, on_progress=kill_half_way)
        daemon.proc.wait(30)
        assert daemon.proc.returncode == -9
        # The crash left a partial upload in staging, and the published file untouched.
        assert list((root / ".ftpd" / "staging").iterdir())
        assert (root / "doc").read_bytes() == old
    finally:
        daemon.kill()
    with ProcessDaemon(root, users_file) as again:
        assert list((root / ".ftpd" / "staging").iterdir()) == []
        assert "purged 1 staging files" in again.log
        with again.client() as c:
            [entry] = c.list()
            assert (entry.name, entry.md5) == ("doc", md5(old))
            c.put(tmp_path / "new", name="doc", overwrite=True)
            assert c.get("doc", tmp_path / "got").md5 == md5(new)


needs_userns = pytest.mark.skipif(
    shutil.which("unshare") is None
    or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0,
    reason="needs unshare and user namespaces, for a private tmpfs",
)


@needs_userns
def test_a_full_disk_fails_with_no_space_and_the_next_upload_works(
    tmp_path: Path, users_file: Path
) -> None:
    """A real ENOSPC: the root is an 8 MiB tmpfs mounted in the daemon's own namespace."""
    root = tmp_path / "mnt"
    root.mkdir()
    mount = f'mount -t tmpfs -o size=8m ftpd-test {root} && exec "$@"'
    wrap = ["unshare", "-rm", "sh", "-c", mount, "sh"]
    with ProcessDaemon(root, users_file, wrap=wrap) as daemon:
        # The daemon's view of its root, through its own mount namespace.
        inside = Path(f"/proc/{daemon.proc.pid}/root") / str(root).lstrip("/")
        assert os.statvfs(inside).f_blocks * os.statvfs(inside).f_frsize == 8 << 20
        big, small = os.urandom(6 << 20), os.urandom(100 << 10)
        (tmp_path / "big").write_bytes(big)
        (tmp_path / "small").write_bytes(small)
        with daemon.client() as c:
            c.put(tmp_path / "small", name="kept")
            with pytest.raises(NoSpace, match="do not fit"):  # refused before any byte
                c.put(_sized(tmp_path, 20 << 20), name="huge")
            sent = [0]

            def fill_disk(n: int) -> None:
                # Another process fills the disk while our upload is under way.
                sent[0] += n
                if sent[0] >= (1 << 20) and not (inside / ".ftpd" / "filler").exists():
                    (inside / ".ftpd" / "filler").write_bytes(b"\0" * (4 << 20))

            with pytest.raises(NoSpace, match="ran out of disk space"):
                c.put(tmp_path / "big", name="big", on_progress=fill_disk)
            assert list((inside / ".ftpd" / "staging").iterdir()) == []
            assert [e.name for e in c.list()] == ["kept"]
            c.put(tmp_path / "small", name="after")  # the session and the disk still work
            assert c.get("kept", tmp_path / "out").md5 == md5(small)
        assert "Traceback" not in daemon.log


def _sized(tmp_path: Path, size: int) -> Path:
    path = tmp_path / f"sized-{size}"
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_100_concurrent_uploads_of_one_name_store_one_complete_upload(
    tmp_path: Path, users: UserStore
) -> None:
    server, thread = start_daemon(
        tmp_path / "root", users, limits=Limits(idle_timeout=30, max_per_ip=200)
    )
    try:
        host, port = server.address
        contents = [os.urandom(256 << 10) for _ in range(100)]
        src = tmp_path / "src"
        src.mkdir()
        for i, data in enumerate(contents):
            (src / str(i)).write_bytes(data)
        errors: list[BaseException] = []
        created: list[int] = []

        def upload(i: int, overwrite: bool) -> None:
            try:
                with Client(host, port, "alice", ACCOUNTS["alice"][0], timeout=60) as c:
                    c.put(src / str(i), name="same" if overwrite else "once", overwrite=overwrite)
                    created.append(i)
            except Exists:
                pass
            except BaseException as exc:
                errors.append(exc)

        for overwrite in (True, False):
            created.clear()
            threads = [threading.Thread(target=upload, args=(i, overwrite)) for i in range(100)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not any(t.is_alive() for t in threads)
            assert errors == []
            name = "same" if overwrite else "once"
            stored = (server.storage.root / name).read_bytes()
            assert stored in contents  # exactly one complete upload, never a mix
            if not overwrite:
                assert created == [contents.index(stored)]  # one winner; the rest told Exists
        with Client(host, port, "alice", ACCOUNTS["alice"][0]) as c:
            listed = {e.name: e.md5 for e in c.list()}
        assert listed == {n: md5((server.storage.root / n).read_bytes()) for n in ("same", "once")}
        assert list(server.storage.staging.iterdir()) == []
    finally:
        stop_daemon(server, thread)


def test_a_download_during_replacement_gets_one_consistent_version(
    daemon: Daemon, tmp_path: Path
) -> None:
    versions = [os.urandom(16 << 20), os.urandom(16 << 20)]
    for i, data in enumerate(versions):
        (tmp_path / f"v{i}").write_bytes(data)
    with daemon.client() as c:
        c.put(tmp_path / "v0", name="doc")
    stop = threading.Event()
    failures: list[BaseException] = []

    def replace() -> None:
        try:
            with daemon.client() as c:
                for i in range(40):
                    if stop.is_set():
                        return
                    c.put(tmp_path / f"v{(i + 1) % 2}", name="doc", overwrite=True)
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=replace)
    writer.start()
    try:
        with daemon.client() as c:
            for i in range(8):
                got = c.get("doc", tmp_path / f"got{i}")  # the client checks the md5 too
                assert got.path.read_bytes() in versions
                assert got.md5 in {md5(v) for v in versions}
    finally:
        stop.set()
        writer.join(120)
    assert not writer.is_alive() and failures == []


def test_a_client_that_vanishes_mid_download_leaves_the_server_well(
    daemon: Daemon, tmp_path: Path
) -> None:
    (tmp_path / "big").write_bytes(os.urandom(32 << 20))
    with daemon.client() as c:
        c.put(tmp_path / "big")

    def vanish(n: int) -> None:
        raise KeyboardInterrupt

    client = daemon.client()
    with pytest.raises(KeyboardInterrupt):
        client.get("big", tmp_path / "out", on_progress=vanish)
    client.close()
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("*.part"))
    with daemon.client() as c:
        assert [e.name for e in c.list()] == ["big"]
    assert wait_until(lambda: daemon.server.gate.total == 0)
