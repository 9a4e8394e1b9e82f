"""Folders end to end: trees up and down, numbers inside folders, rm and mkdir, the ways
to name what to upload (globs, --from-file), and links on either side that must lead
nowhere. A live daemon on 127.0.0.1, real files under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftpc import Client
from shared.errors import Exists, NotEmpty, NotFound
from tests.conftest import Daemon
from tests.ftpc_env import Ftpc, events, kinds, make_ftpc, md5, tree, write_tree

TREE = {
    "index.html": b"<h1>hi</h1>\n",
    "empty.txt": b"",
    "css/site.css": b"body{}" * 100,
    "img/logo.png": bytes(range(256)) * 1000,
    "img/icons/é.svg": b"<svg/>",
    "a/b/c/d/e.txt": b"deep\n",
}


@pytest.fixture
def ftpc(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ftpc:
    return make_ftpc(daemon, tmp_path, monkeypatch)


def test_put_r_keeps_the_tree_and_get_r_restores_it(
    ftpc: Ftpc, daemon: Daemon, tmp_path: Path
) -> None:
    write_tree(ftpc.cwd / "site", TREE)
    result = ftpc("put", "-r", "site", "--to", "backup/2026")
    assert result.exit_code == 0, result.output
    assert tree(daemon.root / "backup" / "2026" / "site") == TREE
    assert "created folder backup/2026/site/img/icons" in result.stdout

    result = ftpc("get", "-r", "backup/2026/site", "-o", str(tmp_path / "restore"))
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / "restore" / "site") == TREE
    assert f"{len(TREE)} transferred" in result.stdout

    result = ftpc("get", "backup/2026/site", "-o", str(tmp_path / "x"))  # a folder needs -r
    assert result.exit_code == 4 and "use get -r" in result.stderr
    result = ftpc("put", "site")
    assert result.exit_code == 1 and "is a folder: use -r" in result.stderr


def test_put_r_of_the_current_folder_uses_its_name(
    ftpc: Ftpc, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(write_tree(ftpc.cwd / "project", {"x.txt": b"x", "s/y.txt": b"y"}))
    result = ftpc("put", "-r", ".", "--to", "up")
    assert result.exit_code == 0, result.output
    assert tree(daemon.root / "up" / "project") == {"x.txt": b"x", "s/y.txt": b"y"}


def test_the_client_api_with_folders(client: Client, daemon: Daemon, tmp_path: Path) -> None:
    assert client.mkdir("a/b/c", parents=True) is True
    assert client.mkdir("a/b/c", parents=True) is False
    with pytest.raises(Exists):
        client.mkdir("a/b")
    with pytest.raises(NotFound):
        client.mkdir("nowhere/x")  # without parents, the folder above must exist
    f = tmp_path / "f.txt"
    f.write_bytes(b"data")
    assert client.put(f, "a/b/c/f.txt").name == "a/b/c/f.txt"
    top = client.list()
    assert [(e.name, e.kind, e.path) for e in top] == [("a", "dir", "a")]
    [entry] = client.list("a/b/c")
    assert (entry.name, entry.path, entry.kind, entry.md5) == (
        "f.txt",
        "a/b/c/f.txt",
        "file",
        md5(f),
    )
    assert [e.path for e in client.walk("a")] == ["a/b", "a/b/c", "a/b/c/f.txt"]
    assert client.stat("a/b").is_folder
    with pytest.raises(NotEmpty):
        client.remove("a/b/c")
    assert client.remove("a/b/c/f.txt") == "a/b/c/f.txt"
    assert client.remove("a/b/c") == "a/b/c"
    assert not (daemon.root / "a" / "b" / "c").exists()


def test_ls_of_a_folder_by_path(ftpc: Ftpc) -> None:
    write_tree(ftpc.cwd / "site", TREE)
    assert ftpc("put", "-r", "site").exit_code == 0
    result = ftpc("ls", "site/img")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split()[0] == "1" and lines[1].endswith(" icons/")
    assert lines[2].endswith(" logo.png")
    result = ftpc("--json", "ls", "site/img")
    entries = [e for e in events(result) if e["event"] == "entry"]
    assert [(e["index"], e["path"], e["kind"]) for e in entries] == [
        (1, "site/img/icons", "dir"),
        (2, "site/img/logo.png", "file"),
    ]
    assert ftpc("ls", "site/nothing").exit_code == 4
    assert ftpc("ls", "../etc").exit_code == 2


def test_a_number_from_a_folder_listing_gets_that_file(ftpc: Ftpc, tmp_path: Path) -> None:
    write_tree(ftpc.cwd / "site", TREE)
    assert ftpc("put", "-r", "site").exit_code == 0
    assert ftpc("ls", "site/img").exit_code == 0
    result = ftpc("get", "2", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "logo.png").read_bytes() == TREE["img/logo.png"]


def test_ls_n_lists_the_folder_numbered_n(ftpc: Ftpc) -> None:
    write_tree(ftpc.cwd / "site", TREE)
    assert ftpc("put", "-r", "site").exit_code == 0
    assert ftpc("ls", "site").exit_code == 0  # 1 a/, 2 css/, 3 empty.txt, 4 img/, ...
    result = ftpc("ls", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2].endswith(" logo.png")


def test_numbers_and_paths_mix(ftpc: Ftpc, tmp_path: Path) -> None:
    write_tree(ftpc.cwd / "site", TREE)
    assert ftpc("put", "-r", "site").exit_code == 0
    assert ftpc("ls").exit_code == 0
    result = ftpc("get", "-r", "1", "site/css/site.css", "-o", str(tmp_path / "o"), "--dry-run")
    assert result.exit_code == 0, result.output


def test_a_top_level_number_of_a_folder_with_get_r(ftpc: Ftpc, tmp_path: Path) -> None:
    write_tree(ftpc.cwd / "site", TREE)
    assert ftpc("put", "-r", "site").exit_code == 0
    assert ftpc("ls").exit_code == 0
    result = ftpc("get", "-r", "1", "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / "o" / "site") == TREE


def test_rm_of_files_and_folders(ftpc: Ftpc, daemon: Daemon) -> None:
    write_tree(ftpc.cwd / "t", {"sub/f.txt": b"f"})
    assert ftpc("put", "-r", "t").exit_code == 0
    result = ftpc("rm", "t/sub")
    assert result.exit_code == 5 and "not empty" in result.stderr
    assert (daemon.root / "t" / "sub" / "f.txt").read_bytes() == b"f"
    result = ftpc("rm", "t/sub/f.txt", "t/sub")
    assert result.exit_code == 0, result.output
    assert result.stdout == "deleted t/sub/f.txt\ndeleted t/sub\n"
    assert not (daemon.root / "t" / "sub").exists()
    result = ftpc("--json", "rm", "t")
    assert [e for e in events(result) if e["event"] == "deleted"] == [
        {"event": "deleted", "name": "t"}
    ]
    assert ftpc("rm", "t").exit_code == 4


def test_mkdir(ftpc: Ftpc, daemon: Daemon) -> None:
    result = ftpc("mkdir", "one", "two")
    assert result.exit_code == 0 and result.stdout.count("created folder") == 2
    result = ftpc("mkdir", "one")
    assert result.exit_code == 5 and "already exists" in result.stderr
    result = ftpc("mkdir", "x/y")
    assert result.exit_code == 4 and "no folder 'x'" in result.stderr
    result = ftpc("--json", "mkdir", "-p", "x/y/z", "one")
    made = [e for e in events(result) if e["event"] == "mkdir"]
    assert made == [
        {"event": "mkdir", "name": "x/y/z", "created": True},
        {"event": "mkdir", "name": "one", "created": False},
    ]
    assert (daemon.root / "x" / "y" / "z").is_dir()
    for bad in ("a//b", "/abs", "a/../b", "a/.", ".ftpd-x/y"):
        result = ftpc("mkdir", "-p", bad)
        assert result.exit_code == 2, (bad, result.output)
    (daemon.root / "plain").write_bytes(b"a file")
    result = ftpc("mkdir", "-p", "plain/x")
    assert result.exit_code == 5 and "taken by a file" in result.stderr


# --- what to upload -----------------------------------------------------------


def test_quoted_globs_are_expanded(ftpc: Ftpc, daemon: Daemon) -> None:
    write_tree(ftpc.cwd, {"logs/a.gz": b"a", "logs/b.gz": b"b", "logs/c.txt": b"c"})
    write_tree(ftpc.cwd, {"logs/old/d.gz": b"d"})
    result = ftpc("put", "logs/*.gz", "--to", "L")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (daemon.root / "L").iterdir()) == ["a.gz", "b.gz"]
    result = ftpc("put", "logs/**/*.gz", "--to", "R")  # ** reaches into folders
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (daemon.root / "R").iterdir()) == ["a.gz", "b.gz", "d.gz"]
    result = ftpc("put", "logs/*.zip")
    assert result.exit_code == 1 and "cannot read logs/*.zip" in result.stderr


def test_from_file_and_from_stdin(ftpc: Ftpc, daemon: Daemon) -> None:
    write_tree(ftpc.cwd, {"one.txt": b"1", "two words.txt": b"2", "three.txt": b"3"})
    (ftpc.cwd / "list").write_text("one.txt\n\ntwo words.txt\n")
    result = ftpc("put", "--from-file", "list", "three.txt", "--to", "F")
    assert result.exit_code == 0, result.output
    assert tree(daemon.root / "F") == {"one.txt": b"1", "two words.txt": b"2", "three.txt": b"3"}
    result = ftpc("put", "--from-file", "-", "--to", "S", input="three.txt\none.txt\n")
    assert result.exit_code == 0, result.output
    assert tree(daemon.root / "S") == {"one.txt": b"1", "three.txt": b"3"}
    result = ftpc("put", "--from-file", "missing-list")
    assert result.exit_code == 1 and "cannot read the list missing-list" in result.stderr
    result = ftpc("put", "--from-file", "-", input="\n")
    assert result.exit_code == 2 and "nothing to upload" in result.stderr


# --- links -------------------------------------------------------------------


def test_a_link_planted_in_the_root_leads_nowhere(
    ftpc: Ftpc, daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    outside = write_tree(tmp_path / "outside", {"secret.txt": b"secret", "sub/s2.txt": b"2"})
    before = tree(outside)
    (daemon.root / "evil").symlink_to(outside)
    (daemon.root / "real").mkdir()
    (daemon.root / "real" / "evil2").symlink_to(outside / "sub")
    (ftpc.cwd / "f.txt").write_bytes(b"payload")
    out = tmp_path / "got"

    assert [e.name for e in client.list()] == ["real"]  # links are not listed
    for folder in ("evil", "real/evil2"):
        assert ftpc("ls", folder).exit_code == 4
        assert ftpc("ls", f"{folder}/sub").exit_code == 4
        assert ftpc("get", f"{folder}/secret.txt", "-o", str(out)).exit_code == 4
        assert ftpc("get", f"{folder}/s2.txt", "-o", str(out)).exit_code == 4
        assert ftpc("get", "-r", folder, "-o", str(out)).exit_code == 4
        assert ftpc("put", "f.txt", "--to", folder).exit_code != 0
        assert ftpc("put", "f.txt", "--to", f"{folder}/sub").exit_code != 0
        assert ftpc("mkdir", f"{folder}/new").exit_code == 4
        assert ftpc("mkdir", "-p", f"{folder}/new/deeper").exit_code != 0
        assert ftpc("rm", f"{folder}/secret.txt").exit_code == 4
        assert ftpc("rm", f"{folder}/sub").exit_code == 4
        assert ftpc("rm", folder).exit_code == 4
        with pytest.raises(NotFound):
            client.put(ftpc.cwd / "f.txt", f"{folder}/secret.txt", on_conflict="overwrite")
        with pytest.raises(NotFound):
            client.get(f"{folder}/secret.txt", tmp_path)
    assert not out.exists() or tree(out) == {}
    assert tree(outside) == before
    assert sorted(p.name for p in outside.rglob("*")) == ["s2.txt", "secret.txt", "sub"]
    assert (daemon.root / "evil").is_symlink() and (daemon.root / "real" / "evil2").is_symlink()


def test_links_in_a_local_tree_are_left_out(ftpc: Ftpc, daemon: Daemon, tmp_path: Path) -> None:
    elsewhere = write_tree(tmp_path / "elsewhere", {"private.txt": b"private"})
    site = write_tree(ftpc.cwd / "site", {"a.txt": b"a", "sub/b.txt": b"b"})
    (site / "to-file").symlink_to(elsewhere / "private.txt")
    (site / "sub" / "to-folder").symlink_to(elsewhere)
    (site / "dangling").symlink_to(tmp_path / "nothing")
    result = ftpc("put", "-r", "site")
    assert result.exit_code == 0, result.output
    for link in ("site/to-file", "site/sub/to-folder", "site/dangling"):
        assert f"skipped {link}: a link" in result.stdout
    assert "2 transferred" in result.stdout and "3 skipped" in result.stdout
    assert tree(daemon.root / "site") == {"a.txt": b"a", "sub/b.txt": b"b"}

    result = ftpc("--json", "put", "-r", "site", "--to", "again")
    evs = events(result)
    left_out = [e for e in evs if e["event"] == "skipped" and e["reason"] == "a link"]
    assert sorted(e["name"] for e in left_out) == [
        "site/dangling",
        "site/sub/to-folder",
        "site/to-file",
    ]
    assert all(set(e) == {"event", "op", "name", "reason"} for e in left_out)
    assert evs[-1]["skipped"] == 3 and evs[-1]["ok"] == 2 and evs[-1]["exit"] == 0
    assert "done" in kinds(evs)
