"""Storage: name checks, atomic publish, staging, symlinks and the md5 cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpd import catalog
from ftpd import storage as storage_mod
from ftpd.storage import Storage
from shared.errors import BadName, Exists, NoSpace, NotFound, TooLarge


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage(tmp_path / "root")
    yield s
    s.close()


def store(storage: Storage, name: str, data: bytes, overwrite: bool = False) -> None:
    up = storage.begin_upload(name, len(data), "overwrite" if overwrite else "fail")
    try:
        up.write(memoryview(data))
        up.commit()
    except BaseException:
        up.abort()
        raise


def test_root_and_staging_are_created(tmp_path: Path) -> None:
    s = Storage(tmp_path / "a" / "b")
    try:
        assert s.root.is_dir() and s.staging.is_dir()
        assert s.staging.is_relative_to(s.root)  # same filesystem: publishing is a rename
    finally:
        s.close()


def test_publish_lists_with_md5_sorted(storage: Storage) -> None:
    store(storage, "b.txt", b"bb")
    store(storage, "a.txt", b"a")
    store(storage, "empty", b"")
    entries = storage.list()
    assert [e.name for e in entries] == ["a.txt", "b.txt", "empty"]
    assert entries[0].md5 == hashlib.md5(b"a").hexdigest()
    assert entries[2].size == 0
    assert not list(storage.staging.iterdir())


def test_staging_is_invisible_until_commit(storage: Storage) -> None:
    up = storage.begin_upload("x", 4, "fail")
    up.write(memoryview(b"ab"))
    assert storage.list() == []
    assert os.path.exists(up.path)
    up.write(memoryview(b"cd"))
    up.commit()
    assert [e.name for e in storage.list()] == ["x"]


def test_abort_keeps_the_old_version(storage: Storage) -> None:
    store(storage, "f", b"old")
    up = storage.begin_upload("f", 3, "overwrite")
    up.write(memoryview(b"new"))
    up.abort()
    assert (storage.root / "f").read_bytes() == b"old"
    assert not list(storage.staging.iterdir())


def test_overwrite_replaces_and_refresh_md5(storage: Storage) -> None:
    store(storage, "f", b"old")
    store(storage, "f", b"newer", overwrite=True)
    [entry] = storage.list()
    assert entry.md5 == hashlib.md5(b"newer").hexdigest() and entry.size == 5


def test_publish_without_overwrite_never_clobbers(storage: Storage) -> None:
    up = storage.begin_upload("f", 3, "fail")
    up.write(memoryview(b"two"))
    store(storage, "f", b"one")  # another upload wins the race
    with pytest.raises(Exists):
        up.commit()
    assert (storage.root / "f").read_bytes() == b"one"
    assert not list(storage.staging.iterdir())


def test_writing_more_than_announced_is_refused(storage: Storage) -> None:
    up = storage.begin_upload("f", 2, "fail")
    with pytest.raises(ValueError):
        up.write(memoryview(b"abc"))
    up.abort()


def test_leftover_staging_is_purged_at_start(tmp_path: Path) -> None:
    s = Storage(tmp_path / "root")
    up = s.begin_upload("crash", 10, "fail")
    up.write(memoryview(b"12345"))
    (s.staging / "junkdir").mkdir()
    up._close()
    s.close()  # the process "dies" with the upload in flight
    restarted = Storage(tmp_path / "root")
    try:
        assert restarted.purged == 2
        assert not list(restarted.staging.iterdir())
        assert restarted.list() == []
    finally:
        restarted.close()


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a//b",
        "a/",
        "a/../b",
        "../x",
        "/etc/passwd",
        "a\\b",
        "x\x00y",
        ".ftpd",
        ".ftpd-staging",
        "\uff0e\uff0e",
        "a\uff0fb",
    ],
)
def test_bad_names_are_refused_everywhere(storage: Storage, name: str) -> None:
    with pytest.raises(BadName):
        storage.begin_upload(name, 1, "fail")
    with pytest.raises(BadName):
        storage.open(name)
    with pytest.raises(BadName):
        storage.remove(name)


def test_nfd_name_is_stored_as_nfc(storage: Storage) -> None:
    store(storage, "cafe\u0301", b"x")
    assert [e.name for e in storage.list()] == ["caf\u00e9"]
    with storage.open("cafe\u0301") as (f, entry):
        assert f.read() == b"x" and entry.name == "caf\u00e9"


def test_symlinks_in_the_root_are_never_followed(storage: Storage, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    os.symlink(secret, storage.root / "link")
    os.symlink(tmp_path, storage.root / "dirlink")
    (storage.root / "subdir").mkdir()
    assert [(e.name, e.kind) for e in storage.list()] == [("subdir", "dir")]
    for name in ("link", "dirlink", "subdir"):
        with pytest.raises(NotFound):
            storage.open(name).__enter__()
    for name in ("link", "dirlink"):
        with pytest.raises(NotFound):
            storage.remove(name)
    # A link to a folder is never walked through, whatever is asked of the path below it.
    (tmp_path / "inner.txt").write_text("outside too")
    for call in (
        lambda: storage.open("dirlink/inner.txt").__enter__(),
        lambda: storage.remove("dirlink/inner.txt"),
        lambda: storage.list("dirlink"),
        lambda: storage.mkdir("dirlink/new"),
        lambda: store(storage, "dirlink/new.txt", b"x"),
    ):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(Exists, match="a file or a link"):
        storage.mkdir("dirlink/new", parents=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner.txt", "root", "secret.txt"]
    assert secret.read_text() == "outside"
    # Uploading over a planted symlink is refused: neither the link nor its target changes.
    for name in ("link", "dirlink", "subdir"):
        with pytest.raises(Exists, match="not a file"):
            store(storage, name, b"inside", overwrite=True)
    assert secret.read_text() == "outside"
    assert (storage.root / "link").is_symlink()
    assert list(storage.staging.iterdir()) == []


def test_md5_is_cached_and_revalidated(storage: Storage) -> None:
    store(storage, "f", b"abc")
    assert (
        storage.cache.lookup("f", os.lstat(storage.root / "f")) == hashlib.md5(b"abc").hexdigest()
    )
    # A file changed behind our back (same name) is hashed again, never trusted from the cache.
    path = storage.root / "f"
    path.write_bytes(b"abcd")
    [entry] = storage.list()
    assert entry.md5 == hashlib.md5(b"abcd").hexdigest()


def test_cache_survives_restart_and_corruption(tmp_path: Path) -> None:
    s = Storage(tmp_path / "root")
    store(s, "f", b"abc")
    s.close()
    db = tmp_path / "root" / ".ftpd" / "md5.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    s2 = Storage(tmp_path / "root")
    try:
        assert s2.list()[0].md5 == hashlib.md5(b"abc").hexdigest()
    finally:
        s2.close()


def test_files_dropped_in_by_hand_are_listed_and_hashed(storage: Storage) -> None:
    (storage.root / "manual.txt").write_bytes(b"hi")
    [entry] = storage.list()
    assert entry.md5 == hashlib.md5(b"hi").hexdigest()


def test_listing_reads_only_its_folders_rows_in_batches(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More files than one SELECT takes, all answered from the cache; rows of other folders
    and of files deleted by hand are never read."""
    count = catalog.LOOKUP_BATCH * 2 + 7
    (storage.root / "many").mkdir()
    for i in range(count):
        (storage.root / "many" / f"f{i:04d}").write_bytes(b"%d" % i)
    storage.list("many")  # hashes each once and fills the cache
    store(storage, "elsewhere", b"x")
    (storage.root / "gone").write_bytes(b"gone")
    storage.list()
    (storage.root / "gone").unlink()  # its row stays behind

    asked: list[list[str]] = []
    rows_for = storage.cache.rows_for
    monkeypatch.setattr(
        storage.cache, "rows_for", lambda names: asked.append(names) or rows_for(names)
    )
    monkeypatch.setattr(storage_mod, "Opened", None)  # any hashing now fails loudly
    entries = storage.list("many")
    assert [e.name for e in entries] == [f"f{i:04d}" for i in range(count)]
    assert all(e.md5 == hashlib.md5(b"%d" % i).hexdigest() for i, e in enumerate(entries))
    assert len(asked) == 1
    assert sorted(asked[0]) == [f"many/f{i:04d}" for i in range(count)]
    assert len(storage.cache.rows_for(asked[0])) == count


