"""A hostile review of a173651^..9736721: quota running totals, per-folder listing rows,
staging ids, unformatted log records, the shared JSON coder and gathered put_many frames.

The four bugs it found (a stale size written over a concurrent overwrite, a fresh upload's
row dropped, two overwrites of one name in one group, an overwrite freeing the on-disk size
of a file grown by hand) are fixed; their tests stay as regression tests beside the ones for
what held.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpc import Client, pipeline
from ftpd import catalog
from ftpd import storage as storage_mod
from ftpd.storage import Storage
from shared.errors import (
    Exists,
    LocalFileError,
    QuotaExceeded,
    RemoteProtocolError,
)
from shared.listing import FOLDER
from shared.protocol import MAX_INLINE, Role, encode, parse_header
from tests.conftest import ACCOUNTS, Daemon, Raw, wait_until
from tests.hostile_resume_helpers import plant_partial
from tests.quota_helpers import store, summed_afresh


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage(tmp_path / "root")
    yield s
    s.close()


def recorded_size(storage: Storage, name: str) -> int | None:
    db = sqlite3.connect(storage.root / ".ftpd" / "md5.sqlite3")
    try:
        row = db.execute("SELECT size FROM owner WHERE name=?", (name,)).fetchone()
    finally:
        db.close()
    return None if row is None else row[0]


def on_disk(storage: Storage, owner: str) -> int:
    """The truth: bytes of the regular files the catalog says `owner` uploaded."""
    total = 0
    for name in storage.cache.owned_by(owner):
        path = storage.root / name
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".ftpd" not in p.parts)


def assert_total(storage: Storage, owner: str, removed_by_hand: int = 0) -> None:
    """The running total is the recorded sizes (a fresh sum), which are the files on disk
    plus the rows of files removed by hand (kept since 9736721)."""
    total = storage.cache.owned_bytes(owner)
    assert total == summed_afresh(storage, owner)
    assert total == on_disk(storage, owner) + removed_by_hand


# --- quota running totals: bugs --------------------------------------------------------


def test_overwriting_a_file_grown_by_hand_cannot_pass_the_quota(storage: Storage) -> None:
    """The estimate must free the replaced file's recorded size (100), not its size on disk
    (600): otherwise the overwrite is admitted and the account ends 300 bytes over its quota
    with no change made by hand left on disk."""
    store(storage, "x", 100, "alice", quota=1000)
    store(storage, "y", 800, "alice", quota=1000)
    (storage.root / "x").write_bytes(b"g" * 600)  # grown by hand
    with pytest.raises(QuotaExceeded):  # 800 + 500 once x is replaced
        store(storage, "x", 500, "alice", "overwrite", quota=1000)


# --- quota running totals: what held ---------------------------------------------------


def _recorded_event(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the catalog has recorded a commit (whose thread then waits for the space
    lock, held by the check under way, to release its reservation)."""
    recorded = threading.Event()
    real_record = storage.cache.record

    def record(rows: list[tuple[str, os.stat_result, str, str, str | None]]) -> None:
        real_record(rows)
        recorded.set()

    monkeypatch.setattr(storage.cache, "record", record)
    return recorded


def _start_commit(upload: storage_mod.Upload, threads: list[threading.Thread]) -> None:
    def run() -> None:
        try:
            upload.commit()
        except Exception:  # a failure shows as a wrong total, not a thread warning
            upload.abort()

    thread = threading.Thread(target=run)
    thread.start()
    threads.append(thread)


