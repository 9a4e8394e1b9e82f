"""Five bugs a review of the day's changes found, each fixed; the tests keep them fixed.

Lost --jobs units when a connection is refused, a rename that escaped the quota, get -r
onto a local file named like a remote folder, an empty part file left by a refused
resumable get, and the shell handing its one connection to several job threads.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpc import Client
from ftpc.plan import Item, Plan
from ftpc.report import JsonReporter
from ftpc.session import Session, Transfer
from ftpc.shell import Shell
from ftpc.state import MemoryState
from ftpd.auth import UserStore
from ftpd.limits import Limits
from shared.errors import NotFound, QuotaExceeded
from tests.conftest import Daemon, start_daemon, stop_daemon
from tests.ftpc_env import Ftpc, events, make_ftpc, write_tree


@pytest.fixture
def ftpc(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ftpc:
    return make_ftpc(daemon, tmp_path, monkeypatch)


@pytest.fixture
def two_per_ip(tmp_path: Path, users: UserStore) -> Iterator[Daemon]:
    """A daemon that admits at most two connections from one address."""
    server, thread = start_daemon(
        tmp_path / "root2", users, limits=Limits(idle_timeout=10, max_per_ip=2)
    )
    host, port = server.address
    try:
        yield Daemon(server, server.storage.root, users, host, port)
    finally:
        stop_daemon(server, thread)


def test_jobs_past_the_servers_connection_limit_lose_no_files(
    two_per_ip: Daemon, tmp_path: Path
) -> None:
    files = {f"f{i:02}": bytes([i]) * 100 for i in range(12)}
    for name, data in files.items():
        (two_per_ip.root / name).write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    plan = Plan(items=[Item(out / name, name, 100) for name in files])
    stream = io.StringIO()
    reporter = JsonReporter(stream)
    session = Session(lambda: two_per_ip.client(), reporter, MemoryState())
    try:
        session.get(plan, Transfer(jobs=6))
    finally:
        session.close()
    t = reporter.tally
    # A job refused a connection takes no files: the connected jobs move them all.
    assert t.ok == len(files) and t.failed == 0, [
        json.loads(line) for line in stream.getvalue().splitlines()
    ]


def test_rename_does_not_free_quota(tmp_path: Path, users: UserStore, daemon: Daemon) -> None:
    users.set_quota("alice", 1000)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"x" * 600)
    (src / "b").write_bytes(b"y" * 600)
    with daemon.client() as c:
        c.put(src / "a")
        with pytest.raises(QuotaExceeded):
            c.put(src / "b", name="a", on_conflict="rename")  # would be stored as a.1: 1200 bytes
    used = sum(p.stat().st_size for p in daemon.root.iterdir() if p.is_file())
    assert used <= 1000


def test_get_r_never_writes_a_file_under_its_folders_name(ftpc: Ftpc, daemon: Daemon) -> None:
    write_tree(daemon.root / "data", {"sub/a.txt": b"remote a"})
    out = ftpc.cwd / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "sub").write_bytes(b"a local file named like the remote folder")
    result = ftpc("--json", "get", "-r", "data", "-o", str(out), "--on-conflict", "overwrite")
    assert (out / "data" / "sub").read_bytes() == b"a local file named like the remote folder"
    assert events(result)[-1]["ok"] == 0 and result.exit_code != 0


def test_resumable_get_of_a_missing_file_leaves_nothing(client: Client, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(NotFound):
        client.get("missing.txt", out, resume=True)
    assert list(out.iterdir()) == []


def test_jobs_in_the_shell_use_their_own_connections(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    files = {f"f{i:02}": bytes([i]) * 300_000 for i in range(8)}
    for name, data in files.items():
        (daemon.root / name).write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    lines = iter([f"get -j 4 -o {out} {' '.join(files)}", "quit"])
    echoed: list[str] = []
    Shell(client, read=lambda prompt: next(lines), echo=echoed.append, cwd=out).run()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files, echoed
