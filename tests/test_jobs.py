"""--jobs N: a put or get over N connections, each file verified, nothing lost or doubled."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.ftpc_env import Ftpc, events, logins, make_ftpc, tree, write_tree


@pytest.fixture
def ftpc(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ftpc:
    return make_ftpc(daemon, tmp_path, monkeypatch)


def many_files() -> dict[str, bytes]:
    rng = random.Random(5)
    files = {f"d{i % 7}/f{i:03}.txt": rng.randbytes(rng.randrange(0, 4000)) for i in range(300)}
    files |= {f"big/{i}.bin": rng.randbytes(2 << 20) for i in range(3)}
    return files


def test_put_and_get_over_four_connections(
    ftpc: Ftpc, daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = many_files()
    write_tree(ftpc.cwd / "data", files)

    result = ftpc("--json", "put", "-r", "data", "--jobs", "4")
    assert result.exit_code == 0, result.stderr
    evs = events(result)
    summary = evs[-1]
    assert (summary["ok"], summary["failed"], summary["exit"]) == (len(files), 0, 0)
    done = [e for e in evs if e["event"] == "done"]
    assert sorted(e["name"] for e in done) == sorted(f"data/{rel}" for rel in files)
    for e in done:
        assert e["md5"] == hashlib.md5(files[e["name"][len("data/") :]]).hexdigest()
    assert tree(daemon.root / "data") == files
    jobs = {e["job"] for e in evs if e["event"] == "start"}
    assert jobs == {0, 1, 2, 3}  # 5 units of small files and 3 big ones: all four at work
    assert logins(caplog) == 4

    out = tmp_path / "out"
    result = ftpc("--json", "get", "-r", "data", "-o", str(out), "-j", "4")
    assert result.exit_code == 0, result.stderr
    evs = events(result)
    assert evs[-1]["ok"] == len(files) and evs[-1]["failed"] == 0
    assert len({e["job"] for e in evs if e["event"] == "start"}) == 4
    assert tree(out / "data") == files
    assert logins(caplog) == 8

    # Again: every file is already there, on both sides; nothing moves.
    result = ftpc("--json", "put", "-r", "data", "--jobs", "4")
    assert result.exit_code == 0, result.stderr
    assert events(result)[-1]["skipped"] == len(files) and events(result)[-1]["ok"] == 0


def test_jobs_with_failures_go_on_and_report_the_first_code(ftpc: Ftpc, daemon: Daemon) -> None:
    files = {f"f{i:03}.txt": f"{i}".encode() for i in range(150)}  # three units
    write_tree(ftpc.cwd / "j", files)
    (daemon.root / "j").mkdir()
    for taken in ("f005.txt", "f130.txt"):
        (daemon.root / "j" / taken).write_bytes(b"other content")
    result = ftpc("--json", "put", "-r", "j", "--jobs", "3")
    assert result.exit_code == 5
    evs = events(result)
    errors = [e for e in evs if e["event"] == "error"]
    assert sorted(e["name"] for e in errors) == ["j/f005.txt", "j/f130.txt"]
    assert evs[-1]["ok"] == 148 and evs[-1]["failed"] == 2 and evs[-1]["exit"] == 5
    assert "2 of 150 files failed" in result.stderr
    assert {e["job"] for e in evs if e["event"] == "start"} == {0, 1, 2}
    stored = tree(daemon.root / "j")
    assert stored["f005.txt"] == b"other content"
    assert {k: v for k, v in stored.items() if k not in ("f005.txt", "f130.txt")} == {
        k: v for k, v in files.items() if k not in ("f005.txt", "f130.txt")
    }