def test_remove(storage: Storage) -> None:
    store(storage, "f", b"abc")
    assert storage.remove("f") == "f"
    assert storage.list() == []
    with pytest.raises(NotFound):
        storage.remove("f")


def test_limits_are_checked_before_any_byte(tmp_path: Path) -> None:
    s = Storage(tmp_path / "root", max_file_size=10)
    try:
        assert s.check_upload("ok", 10) == "ok"
        with pytest.raises(TooLarge):
            s.check_upload("big", 11)
    finally:
        s.close()


def test_free_space_is_checked_before_any_byte(storage: Storage) -> None:
    with pytest.raises(NoSpace):
        storage.check_upload("huge", storage.free_space() + (1 << 40))  # other writers move it
    assert storage.check_upload("small", 1) == "small"


def test_existing(storage: Storage) -> None:
    assert storage.existing("f") is None
    store(storage, "f", b"abc")
    entry = storage.existing("f")
    assert entry is not None and entry.md5 == hashlib.md5(b"abc").hexdigest()


def test_gitkeep_placeholder_is_not_a_stored_file(storage: Storage) -> None:
    (storage.root / ".gitkeep").touch()
    store(storage, "real", b"x")
    assert [e.name for e in storage.list()] == ["real"]
    with pytest.raises(BadName, match="placeholder"):
        storage.remove(".gitkeep")
    with pytest.raises(BadName):
        storage.begin_upload(".gitkeep", 1, "overwrite")
    assert (storage.root / ".gitkeep").exists()


def test_identical_bytes_published_meanwhile_count_as_stored(storage: Storage) -> None:
    """A retry racing the upload whose reply it never saw: the name holds its bytes, done."""
    up = storage.begin_upload("f", 3, "fail")
    up.write(memoryview(b"one"))
    store(storage, "f", b"one")  # the first attempt lands first
    entry = up.commit()
    assert entry.name == "f" and (storage.root / "f").read_bytes() == b"one"
    assert not list(storage.staging.iterdir())
    renamed = storage.begin_upload("f", 3, "rename")
    renamed.write(memoryview(b"one"))
    assert renamed.commit().name == "f"  # no f.1 copy of the same bytes
    assert sorted(p.name for p in storage.root.iterdir() if p.name != ".ftpd") == ["f"]
