"""Quota usage: a quick total from the sizes recorded at upload, the files themselves near
the quota, and totals that follow every change to the owner table."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpd.storage import Storage
from shared.errors import QuotaExceeded
from tests.quota_helpers import store, summed_afresh


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage(tmp_path / "root")
    yield s
    s.close()


def test_far_from_the_quota_no_file_is_measured(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(300):
        store(storage, f"f{i:03d}", 10, "alice")
    assert storage.cache.owned_bytes("alice") == 3000

    def measured(name: str) -> None:
        raise AssertionError(f"{name} was measured: one lstat per owned file per upload")

    monkeypatch.setattr(storage, "_stat", measured)
    storage.begin_upload("next", 10, owner="alice", quota=10_000).abort()


def test_near_the_quota_the_files_decide(storage: Storage) -> None:
    for name in ("a", "b", "c"):
        store(storage, name, 300, "alice")
    with pytest.raises(QuotaExceeded, match=r"\(900 used\)"):
        storage.begin_upload("d", 200, owner="alice", quota=1000)
    (storage.root / "b").unlink()  # removed by hand: it stops counting
    storage.begin_upload("d", 200, owner="alice", quota=1000).abort()
    assert storage.cache.owned_bytes("alice") == 900 == summed_afresh(storage, "alice")


def test_a_file_grown_by_hand_counts_its_real_size_near_the_quota(storage: Storage) -> None:
    """The documented trade: sizes changed on disk by hand count once the recorded ones come
    near the quota, not before."""
    store(storage, "a", 100, "alice")
    (storage.root / "a").write_bytes(b"y" * 700)
    storage.begin_upload("b", 200, owner="alice", quota=1000).abort()  # 100 + 200 recorded
    with pytest.raises(QuotaExceeded, match=r"\(700 used\)"):
        storage.begin_upload("b", 950, owner="alice", quota=1000)  # 100 + 950: measured
    assert storage.cache.owned_bytes("alice") == 100  # the recorded size is left alone


def test_totals_follow_overwrites_between_owners_and_removals(storage: Storage) -> None:
    store(storage, "shared", 100, "alice")
    store(storage, "mine", 50, "alice")
    assert storage.cache.owned_bytes("alice") == 150
    assert storage.cache.owned_bytes("bob") == 0
    store(storage, "shared", 400, "bob", conflict="overwrite")
    assert storage.cache.owned_bytes("alice") == 50 == summed_afresh(storage, "alice")
    assert storage.cache.owned_bytes("bob") == 400 == summed_afresh(storage, "bob")
    storage.remove("shared")
    assert storage.cache.owned_bytes("bob") == 0 == summed_afresh(storage, "bob")
    store(storage, "anon", 30, "alice")
    up = storage.begin_upload("anon", 70, "overwrite")  # no owner: the name is nobody's now
    up.write(memoryview(b"z" * 70))
    up.commit()
    assert storage.cache.owned_bytes("alice") == 50 == summed_afresh(storage, "alice")


def test_a_catalog_from_before_sizes_is_measured_once_then_summed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / ".ftpd").mkdir(parents=True)
    (root / "old").write_bytes(b"o" * 250)
    db = sqlite3.connect(root / ".ftpd" / "md5.sqlite3")
    db.execute("CREATE TABLE owner (name TEXT PRIMARY KEY, owner TEXT)")
    db.execute("INSERT INTO owner VALUES ('old', 'alice')")
    db.commit()
    db.close()
    storage = Storage(root)
    try:
        assert storage.cache.owned_bytes("alice") is None  # a row without a size
        with pytest.raises(QuotaExceeded, match=r"\(250 used\)"):
            storage.begin_upload("new", 800, owner="alice", quota=1000)
        assert storage.cache.owned_bytes("alice") == 250  # measured and recorded
        store(storage, "new", 100, "alice")
        assert storage.cache.owned_bytes("alice") == 350 == summed_afresh(storage, "alice")
    finally:
        storage.close()


def test_a_rolled_back_change_drops_the_totals(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(storage, "a", 100, "alice")
    assert storage.cache.owned_bytes("alice") == 100
    real_count = storage.cache._count

    def count_then_fail(rows: list[tuple[str, int | None]], sign: int) -> None:
        real_count(rows, sign)
        if sign > 0:
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(storage.cache, "_count", count_then_fail)
    with pytest.raises(sqlite3.OperationalError):
        storage.cache.forget("a")
        storage.cache.record([("b", (storage.root / "a").stat(), "md5", "0" * 32, "alice")])
    monkeypatch.undo()
    assert storage.cache.owned_bytes("alice") == summed_afresh(storage, "alice")


def test_one_group_storing_a_name_twice_keeps_the_last(storage: Storage) -> None:
    """Two overwriting uploads of one name committed together: the owner row was inserted
    twice and the whole group failed with an IntegrityError."""
    uploads = []
    for data in (b"one", b"second"):
        up = storage.begin_upload("same", len(data), "overwrite", owner="alice")
        up.write(memoryview(data))
        uploads.append(up)
    results = storage.commit_many(uploads)
    assert [getattr(r, "size", r) for r in results] == [3, 6]
    assert (storage.root / "same").read_bytes() == b"second"
    assert storage.cache.owned_bytes("alice") == 6 == summed_afresh(storage, "alice")
    [entry] = storage.list()
    assert entry.md5 == hashlib.md5(b"second").hexdigest()
