"""docs/SCRIPTING.md's examples, run as they are printed against a live daemon.

Each test executes the very file under docs/examples (bash for .sh, python for .py),
telling it only the server, the account and the paths, through the environment and
arguments; and one test holds the code blocks of SCRIPTING.md to those files, byte for
byte, so the guide cannot drift from what is tested.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.ftpc_env import (
    FTPC_COMMAND,
    REPO,
    isolated_env,
    logins,
    md5,
    run_process,
    tree,
    write_tree,
)

EXAMPLES = REPO / "docs" / "examples"
GUIDE = REPO / "docs" / "SCRIPTING.md"
BLOCK = re.compile(r"<!-- docs/examples/([\w.-]+) -->\n```\w*\n(.*?)```\n", re.DOTALL)

SOURCE = {
    "a.txt": b"alpha\n",
    "empty": b"",
    "sub/b c.txt": b"beta " * 1000,
    "sub/deeper/c.bin": bytes(range(256)) * 300,
}


def test_the_guide_shows_each_example_file_byte_for_byte() -> None:
    shown = BLOCK.findall(GUIDE.read_text("utf-8"))
    files = sorted(p.name for p in EXAMPLES.iterdir())
    assert sorted(name for name, _ in shown) == files
    assert files == ["ci-upload.sh", "nightly.batch", "nightly.sh", "upload_folder.py"]
    for name, text in shown:
        assert text == (EXAMPLES / name).read_text("utf-8"), f"SCRIPTING.md differs from {name}"


def _env(tmp_path: Path, daemon: Daemon, user: str = "alice", **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**isolated_env(home, daemon, user), "FTPC": FTPC_COMMAND, **extra}


def test_nightly_backup(daemon: Daemon, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "data", SOURCE)
    (source / "sub" / "link").symlink_to(tmp_path)  # a link in the tree is left out
    night = "2026-11-22"
    env = _env(tmp_path, daemon, BACKUP_SOURCE=str(source), BACKUP_DATE=night)
    script = ["bash", str(EXAMPLES / "nightly.sh")]
    stored = daemon.root / "backups" / night

    first = run_process(script, env, tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    # The -rm line found no marker on the first run: reported, ignored, not fatal.
    assert "line 7 (rm backups/2026-11-22/COMPLETE) failed, ignored" in first.stdout
    assert "skipped sub/link: a link" in first.stdout
    assert tree(stored / "data") == SOURCE
    assert (stored / "COMPLETE").is_file()
    assert f"backup of {source} for {night} complete" in first.stdout

    # A rerun the same day deletes the marker, sends nothing again and marks it anew.
    second = run_process(script, env, tmp_path)
    assert second.returncode == 0, second.stderr + second.stdout
    assert f"deleted backups/{night}/COMPLETE" in second.stdout
    assert second.stdout.count("nothing sent") == len(SOURCE)
    assert "ignored" not in second.stdout
    assert tree(stored / "data") == SOURCE and (stored / "COMPLETE").is_file()

    # A line that must succeed fails (reader may not make folders): the script stops
    # there with that failure's code, and the night gets no marker.
    other = "2026-11-23"
    env = _env(tmp_path, daemon, "reader", BACKUP_SOURCE=str(source), BACKUP_DATE=other)
    failed = run_process(script, env, tmp_path)
    assert failed.returncode == 3, failed.stderr + failed.stdout
    assert f"<stdin>, line 9 (mkdir -p backups/{other})" in failed.stderr
    assert f"backup of {source} for {other} failed (ftpc exit code 3)" in failed.stderr
    assert not (daemon.root / "backups" / other).exists()


def test_ci_upload(daemon: Daemon, tmp_path: Path) -> None:
    dist = write_tree(tmp_path / "dist", {"app-1.0.whl": b"wheel" * 5000, "docs/i.html": b"<p>"})
    env = _env(
        tmp_path,
        daemon,
        RELEASE="1.0",
        ARTIFACTS=str(dist),
        PYTHON=sys.executable,
        RETRY_DELAY="0",
    )
    script = ["bash", str(EXAMPLES / "ci-upload.sh")]
    stored = daemon.root / "releases" / "1.0" / "dist"

    done = run_process(script, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "release 1.0: 2 files uploaded (25003 bytes), 0 already there\n"
    assert tree(stored) == tree(dist)

    again = run_process(script, env, tmp_path)  # a rerun moves nothing and succeeds
    assert again.returncode == 0, again.stderr
    assert again.stdout == "release 1.0: 0 files uploaded (0 bytes), 2 already there\n"

    (dist / "app-1.0.whl").write_bytes(b"another build")
    conflict = run_process(script, env, tmp_path)
    assert conflict.returncode == 5
    assert "failed: releases/1.0/dist/app-1.0.whl - " in conflict.stderr
    assert "a release is never overwritten" in conflict.stderr
    assert md5(stored / "app-1.0.whl") != md5(dist / "app-1.0.whl")  # not replaced

    refused = run_process(script, {**env, **_env(tmp_path, daemon, "reader")}, tmp_path)
    assert refused.returncode == 3 and "check the CI secret" in refused.stderr

    closed = run_process(script, {**env, "FTPC_PORT": "1", "ATTEMPTS": "2"}, tmp_path)
    assert closed.returncode == 7
    assert "attempt 1 of 2: the network failed" in closed.stderr
    assert "attempt 2 of 2: the network failed" in closed.stderr
    assert "giving up after 2 attempts" in closed.stderr


def test_parallel_upload_from_python(
    daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {f"d{i % 3}/f{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(40)}
    files |= {"top.bin": bytes(range(256)) * 4096, "d0/e/deep.bin": b"\0" * 300_000}
    local = write_tree(tmp_path / "site", files)
    (local / "d1" / "link.txt").symlink_to(local / "top.bin")  # left out
    env = _env(tmp_path, daemon)
    script = [sys.executable, str(EXAMPLES / "upload_folder.py"), str(local), "www/site"]

    done = run_process([*script, "--threads", "4"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{len(files)} files under www/site, every md5 matches\n"
    assert tree(daemon.root / "www" / "site") == files
    # One login for the folders, one per thread, one to verify.
    assert logins(caplog) == 6

    # Another file already stored under one of the names: refused, and the check says so.
    (daemon.root / "www" / "site" / "d2" / "f2.txt").write_bytes(b"not ours")
    (daemon.root / "www" / "site" / "stray.txt").write_bytes(b"left over")
    again = run_process([*script, "--threads", "2"], env, tmp_path)
    assert again.returncode == 1
    assert "failed: d2/f2.txt: 'www/site/d2/f2.txt' already exists" in again.stderr
    assert "different content: d2/f2.txt" in again.stderr
    assert "only on the server: stray.txt" in again.stderr