def test_measuring_usage_keeps_the_size_of_a_concurrent_overwrite(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 2's check measures "a" (10 bytes); session 1 then publishes its 400-byte
    overwrite of "a" and records it. At 4f065f5 the measurement wrote 10 over the 400 and
    later uploads passed the quota; since 9736721 sized rows are left alone."""
    store(storage, "a", 10, "alice")
    store(storage, "gone", 900, "alice")
    (storage.root / "gone").unlink()  # removed by hand: the estimate is high, so measured
    first = storage.begin_upload("a", 400, "overwrite", owner="alice", quota=1000)
    first.write(memoryview(b"n" * 400))
    recorded = _recorded_event(storage, monkeypatch)
    threads: list[threading.Thread] = []
    real_stat = storage._stat

    def stat_then_overwrite(name: str) -> os.stat_result | None:
        st = real_stat(name)
        if name == "a" and not threads:
            _start_commit(first, threads)
            assert recorded.wait(10)
        return st

    monkeypatch.setattr(storage, "_stat", stat_then_overwrite)
    with pytest.raises(QuotaExceeded):  # 400 reserved + 10 measured + 650
        storage.begin_upload("b", 650, owner="alice", quota=1000)
    threads[0].join(10)
    monkeypatch.undo()
    assert recorded_size(storage, "a") == 400
    for name, size in (("c", 580), ("d", 400)):
        with contextlib.suppress(QuotaExceeded):
            store(storage, name, size, "alice", quota=1000)
    assert stored_bytes(storage.root) <= 1000
    assert_total(storage, "alice", removed_by_hand=900)


def test_measuring_usage_keeps_a_file_published_meanwhile(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice's check finds "gone" missing; bob publishes a new "gone" meanwhile. At 4f065f5
    the check then forgot the name, dropping bob's fresh row for good (his 500 bytes counted
    against no one); since 9736721 a check forgets nothing."""
    store(storage, "gone", 900, "alice")
    (storage.root / "gone").unlink()
    bobs = storage.begin_upload("gone", 500, owner="bob", quota=1000)
    bobs.write(memoryview(b"b" * 500))
    recorded = _recorded_event(storage, monkeypatch)
    threads: list[threading.Thread] = []
    real_forget = storage.cache.forget

    def publish_then_forget(name: str) -> None:
        if name == "gone" and not threads:
            _start_commit(bobs, threads)
            assert recorded.wait(10)
        real_forget(name)

    monkeypatch.setattr(storage.cache, "forget", publish_then_forget)
    storage.begin_upload("other", 200, owner="alice", quota=1000).abort()  # measured
    if not threads:  # the check forgot nothing: bob's upload lands after it
        _start_commit(bobs, threads)
    threads[0].join(10)
    monkeypatch.undo()
    assert (storage.root / "gone").stat().st_size == 500
    assert (storage.cache.owner_row("gone") or ("",))[0] == "bob"
    assert storage.usage("bob") == 500
    assert_total(storage, "bob")
    assert_total(storage, "alice")


def test_two_pipelined_overwrites_of_one_name_keep_the_session(daemon: Daemon) -> None:
    """Two `upload`s of "x" with overwrite in one send (one group commit at 4f065f5 raised
    IntegrityError: internal-error, session dropped, file unowned; fixed in 565c69f)."""

    def frame(data: bytes) -> bytes:
        return (
            encode(
                "upload",
                Role.CLIENT,
                name="x",
                size=len(data),
                md5=md5(data),
                on_conflict="overwrite",
            )
            + data
        )

    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(frame(b"1" * 100) + frame(b"2" * 300) + encode("ls", Role.CLIENT))
        replies = [raw.recv(), raw.recv()]
        assert [(r.type, r.get("size")) for r in replies] == [("ok", 100), ("ok", 300)]
        assert raw.recv().type == "listing"
    assert (daemon.root / "x").read_bytes() == b"2" * 300
    assert (daemon.server.storage.cache.owner_row("x") or ("",))[0] == "alice"
    assert_total(daemon.server.storage, "alice")


def _interrupt_put(daemon: Daemon, data: bytes, name: str, cut: int) -> None:
    with Raw(daemon) as raw:
        raw.login()
        raw.send("put", name=name, size=len(data), resume=True)
        assert raw.recv().type == "continue"
        raw.chan.send_raw(encode("data", Role.CLIENT, size=len(data)) + data[:cut])
    staging = daemon.staging
    assert wait_until(
        lambda: (
            any(p.stat().st_size == cut for p in staging.glob("*.part"))
            and not daemon.server.storage.partials._active
        )
    )


def test_totals_follow_every_protocol_path(daemon: Daemon, tmp_path: Path) -> None:
    """Overwrite, rename, skip, identical content, another owner's file replaced, removal,
    a resumable put interrupted and resumed, a file removed by hand and measured near the
    quota: the running total always equals the recorded sizes and the files on disk."""
    storage = daemon.server.storage
    daemon.users.set_quota("alice", 2_000_000)
    src = tmp_path / "src"
    src.mkdir()

    def local(name: str, data: bytes) -> Path:
        (src / name).write_bytes(data)
        return src / name

    with daemon.client("writer") as w:
        w.put(local("w", b"w" * 500), "theirs")
    with daemon.client() as c:
        c.put(local("a1", b"a" * 1000), "a")
        c.put(local("a2", b"A" * 300), "a", on_conflict="overwrite")
        c.put(local("b1", b"b" * 200), "b")
        renamed = c.put(local("b2", b"B" * 250), "b", on_conflict="rename")
        assert renamed.name != "b"
        assert c.put(local("b3", b"C" * 999), "b", on_conflict="skip").skipped
        assert c.put(src / "b1", "b").existed
        c.put(local("t", b"t" * 50), "theirs", on_conflict="overwrite")
        c.mkdir("sub")
        c.put(local("s", b"s" * 70), "sub/s")
        c.put(local("gone", b"g" * 400), "gone")
        c.put(local("rm", b"r" * 123), "rm")
        c.remove("rm")
        assert_total(storage, "alice")
        assert_total(storage, "writer")
        assert storage.cache.owned_bytes("writer") == 0

        data = os.urandom(300_000)
        _interrupt_put(daemon, data, "resumed.bin", 100_000)
        assert_total(storage, "alice")
        result = c.put(local("resumed.bin", data), resume=True)
        assert result.resumed_from == 100_000
        assert_total(storage, "alice")

        (daemon.root / "gone").unlink()  # by hand: its row stays, it counts until measured
        assert_total(storage, "alice", removed_by_hand=400)
        daemon.users.set_quota("alice", on_disk(storage, "alice") + 100)
    with daemon.client() as c:  # a new login picks up the quota
        c.put(local("near", b"n" * 100), "near")  # fits only once the files are measured
        with pytest.raises(QuotaExceeded):
            c.put(local("over", b"o"), "over")
    assert_total(storage, "alice", removed_by_hand=400)


def test_concurrent_sessions_of_one_account_stay_within_the_quota(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Four sessions of alice pipeline distinct files while her checks measure (files
    removed by hand keep the estimate high): never past the quota, totals exact."""
    storage = daemon.server.storage
    for i in range(5):
        store(storage, f"gone{i}", 3000, "alice")
        (daemon.root / f"gone{i}").unlink()
    quota = 20_000
    daemon.users.set_quota("alice", quota)
    src = tmp_path / "src"
    src.mkdir()
    batches = []
    for t in range(4):
        paths = []
        for i in range(30):
            path = src / f"t{t}-{i:02d}"
            path.write_bytes(os.urandom(100 + 13 * i))
            paths.append(path)
        batches.append(paths)
    outcomes: dict[int, list[object]] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            with daemon.client() as c:
                outcomes[t] = list(c.put_many(batches[t]))
        except BaseException as exc:  # reported below, not as a thread warning
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(outcomes) == 4
    kinds = {type(o).__name__ for results in outcomes.values() for o in results}
    assert kinds <= {"PutResult", "QuotaExceeded"}
    assert "QuotaExceeded" in kinds
    assert stored_bytes(daemon.root) <= quota
    assert_total(storage, "alice", removed_by_hand=5 * 3000)


def test_a_quota_of_zero_refuses_every_byte_but_not_an_empty_file(
    daemon: Daemon, tmp_path: Path
) -> None:
    daemon.users.set_quota("alice", 0)
    src = tmp_path / "src"
    src.mkdir()
    (src / "empty").write_bytes(b"")
    (src / "one").write_bytes(b"1")
    (src / "big").write_bytes(b"b" * (MAX_INLINE + 1))
    with daemon.client() as c:
        outcomes = c.put_many(
            [src / "one", src / "empty", src / "big", src / "one"], ["1", "e", "b", "2"]
        )
        assert [type(o).__name__ for o in outcomes] == [
            "QuotaExceeded",
            "PutResult",
            "QuotaExceeded",
            "QuotaExceeded",
        ]
        assert [e.name for e in c.list()] == ["e"]
    assert daemon.server.storage.cache.owned_bytes("alice") == 0


def test_a_corrupt_catalog_is_replaced_and_totals_start_from_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / ".ftpd").mkdir(parents=True)
    (root / ".ftpd" / "md5.sqlite3").write_bytes(b"this is not a database\0" * 200)
    (root / "old").write_bytes(b"o" * 300)  # its owner was lost with the catalog
    s = Storage(root)
    try:
        assert s.cache.owned_bytes("alice") == 0
        store(s, "new", 400, "alice", quota=1000)
        with pytest.raises(QuotaExceeded, match=r"\(400 used\)"):
            store(s, "more", 700, "alice", quota=1000)
        assert_total(s, "alice")
    finally:
        s.close()


def test_an_old_catalog_with_gone_files_and_a_folder_in_a_files_place(tmp_path: Path) -> None:
    """Rows without sizes: one file kept, two removed by hand (one with quotes, a percent
    sign and an accent), one name now a folder. The first measuring pass sizes them all (0
    for what is not a file), and from then on the total is known and kept."""
    root = tmp_path / "root"
    (root / ".ftpd").mkdir(parents=True)
    (root / "kept").write_bytes(b"k" * 250)
    (root / "dir").mkdir()
    (root / "dir" / "inside").write_bytes(b"i" * 999)
    db = sqlite3.connect(root / ".ftpd" / "md5.sqlite3")
    db.execute("CREATE TABLE owner (name TEXT PRIMARY KEY, owner TEXT)")
    db.executemany(
        "INSERT INTO owner VALUES (?, 'alice')", [("kept",), ("gone",), ("dir",), ("q'%\"é",)]
    )
    db.commit()
    db.close()
    for _ in range(2):  # the migration is idempotent
        Storage(root).close()
    s = Storage(root)
    try:
        columns = [r[1] for r in s.cache._db.execute("PRAGMA table_info(owner)")]
        assert columns == ["name", "owner", "size"]
        assert s.cache.owned_bytes("alice") is None
        store(s, "new", 700, "alice", quota=1000)  # 250 measured + 700
        assert recorded_size(s, "kept") == 250
        assert recorded_size(s, "dir") == 0
        assert s.cache.owned_bytes("alice") == 950
        with pytest.raises(QuotaExceeded, match=r"\(950 used\)"):
            store(s, "more", 51, "alice", quota=1000)
        store(s, "fits", 50, "alice", quota=1000)
        assert on_disk(s, "alice") == 1000
        with pytest.raises(QuotaExceeded, match=r"\(1000 used\)"):
            store(s, "one", 1, "alice", quota=1000)
    finally:
        s.close()


# --- listing: rows of the listed folder only -------------------------------------------

HOSTILE = ["it's", 'say "hi"', "100%", "%_", "a%b_c", "ünïcödé", "日本語", "a b", "x?y", "[z]*"]


def test_listing_large_folders_with_hostile_names_and_look_alike_folders(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three batches of names, quotes, percent signs and non-ASCII; folders "d", "d2",
    "d/d" and "d%" holding the same names with different bytes: each listing gets its own
    folder's md5s, from the cache on the second pass."""
    names = [f"f{i:04d}" for i in range(catalog.LOOKUP_BATCH * 2 + 1)] + HOSTILE
    folders = ["d", "d2", "d/d", "d%", "d'"]
    for folder in folders:
        (storage.root / folder).mkdir(parents=True, exist_ok=True)
    expected: dict[str, dict[str, str]] = {}
    for folder in folders:
        expected[folder] = {}
        for name in names if folder == "d" else HOSTILE + names[:3]:
            data = f"{folder}/{name}".encode()
            (storage.root / folder / name).write_bytes(data)
            expected[folder][name] = md5(data)
    for folder in folders:
        listed = {e.name: e.md5 for e in storage.list(folder) if e.kind != FOLDER}
        assert listed == expected[folder]
    monkeypatch.setattr(storage_mod, "Opened", None)  # second pass: the cache only
    for folder in folders:
        listed = {e.name: e.md5 for e in storage.list(folder) if e.kind != FOLDER}
        assert listed == expected[folder]
    assert [e.name for e in storage.list("d") if e.kind == FOLDER] == ["d"]
    monkeypatch.undo()
    (storage.root / "d2" / "100%").write_bytes(b"changed by hand, other size")
    listed = {e.name: e.md5 for e in storage.list("d2")}
    assert listed["100%"] == md5(b"changed by hand, other size")
    assert {e.name: e.md5 for e in storage.list("d%")} == expected["d%"]


def test_listing_an_empty_folder_and_exactly_one_batch(storage: Storage) -> None:
    (storage.root / "empty").mkdir()
    assert storage.list("empty") == []
    (storage.root / "one").mkdir()
    for i in range(catalog.LOOKUP_BATCH):
        (storage.root / "one" / f"{i}").write_bytes(b"%d" % i)
    first = storage.list("one")
    assert len(first) == catalog.LOOKUP_BATCH
    assert storage.list("one") == first
    assert len(storage.cache.rows_for([f"one/{i}" for i in range(catalog.LOOKUP_BATCH)])) == 500


# --- staging ids ------------------------------------------------------------------------


def test_staging_ids_after_a_restart_with_kept_partials(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = os.urandom(1000)
    s = Storage(root, resume_ttl=3600)
    try:
        up = s.begin_upload("big.bin", 1000, owner="alice", resumable=True)
        up.write(memoryview(data[:400]))
        kept = up.id
        up.suspend()
        first_prefix = s.partials.new_id()[:16]
    finally:
        s.close()
    staging = root / ".ftpd" / "staging"
    plant_partial(staging, b"o" * 100, name="old.bin", size=300, id_="cd" * 16)  # 32 hex

    s = Storage(root, resume_ttl=3600)
    try:
        assert sorted(p.name for p in staging.glob("*.part")) == sorted(
            [f"{kept}.part", f"{'cd' * 16}.part"]
        )
        fresh = [s.partials.new_id() for _ in range(50)]
        assert len(set(fresh)) == 50 and kept not in fresh
        assert fresh[0][:16] != first_prefix
        other = s.begin_upload("other", 10, owner="alice", resumable=True)
        assert other.id not in (kept, "cd" * 16)
        other.write(memoryview(b"0123456789"))
        other.commit()
        resumed = s.begin_upload("big.bin", 1000, owner="alice", resumable=True)
        assert (resumed.id, resumed.offset) == (kept, 400)
        resumed.write(memoryview(data[400:]))
        resumed.commit()
        assert (root / "big.bin").read_bytes() == data
        old = s.begin_upload("old.bin", 300, owner="alice", resumable=True)
        assert (old.id, old.offset) == ("cd" * 16, 100)
        old.write(memoryview(b"o" * 200))
        old.commit()
        assert list(staging.iterdir()) == []
        assert s.cache.owned_bytes("alice") == 1310
    finally:
        s.close()


def test_staging_ids_are_unique_across_threads(storage: Storage) -> None:
    ids: list[list[str]] = [[] for _ in range(8)]

    def work(k: int) -> None:
        for _ in range(2000):
            ids[k].append(storage.partials.new_id())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [i for chunk in ids for i in chunk]
    assert len(every) == 16_000 == len(set(every))
    assert all(storage.partials.part(i).endswith(f"/staging/{i}.part") for i in every[:5])


# --- the shared JSON coder ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (b'{"type": "ls", "a": 1, "b": 2, "a": 1}', "a"),
        (b'{"type": "ls", "a": 1, "a": 2, "a": 3}', "a"),
        (b'{"type": "ls", "x": [1, {"k": 1, "j": 2, "k": 1}]}', "k"),
        (b'{"type": "ls", "x": {"y": {"\\u00e9": 1, "\xc3\xa9": 2}}}', "\u00e9"),
        (b'{"type": "ls", "": 1, "": 2}', ""),
    ],
)
def test_duplicate_keys_are_refused_and_named(payload: bytes, key: str) -> None:
    with pytest.raises(RemoteProtocolError, match=f"duplicate key {key!r}"):
        parse_header(payload, Role.CLIENT)


def test_the_shared_coder_is_safe_across_threads() -> None:
    good = [encode("upload", Role.CLIENT, name=f"n{i}é", size=i, md5="0" * 32) for i in range(50)]
    bad = [b'{"type": "ls", "k%d": 1, "k%d": 2}' % (i, i) for i in range(50)]
    failures: list[str] = []

    def work() -> None:
        for _ in range(20):
            for i in range(50):
                msg = parse_header(good[i][4:], Role.CLIENT)
                if (msg["name"], msg["size"]) != (f"n{i}é", i):
                    failures.append(f"wrong {msg}")
                try:
                    parse_header(bad[i], Role.CLIENT)
                    failures.append("duplicate accepted")
                except RemoteProtocolError as exc:
                    if f"'k{i}'" not in str(exc):
                        failures.append(str(exc))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []


# --- put_many: gathered frames --------------------------------------------------------


def test_put_many_with_a_mix_refusals_a_large_file_and_a_rate_limit(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Small files, frames that cross SEND_BYTES, a large file in the middle, unreadable
    paths, names the server refuses (taken, a folder) or finds identical, and a quota
    that refuses the last file, all through a rate-limited client: every outcome in order,
    the stream still in frame, and the running total exact."""
    src = tmp_path / "src"
    src.mkdir()
    plan: list[tuple[Path, str]] = []

    def small(name: str, size: int, kind: str = "PutResult") -> None:
        path = src / name
        path.write_bytes(os.urandom(size))
        plan.append((path, kind))

    for i in range(20):
        small(f"s{i:02d}", i * 97, "Exists" if i == 3 else "PutResult")
    plan.append((src / "missing", "LocalFileError"))
    os.mkfifo(src / "fifo")
    plan.append((src / "fifo", "LocalFileError"))
    for i in range(3):
        small(f"m{i}", pipeline.SEND_BYTES - 1000 + i)
    small("big", MAX_INLINE + 1234)  # goes through `put`, in its place
    for i in range(3, 6):
        small(f"m{i}", pipeline.SEND_BYTES + i)
    for i in range(20, 40):
        small(f"s{i:02d}", i * 97, "Exists" if i == 30 else "PutResult")
    (src / "adir").mkdir()
    plan.append((src / "adir", "LocalFileError"))
    small("zlast", 50_000, "QuotaExceeded")
    paths = [path for path, _ in plan]
    expected = [kind for _, kind in plan]
    (daemon.root / "s03").write_bytes(b"someone else's")  # refused: exists
    (daemon.root / "s04").write_bytes((src / "s04").read_bytes())  # identical: existed
    (daemon.root / "s30").mkdir()  # refused: a folder holds the name
    stored_total = sum(
        p.stat().st_size for p, kind in plan if kind == "PutResult" and p.name != "s04"
    )
    daemon.users.set_quota("alice", stored_total + 1000)  # the last file does not fit

    seen: list[Path] = []
    with daemon.client(limit_rate=16 << 20) as c:
        outcomes = c.put_many(paths, on_result=lambda p, o: seen.append(p))
        assert sorted(seen) == sorted(paths)  # each once; local errors settle first
        assert [type(o).__name__ for o in outcomes] == expected
        assert outcomes[4].existed  # type: ignore[union-attr]
        assert isinstance(outcomes[3], Exists)
        assert isinstance(outcomes[20], LocalFileError)
        assert c.chan.throttle is not None and c.chan.throttle.slept > 0
        listed = {e.name: e.md5 for e in c.list()}  # the stream is still in frame
    for path, kind in plan:
        if kind == "PutResult":
            assert listed[path.name] == md5(path.read_bytes()), path.name
    assert "zlast" not in listed
    assert daemon.server.storage.cache.owned_bytes("alice") == stored_total


def test_put_many_waits_for_no_reply_whose_request_is_still_gathered(
    daemon: Daemon, tmp_path: Path
) -> None:
    """More files than the window, each tiny: the first collect happens with frames
    gathered and unsent; a missing flush would hang until the timeout."""
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(pipeline.WINDOW * 2 + 3):
        p = src / f"t{i:03d}"
        p.write_bytes(b"%d" % i)
        paths.append(p)
    with Client(daemon.host, daemon.port, "alice", ACCOUNTS["alice"][0], timeout=5) as c:
        outcomes = c.put_many(paths, on_conflict="overwrite")
        assert all(type(o).__name__ == "PutResult" for o in outcomes)
        assert len(c.list()) == len(paths)
