"""--on-conflict fail|overwrite|rename|skip, for put (the server decides) and get (the
client decides), and identical content, which counts as done in every mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftpc import Client
from shared.errors import Exists, LocalFileExists, PermissionDenied
from tests.conftest import Daemon
from tests.ftpc_env import Ftpc, events, make_ftpc, md5

MODES = ("fail", "overwrite", "rename", "skip")


@pytest.fixture
def ftpc(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ftpc:
    return make_ftpc(daemon, tmp_path, monkeypatch)


@pytest.fixture
def stored(ftpc: Ftpc, daemon: Daemon) -> Path:
    """docs/r.txt on the server holding b"stored", and a local r.txt holding b"local"."""
    (ftpc.cwd / "r.txt").write_bytes(b"stored")
    assert ftpc("put", "r.txt", "--to", "docs").exit_code == 0
    (ftpc.cwd / "r.txt").write_bytes(b"local")
    return daemon.root / "docs"


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_put_fail_is_the_default(ftpc: Ftpc, stored: Path) -> None:
    for extra in ([], ["--on-conflict", "fail"]):
        result = ftpc("put", "r.txt", "--to", "docs", *extra)
        assert result.exit_code == 5
        assert "'docs/r.txt' already exists with other content" in result.stderr
    assert (stored / "r.txt").read_bytes() == b"stored"
    evs = events(ftpc("--json", "put", "r.txt", "--to", "docs"))
    [error] = [e for e in evs if e["event"] == "error"]
    assert (error["code"], error["exit"], error["name"]) == ("exists", 5, "docs/r.txt")


def test_put_overwrite(ftpc: Ftpc, stored: Path) -> None:
    result = ftpc("put", "r.txt", "--to", "docs", "--on-conflict", "overwrite")
    assert result.exit_code == 0, result.output
    assert (stored / "r.txt").read_bytes() == b"local" and names(stored) == ["r.txt"]
    (ftpc.cwd / "r.txt").write_bytes(b"third")
    assert ftpc("put", "r.txt", "--to", "docs", "--overwrite").exit_code == 0
    assert (stored / "r.txt").read_bytes() == b"third"
    result = ftpc("put", "r.txt", "--overwrite", "--on-conflict", "skip")
    assert result.exit_code == 2 and "contradicts" in result.stderr


def test_put_overwrite_needs_the_d_permission(ftpc: Ftpc, stored: Path, daemon: Daemon) -> None:
    result = ftpc("put", "r.txt", "--to", "docs", "--on-conflict", "overwrite", user="writer")
    assert result.exit_code == 3
    assert "may not replace 'docs/r.txt': that needs the d permission" in result.stderr
    assert (stored / "r.txt").read_bytes() == b"stored"
    # w alone still stores new names, and identical content is still done.
    result = ftpc("put", "r.txt", "--to", "new", "--on-conflict", "overwrite", user="writer")
    assert result.exit_code == 0, result.output
    result = ftpc("put", "r.txt", "--to", "new", "--on-conflict", "overwrite", user="writer")
    assert result.exit_code == 0 and "already there" in result.stdout
    with daemon.client("writer") as writer, pytest.raises(PermissionDenied):
        writer.put(ftpc.cwd / "r.txt", "docs/r.txt", on_conflict="overwrite")
    assert (stored / "r.txt").read_bytes() == b"stored"


def test_put_rename_numbers_each_time(ftpc: Ftpc, stored: Path) -> None:
    result = ftpc("put", "r.txt", "--to", "docs", "--on-conflict", "rename")
    assert result.exit_code == 0 and "put docs/r.1.txt" in result.stdout
    (ftpc.cwd / "r.txt").write_bytes(b"local again")
    evs = events(ftpc("--json", "put", "r.txt", "--to", "docs", "--on-conflict", "rename"))
    [start] = [e for e in evs if e["event"] == "start"]
    [done] = [e for e in evs if e["event"] == "done"]
    assert start["name"] == "docs/r.txt" and done["name"] == "docs/r.2.txt"
    assert names(stored) == ["r.1.txt", "r.2.txt", "r.txt"]
    assert (stored / "r.txt").read_bytes() == b"stored"
    assert (stored / "r.1.txt").read_bytes() == b"local"
    assert (stored / "r.2.txt").read_bytes() == b"local again"
    # The number goes before every extension.
    for data in (b"one", b"two"):
        (ftpc.cwd / "site.tar.gz").write_bytes(data)
        assert ftpc("put", "site.tar.gz", "--on-conflict", "rename").exit_code == 0
    assert (stored.parent / "site.1.tar.gz").read_bytes() == b"two"


def test_put_skip_leaves_the_stored_file(ftpc: Ftpc, stored: Path) -> None:
    result = ftpc("put", "r.txt", "--to", "docs", "--on-conflict", "skip")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("skipped docs/r.txt: a different file is stored there")
    assert (stored / "r.txt").read_bytes() == b"stored" and names(stored) == ["r.txt"]
    evs = events(ftpc("--json", "put", "r.txt", "--to", "docs", "--on-conflict", "skip"))
    [skipped] = [e for e in evs if e["event"] == "skipped"]
    assert skipped["reason"] == "exists"
    assert skipped["checksum"] == skipped["md5"] == md5(stored / "r.txt")  # the stored file's
    assert skipped["bytes"] == len(b"stored")
    assert evs[-1] | {"seconds": 0} == {
        "event": "summary",
        "ok": 0,
        "skipped": 1,
        "failed": 0,
        "bytes": 0,
        "seconds": 0,
        "exit": 0,
    }


@pytest.mark.parametrize("mode", MODES)
def test_put_of_identical_content_is_done_in_every_mode(
    ftpc: Ftpc, stored: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    (ftpc.cwd / "r.txt").write_bytes(b"stored")
    result = ftpc("put", "r.txt", "--to", "docs", "--on-conflict", mode)
    assert result.exit_code == 0, result.output
    assert "already there" in result.stdout and "nothing sent" in result.stdout
    assert names(stored) == ["r.txt"]  # rename made no copy
    evs = events(ftpc("--json", "put", "r.txt", "--to", "docs", "--on-conflict", mode))
    [skipped] = [e for e in evs if e["event"] == "skipped"]
    assert skipped["reason"] == "same" and evs[-1]["exit"] == 0


def test_a_large_identical_file_is_done_under_skip(ftpc: Ftpc) -> None:
    (ftpc.cwd / "big.bin").write_bytes(bytes(range(256)) * 8200)  # over 1 MiB: 'put'
    assert ftpc("put", "big.bin").exit_code == 0
    evs = events(ftpc("--json", "put", "big.bin", "--on-conflict", "skip"))
    [skipped] = [e for e in evs if e["event"] == "skipped"]
    assert skipped["reason"] == "same"


def test_a_large_identical_file_is_done_without_the_d_permission(ftpc: Ftpc) -> None:
    (ftpc.cwd / "big.bin").write_bytes(bytes(range(256)) * 8200)
    assert ftpc("put", "big.bin", user="writer").exit_code == 0
    result = ftpc("put", "big.bin", "--on-conflict", "overwrite", user="writer")
    assert result.exit_code == 0, result.output
    assert "already there" in result.stdout


def test_client_put_of_identical_content_under_skip_is_done(client: Client, tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_bytes(b"A")
    client.put(a)
    result = client.put(a, on_conflict="skip")
    assert result.existed and not result.skipped


def test_client_put_modes(client: Client, daemon: Daemon, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    client.put(a, "f.txt")
    with pytest.raises(Exists):
        client.put(b, "f.txt")
    assert client.put(b, "f.txt", on_conflict="rename").name == "f.1.txt"
    assert client.put(b, "f.txt", on_conflict="rename").name == "f.2.txt"
    skipped = client.put(b, "f.txt", on_conflict="skip")
    assert skipped.skipped and not skipped.existed and skipped.checksum == md5(a)
    assert not client.put(b, "f.txt", on_conflict="overwrite").existed
    assert client.put(b, "f.txt").existed
    assert (daemon.root / "f.txt").read_bytes() == b"B"
    with pytest.raises(ValueError):
        client.put(a, "f.txt", on_conflict="clobber")


# --- get: the local file in the way --------------------------------------------


@pytest.fixture
def in_the_way(ftpc: Ftpc, tmp_path: Path) -> Path:
    """docs/r.txt on the server (b"remote"); out/r.txt locally (b"mine")."""
    (ftpc.cwd / "r.txt").write_bytes(b"remote")
    assert ftpc("put", "r.txt", "--to", "docs").exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.txt").write_bytes(b"mine")
    return out


def test_get_fail_leaves_the_local_file(ftpc: Ftpc, in_the_way: Path) -> None:
    result = ftpc("get", "docs/r.txt", "-o", str(in_the_way))
    assert result.exit_code == 5 and "already exists with other content" in result.stderr
    assert names(in_the_way) == ["r.txt"] and (in_the_way / "r.txt").read_bytes() == b"mine"
    evs = events(ftpc("--json", "get", "docs/r.txt", "-o", str(in_the_way)))
    [error] = [e for e in evs if e["event"] == "error"]
    assert (error["code"], error["exit"]) == ("local-exists", 5)


def test_get_overwrite(ftpc: Ftpc, in_the_way: Path) -> None:
    result = ftpc("get", "docs/r.txt", "-o", str(in_the_way), "--on-conflict", "overwrite")
    assert result.exit_code == 0, result.output
    assert names(in_the_way) == ["r.txt"] and (in_the_way / "r.txt").read_bytes() == b"remote"


def test_get_rename_numbers_each_time(ftpc: Ftpc, in_the_way: Path) -> None:
    for _ in range(2):
        result = ftpc("get", "docs/r.txt", "-o", str(in_the_way), "--on-conflict", "rename")
        assert result.exit_code == 0, result.output
    assert f"-> {in_the_way}/r.2.txt" in result.stdout
    assert names(in_the_way) == ["r.1.txt", "r.2.txt", "r.txt"]
    assert (in_the_way / "r.txt").read_bytes() == b"mine"
    assert (in_the_way / "r.2.txt").read_bytes() == b"remote"
    evs = events(
        ftpc("--json", "get", "docs/r.txt", "-o", str(in_the_way), "--on-conflict", "rename")
    )
    [done] = [e for e in evs if e["event"] == "done"]
    assert done["path"] == str(in_the_way / "r.3.txt") and done["name"] == "docs/r.txt"


def test_get_skip(ftpc: Ftpc, in_the_way: Path) -> None:
    result = ftpc("get", "docs/r.txt", "-o", str(in_the_way), "--on-conflict", "skip")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"skipped docs/r.txt: {in_the_way}/r.txt exists with other content\n"
    assert (in_the_way / "r.txt").read_bytes() == b"mine"
    evs = events(
        ftpc("--json", "get", "docs/r.txt", "-o", str(in_the_way), "--on-conflict", "skip")
    )
    [skipped] = [e for e in evs if e["event"] == "skipped"]
    assert skipped["reason"] == "exists" and skipped["path"] == str(in_the_way / "r.txt")


@pytest.mark.parametrize(
    "mode",
    [
        "fail",
        "overwrite",
        "rename",
        "skip",
    ],
)
def test_get_of_identical_content_is_done_in_every_mode(
    ftpc: Ftpc, in_the_way: Path, mode: str
) -> None:
    (in_the_way / "r.txt").write_bytes(b"remote")
    result = ftpc("get", "docs/r.txt", "-o", str(in_the_way), "--on-conflict", mode)
    assert result.exit_code == 0, result.output
    assert "nothing fetched" in result.stdout
    assert names(in_the_way) == ["r.txt"]


def test_client_get_modes(client: Client, tmp_path: Path) -> None:
    src = tmp_path / "src.txt"
    src.write_bytes(b"remote")
    client.put(src, "g.txt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "g.txt").write_bytes(b"mine")
    with pytest.raises(LocalFileExists):
        client.get("g.txt", out)
    assert client.get("g.txt", out, on_conflict="rename").path == out / "g.1.txt"
    assert client.get("g.txt", out, on_conflict="skip").skipped
    assert client.get("g.txt", out / "g.1.txt").existed
    assert client.get("g.txt", out, on_conflict="overwrite").path == out / "g.txt"
    assert (out / "g.txt").read_bytes() == b"remote"
