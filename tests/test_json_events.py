"""`ftpc --json`: only JSON on stdout, events in order, the schema of docs/SCRIPTING.md, the
summary's counts, an exit code per failure class; and what --dry-run does and does not do."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ftpc.cli import main as ftpc_main
from ftpd.auth import UserStore
from tests.conftest import Daemon, start_daemon, stop_daemon
from tests.ftpc_env import Ftpc, events, isolated_env, kinds, make_ftpc, md5, tree, write_tree

FILES = {"a.txt": b"alpha", "sub/b.txt": b"beta" * 10, "sub/c.bin": bytes(3 << 20)}
DONE_FIELDS = {
    "event",
    "op",
    "name",
    "bytes",
    "seconds",
    "digest",
    "checksum",
    "md5",
    "sent",
    "resumed_from",
}


@pytest.fixture
def ftpc(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ftpc:
    write_tree(tmp_path / "work" / "up", FILES)
    return make_ftpc(daemon, tmp_path, monkeypatch)


def of(evs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["event"] == kind]


def test_put_and_get_events_in_order(
    ftpc: Ftpc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ftpc.report.PROGRESS_INTERVAL", 0.0)  # every chunk: deterministic
    result = ftpc("--json", "put", "-r", "up", "--to", "j")
    assert result.exit_code == 0, result.output
    evs = events(result)
    assert evs[0] == {
        "event": "plan",
        "op": "put",
        "files": 3,
        "bytes": sum(map(len, FILES.values())),
        "refused": 0,
    }
    assert [e["name"] for e in of(evs, "mkdir")] == ["j", "j/up", "j/up/sub"]
    assert evs[-1]["event"] == "summary" and kinds(evs).count("summary") == 1
    for rel, data in FILES.items():
        name = f"j/up/{rel}"
        mine = [e for e in evs if e.get("name") == name]
        assert [e["event"] for e in mine if e["event"] != "progress"] == ["start", "done"]
        start, done = mine[0], mine[-1]
        assert start == {"event": "start", "op": "put", "name": name, "size": len(data), "job": 0}
        assert set(done) == DONE_FIELDS
        assert done["bytes"] == len(data) and done["md5"] == done["checksum"] == md5(
            ftpc.cwd / "up" / rel
        )
        assert done["digest"] == "md5" and isinstance(done["seconds"], float)
        for p in mine[1:-1]:
            assert set(p) == {"event", "op", "name", "bytes", "size", "job"}
            assert 0 < p["bytes"] < p["size"] == len(data)
    big = [e for e in of(evs, "progress") if e["name"] == "j/up/sub/c.bin"]
    assert big and [p["bytes"] for p in big] == sorted(p["bytes"] for p in big)
    summary = evs[-1]
    assert (summary["ok"], summary["skipped"], summary["failed"], summary["exit"]) == (3, 0, 0, 0)
    assert summary["bytes"] == sum(map(len, FILES.values()))

    result = ftpc("--json", "get", "-r", "j/up", "-o", str(tmp_path / "down"))
    assert result.exit_code == 0, result.output
    evs = events(result)
    assert evs[0]["event"] == "plan" and evs[0]["files"] == 3
    done = of(evs, "done")
    assert {e["path"] for e in done} == {str(tmp_path / "down" / "up" / r) for r in FILES}
    assert all(set(e) == DONE_FIELDS | {"path"} for e in done)
    assert tree(tmp_path / "down" / "up") == FILES


def test_every_command_writes_only_json(ftpc: Ftpc, tmp_path: Path) -> None:
    commands = [
        ("mkdir", "-p", "x/y"),
        ("put", "up/a.txt", "--to", "x"),
        ("put", "up/a.txt", "--to", "x"),
        ("ls", "x"),
        ("get", "x/a.txt", "-o", str(tmp_path / "g")),
        ("rm", "x/a.txt", "x/y"),
        ("put", "-n", "up/a.txt"),
        ("get", "-r", "x", "--dry-run"),
    ]
    for args in commands:
        result = ftpc("--json", *args)
        assert result.exit_code == 0, (args, result.output)
        evs = events(result)  # every line parses
        assert evs and evs[-1]["event"] == "summary", args
    assert of(events(ftpc("--json", "ls")), "entry")[0]["kind"] == "dir"
    # FTPC_JSON=1 is the same switch; ls --json alone gives entries too.
    assert events(ftpc("ls", FTPC_JSON="1"))[-1]["event"] == "summary"
    assert of(events(ftpc("ls", "--json")), "entry")[0]["path"] == "x"


def test_exit_codes_by_failure_class(ftpc: Ftpc, daemon: Daemon, tmp_path: Path) -> None:
    assert ftpc("put", "up/a.txt").exit_code == 0
    (ftpc.cwd / "up" / "a.txt").write_bytes(b"changed")

    def failing(code: int, *args: str, **env: str) -> list[dict[str, Any]]:
        result = ftpc("--json", *args, **env)
        assert result.exit_code == code, (args, result.output)
        assert "Error: " in result.stderr and "Traceback" not in result.output
        return events(result) if result.stdout else []

    failing(3, "ls", FTPC_PASSWORD="wrong")  # auth
    evs = failing(3, "put", "up/a.txt", "--on-conflict", "overwrite", user="reader")
    assert of(evs, "error")[0]["code"] == "permission-denied"
    evs = failing(4, "get", "nothing.txt")  # not found
    assert of(evs, "error")[0] | {"message": ""} == {
        "event": "error",
        "op": "get",
        "name": "nothing.txt",
        "code": "not-found",
        "exit": 4,
        "message": "",
    }
    failing(4, "get", "1")  # a number, but no listing seen
    evs = failing(5, "put", "up/a.txt")  # conflict
    assert evs[-1]["exit"] == 5 and evs[-1]["failed"] == 1
    failing(2, "get", "a//b")  # usage: a bad path
    failing(2, "put", "--on-conflict", "maybe", "up/a.txt")
    assert failing(2, "put") == []  # a usage error found by click: no event at all
    with socket.socket() as s:  # network: a port with nobody listening
        s.bind(("127.0.0.1", 0))
        closed = str(s.getsockname()[1])
    failing(7, "ls", FTPC_PORT=closed)
    evs = failing(1, "put", "up/missing.txt", "up/a.txt", "--to", "fresh")
    assert [e["code"] for e in of(evs, "error")] == ["local"]
    assert evs[-1]["ok"] == 1 and evs[-1]["failed"] == 1 and evs[-1]["exit"] == 1
    assert (daemon.root / "fresh" / "a.txt").read_bytes() == b"changed"  # the others went on


def test_too_large_is_exit_code_8(tmp_path: Path, users: UserStore) -> None:
    server, thread = start_daemon(tmp_path / "small", users, max_file_size=10)
    try:
        home = tmp_path / "home"
        env = isolated_env(home, None) | {
            "FTPC_HOST": "127.0.0.1",
            "FTPC_PORT": str(server.address[1]),
            "FTPC_USER": "alice",
            "FTPC_PASSWORD": "alice-password",
        }
        big = tmp_path / "big.txt"
        big.write_bytes(b"x" * 11)
        result = CliRunner().invoke(ftpc_main, ["--json", "put", str(big)], env=env)
    finally:
        stop_daemon(server, thread)
    assert result.exit_code == 8, result.output
    [error] = of(events(result), "error")
    assert (error["code"], error["exit"]) == ("too-large", 8)


def test_the_summary_of_a_command_failing_as_a_whole_has_its_code(ftpc: Ftpc) -> None:
    result = ftpc("--json", "rm", "nothing")
    assert result.exit_code == 4
    evs = events(result)
    assert kinds(evs) == ["error", "summary"]
    assert (evs[0]["op"], evs[0]["name"], evs[0]["code"]) == ("command", "", "not-found")
    assert evs[-1]["exit"] == 4 and evs[-1]["failed"] == 1
    # A refused login and a usage error that click does not see first: the same.
    evs = events(ftpc("--json", "ls", FTPC_PASSWORD="wrong"))
    assert evs[0]["code"] == "auth-failed" and evs[-1]["exit"] == 3
    result = ftpc("--json", "put", "--overwrite", "--on-conflict", "skip", "x")
    assert result.exit_code == 2 and events(result) == []


def test_put_dry_run_reads_only_the_local_disk(ftpc: Ftpc, daemon: Daemon) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = str(s.getsockname()[1])
    # No server at all, and a wrong password: a put --dry-run never connects.
    for env in ({"FTPC_PORT": closed}, {"FTPC_PASSWORD": "wrong"}, {}):
        result = ftpc("put", "--dry-run", "-r", "up", "--to", "d", **env)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            "would put up/a.txt -> d/up/a.txt (5 B)",
            "would put up/sub/b.txt -> d/up/sub/b.txt (40 B)",
            "would put up/sub/c.bin -> d/up/sub/c.bin (3.0 MiB)",
            "would put 3 files, 3.0 MiB",
        ]
    assert tree(daemon.root, lambda p: ".ftpd" not in p.parts) == {}
    evs = events(ftpc("--json", "put", "-n", "up/a.txt", "up/nothing.txt"))
    assert kinds(evs) == ["error", "would", "plan", "summary"]
    assert evs[1] == {"event": "would", "op": "put", "name": "a.txt", "path": "up/a.txt", "size": 5}
    assert evs[2] == {
        "event": "plan",
        "op": "put",
        "files": 1,
        "bytes": 5,
        "refused": 1,
        "dry_run": True,
    }
    assert evs[-1]["exit"] == 1


def test_get_dry_run_lists_but_moves_nothing(ftpc: Ftpc, tmp_path: Path) -> None:
    assert ftpc("put", "-r", "up").exit_code == 0
    out = tmp_path / "nowhere"
    result = ftpc("get", "-r", "up", "-o", str(out), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("would get") == 4 and f"-> {out}/up/sub/c.bin" in result.stdout
    assert not out.exists()
    assert ftpc("get", "-n", "up/a.txt", FTPC_PASSWORD="wrong").exit_code == 3  # it logs in


def test_a_file_rotted_on_the_server_fails_with_the_checksum_code(
    ftpc: Ftpc, daemon: Daemon
) -> None:
    """The server's md5 is from the catalog; bytes changed under it (same size, time and
    inode: bit rot) arrive, fail the client's check, and nothing is saved (exit 6)."""
    assert ftpc("put", "up/a.txt").exit_code == 0
    stored = daemon.root / "a.txt"
    before = stored.stat()
    with open(stored, "r+b") as f:
        f.write(b"X")
    os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = ftpc("--json", "get", "--by-name", "a.txt", "-o", "down")
    assert result.exit_code == 6, result.output
    [error] = of(events(result), "error")
    assert (error["code"], error["exit"]) == ("checksum-mismatch", 6)
    assert events(result)[-1]["exit"] == 6
    assert not (ftpc.cwd / "down" / "a.txt").exists()
