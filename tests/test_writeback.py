"""Write-behind: writeback started while writing, and the final fsync still decides."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ftpc.client import Client
from ftpd import upload
from ftpd.storage import DIRECT_WRITERS, Storage, Upload
from shared import digests, writeback
from shared.errors import NoSpace
from shared.protocol import Role, encode
from shared.wire import Channel, Landing
from shared.writeback import (
    DIRECT_FROM,
    DIRECT_SLOT,
    DIRECT_SLOTS,
    DirectWriter,
    WriteBehind,
    start_writeback,
)
from tests.conftest import Daemon


def test_starts_writeback_every_few_mib_then_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_start, real_fsync = writeback.start_writeback, os.fsync
    monkeypatch.setattr(
        writeback, "start_writeback", lambda fd: (calls.append("start"), real_start(fd))
    )
    monkeypatch.setattr(writeback.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        behind = WriteBehind(fd, every=1 << 20)
        for _ in range(9):
            os.write(fd, b"x" * (1 << 19))
            behind.wrote(1 << 19)
        behind.finish()
    finally:
        os.close(fd)
    assert calls == ["start"] * 4 + ["fsync"]
    assert (tmp_path / "f").stat().st_size == 9 << 19


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_the_kernel_call_is_found_and_works_on_a_real_file(tmp_path: Path) -> None:
    assert writeback._SYNC_FILE_RANGE is not None
    with open(tmp_path / "f", "wb") as f:
        f.write(b"y" * (3 << 20))
        f.flush()
        start_writeback(f.fileno())  # no error: writeback of the dirty pages has begun
        os.fsync(f.fileno())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_a_refused_writeback_raises_the_kernels_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        with pytest.raises(OSError) as caught:
            start_writeback(write_end)  # a pipe has no pages to write back
    finally:
        os.close(write_end)
    assert caught.value.errno == errno.ESPIPE


def test_an_error_while_writing_behind_surfaces_from_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int, offset: int, nbytes: int, flags: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", broken)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        behind = WriteBehind(fd, every=10)
        behind.wrote(9)
        with pytest.raises(OSError, match="Input/output error"):
            behind.wrote(1)
    finally:
        os.close(fd)


# --- DirectWriter: O_DIRECT from aligned buffers in a second thread ------------------------


def _direct(path: Path, offset: int = 0) -> tuple[int, DirectWriter]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    os.lseek(fd, offset, os.SEEK_SET)
    writer = DirectWriter.open(fd)
    if writer is None:
        os.close(fd)
        pytest.skip(f"the file system under {path.parent} refuses O_DIRECT")
    return fd, writer


def _chunks(data: bytes, size: int) -> list[memoryview]:
    view = memoryview(data)
    return [view[i : i + size] for i in range(0, len(data), size)]


def _write_through(path: Path, data: bytes, chunk: int, offset: int = 0) -> None:
    """Write `data` at `offset` of `path` through a DirectWriter, `chunk` bytes at a time."""
    fd, writer = _direct(path, offset)
    try:
        for piece in _chunks(data, chunk):
            writer.write(piece)
        writer.close()
    finally:
        os.close(fd)


@pytest.mark.parametrize("extra", [0, 1, 4095, 4096, 12345])
def test_direct_writes_arrive_whole_and_in_order(tmp_path: Path, extra: int) -> None:
    data = os.urandom(2 * DIRECT_SLOT + extra)
    fd, writer = _direct(tmp_path / "f")
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
        for chunk in _chunks(data, 100_003):  # odd sizes: slots fill across chunks
            writer.write(chunk)
        writer.close()
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT  # buffered again
        os.fsync(fd)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


def test_direct_writing_continues_an_aligned_part(tmp_path: Path) -> None:
    head, rest = os.urandom(8192), os.urandom(DIRECT_SLOT + 77)
    (tmp_path / "f").write_bytes(head)
    _write_through(tmp_path / "f", rest, len(rest), offset=len(head))
    assert (tmp_path / "f").read_bytes() == head + rest


def test_an_unaligned_start_is_left_to_the_page_cache(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        os.lseek(fd, 1000, os.SEEK_SET)
        assert DirectWriter.open(fd) is None
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(fd)


def test_a_refused_direct_write_is_retried_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some file systems take the flag and then refuse the write (EINVAL)."""
    real = os.pwrite
    refused: list[int] = []

    def picky(fd: int, data: memoryview, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(writeback.os, "pwrite", picky)
    data = os.urandom(2 * DIRECT_SLOT + 10)
    _write_through(tmp_path / "f", data, 1 << 20)
    assert refused == [0]  # refused once, then every write went through the page cache
    assert (tmp_path / "f").read_bytes() == data


@pytest.mark.parametrize("most", [DIRECT_SLOT // 4, DIRECT_SLOT // 4 + 100])
def test_short_direct_writes_are_continued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, most: int
) -> None:
    """A write may take fewer bytes than asked: aligned, the rest stays direct; unaligned,
    the rest goes through the page cache (O_DIRECT could not take it)."""
    real = os.pwrite
    modes: list[bool] = []

    def short(fd: int, data: memoryview, offset: int) -> int:
        modes.append(bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
        return real(fd, data[:most], offset)

    monkeypatch.setattr(writeback.os, "pwrite", short)
    data = os.urandom(DIRECT_SLOT * 2 + 5)
    _write_through(tmp_path / "f", data, 3 << 20)
    assert (tmp_path / "f").read_bytes() == data
    assert modes[0] and all(modes[:-1]) == (most % 4096 == 0)


def test_a_write_that_takes_nothing_is_an_error_not_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writeback.os, "pwrite", lambda fd, data, offset: 0)
    fd, writer = _direct(tmp_path / "f")
    try:
        writer.write(memoryview(os.urandom(DIRECT_SLOT)))
        with pytest.raises(OSError, match="took no bytes"):
            writer.close()
    finally:
        os.close(fd)


def test_a_failed_direct_write_surfaces_and_the_thread_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writeback.os, "pwrite", full)
    fd, writer = _direct(tmp_path / "f")
    try:
        with pytest.raises(OSError) as caught:
            for chunk in _chunks(os.urandom(DIRECT_SLOT * (DIRECT_SLOTS + 2)), 1 << 20):
                writer.write(chunk)  # raises once the thread has met the error
            writer.close()
        assert caught.value.errno == errno.ENOSPC
        with pytest.raises(OSError, match="No space left"):
            writer.close()  # the error is kept for whoever closes
    finally:
        os.close(fd)
    assert not writer._thread.is_alive()


def test_a_large_download_goes_through_the_page_cache_with_write_behind(
    daemon: Daemon, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DirectWriter on the client: page cache and write-behind measured faster here
    (docs/BENCHMARKS.md), and the writeback starts while the bytes still arrive."""
    direct: list[int] = []
    started: list[int] = []
    real_open, real_start = DirectWriter.open, writeback.start_writeback

    def open_spy(fd: int, *args: object) -> DirectWriter | None:
        direct.append(fd)
        return real_open(fd, *args)  # type: ignore[arg-type]

    def start_spy(fd: int) -> None:
        started.append(fd)
        real_start(fd)

    monkeypatch.setattr(writeback.DirectWriter, "open", open_spy)
    monkeypatch.setattr(writeback, "start_writeback", start_spy)
    big = os.urandom(3 * writeback.EVERY + 4097)
    (daemon.root / "big.bin").write_bytes(big)
    out = tmp_path / "out"
    out.mkdir()
    assert client.get("big.bin", out).md5 == hashlib.md5(big).hexdigest()
    assert (out / "big.bin").read_bytes() == big
    assert direct == []
    assert len(started) >= 2  # about every EVERY bytes; the final fsync takes the tail


def test_a_writer_that_fails_unexpectedly_fails_the_download_not_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anything the thread meets, not only an OSError, must surface: else the slot it could
    not write would be a hole in a file whose checksum (taken from the stream) looks fine."""
    real = os.pwrite
    calls: list[int] = []

    def fails_second(fd: int, data: memoryview, offset: int) -> int:
        calls.append(offset)
        if len(calls) == 2:
            raise MemoryError
        return real(fd, data, offset)

    monkeypatch.setattr(writeback.os, "pwrite", fails_second)
    fd, writer = _direct(tmp_path / "f")
    try:
        with pytest.raises(OSError, match="the direct writer failed: MemoryError"):
            for chunk in _chunks(os.urandom(DIRECT_SLOT * 6), 1 << 20):
                writer.write(chunk)
            writer.close()
    finally:
        with contextlib.suppress(OSError):
            writer.close()
        os.close(fd)
    assert not writer._thread.is_alive()


@pytest.mark.parametrize("shortage", ["memory", "thread"])
def test_no_buffers_or_no_thread_means_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shortage: str
) -> None:
    def no_memory(*args: object) -> None:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    if shortage == "memory":
        monkeypatch.setattr(writeback.mmap, "mmap", no_memory)
    else:
        monkeypatch.setattr(writeback.threading.Thread, "start", no_thread)
    before = len(os.listdir("/proc/self/fd"))
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert DirectWriter.open(fd) is None
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
        assert len(os.listdir("/proc/self/fd")) == before + 1  # no descriptor left behind
    finally:
        os.close(fd)


def test_an_interrupted_close_keeps_writing_to_its_own_file(tmp_path: Path) -> None:
    """Ctrl-C in close() lets the caller close its descriptor while slots are queued; the
    thread must not write them into whatever file takes that number next."""
    data = os.urandom(DIRECT_SLOT * 2)
    fd, writer = _direct(tmp_path / "f")
    for chunk in _chunks(data, 1 << 20):
        writer.write(chunk)
    real_join = writer._thread.join

    def interrupted(timeout: float | None = None) -> None:
        raise KeyboardInterrupt

    writer._thread.join = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        writer.close()
    os.close(fd)
    other = os.open(tmp_path / "unrelated", os.O_RDWR | os.O_CREAT)
    try:
        real_join(timeout=30)
        assert not writer._thread.is_alive()
    finally:
        os.close(other)
    assert (tmp_path / "unrelated").read_bytes() == b""
    assert (tmp_path / "f").read_bytes() == data


def test_bytes_received_into_the_slots_are_written_as_they_landed(tmp_path: Path) -> None:
    """`space`/`filled` in pieces of every size, slot ends crossed and an unaligned tail."""
    data = os.urandom(DIRECT_SLOT * 2 + 777)
    fd, writer = _direct(tmp_path / "f")
    try:
        at, step = 0, 1
        while at < len(data):
            room = writer.space()
            n = min(len(room), step, len(data) - at)
            room[:n] = data[at : at + n]
            writer.filled(n)
            at, step = at + n, step * 3 + 1
        writer.close()
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


class _Recorder(Landing):
    """A Landing that hands out 1000-byte buffers and keeps what lands in them."""

    def __init__(self) -> None:
        self.got = bytearray()
        self.calls = 0
        self._buf = memoryview(bytearray(1000))

    def space(self) -> memoryview:
        return self._buf

    def filled(self, n: int) -> None:
        self.calls += 1
        self.got += self._buf[:n]


def test_a_body_lands_in_the_receivers_own_buffers() -> None:
    """The bytes read with the header (held by the decoder) and the rest read from the
    socket both arrive, in order, through `space` and `filled`."""
    body = os.urandom(50_000)
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(10)
        b.settimeout(10)
        a.sendall(encode("data", Role.CLIENT, size=len(body)) + body[:3000])
        receiver = Channel(b, Role.SERVER)
        assert receiver.recv_message().type == "data"
        assert receiver.decoder.buffered > 0  # some of the body came with the header
        sender = threading.Thread(target=a.sendall, args=(body[3000:],))
        sender.start()
        landing = _Recorder()
        assert receiver.recv_body(landing) == len(body)
        sender.join(10)
    assert bytes(landing.got) == body
    assert landing.calls >= len(body) // 1000


def _spy_direct(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record each DirectWriter the server opens (True) or could not (False), and fail
    if one is fed by copying instead of receiving into its slots."""
    opened: list[bool] = []
    real_open = DirectWriter.open

    def spy(fd: int, on_written: Callable[[int], None] | None = None) -> DirectWriter | None:
        writer = real_open(fd, on_written)
        opened.append(writer is not None)
        return writer

    def copied(self: DirectWriter, chunk: memoryview) -> None:
        raise AssertionError("a received body was copied into the writer")

    monkeypatch.setattr(upload.DirectWriter, "open", spy)
    monkeypatch.setattr(upload.DirectWriter, "write", copied)
    return opened


def test_a_large_md5_upload_is_received_into_a_direct_writer(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only large bodies checked with a slow digest: md5 above DIRECT_FROM, not a small
    file, not a fast digest (the page cache serves those better, see Upload.begin_body)."""
    opened = _spy_direct(monkeypatch)
    big, small = os.urandom(DIRECT_FROM + 4097), os.urandom(5000)
    (tmp_path / "big").write_bytes(big)
    (tmp_path / "small").write_bytes(small)
    with daemon.client() as c:
        assert c.put(tmp_path / "big").md5 == hashlib.md5(big).hexdigest()
        c.put(tmp_path / "small")
    if opened == [False]:
        pytest.skip(f"the file system under {daemon.root} refuses O_DIRECT")
    assert (daemon.root / "big").read_bytes() == big
    assert (daemon.root / "small").read_bytes() == small
    if "xxh3-128" in digests.available():
        with daemon.client(digest="xxh3-128") as c:
            c.put(tmp_path / "big", name="fast")
        assert opened == [True]
        assert (daemon.root / "fast").read_bytes() == big
    assert list(daemon.staging.iterdir()) == []


def test_a_direct_upload_the_disk_refuses_stores_nothing_and_the_session_goes_on(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC in the writer thread reaches the client as no-space; the rest of the body is
    drained, so the same session uploads the next file."""
    opened = _spy_direct(monkeypatch)
    real = os.pwrite
    full = [True]

    def no_room(fd: int, data: memoryview, offset: int) -> int:
        if full[0] and offset >= DIRECT_SLOT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(writeback.os, "pwrite", no_room)
    big = os.urandom(DIRECT_FROM * 2)
    (tmp_path / "big").write_bytes(big)
    (tmp_path / "next").write_bytes(b"next file")
    with daemon.client() as c:
        with pytest.raises(NoSpace, match="ran out of disk space"):
            c.put(tmp_path / "big")
        if opened == [False]:
            pytest.skip(f"the file system under {daemon.root} refuses O_DIRECT")
        full[0] = False
        c.put(tmp_path / "next")
        assert [e.name for e in c.list()] == ["next"]
    assert not (daemon.root / "big").exists()
    assert list(daemon.staging.iterdir()) == []


class _Slots(Landing):
    """A large upload's writer slots as the channel sees them: `Landing.write` copies in."""

    def __init__(self, up: Upload) -> None:
        self.space, self.filled = up.space, up.filled  # type: ignore[method-assign]


def _land(up: Upload, data: bytes) -> None:
    """Feed `data` to a large upload the way the channel does: into its writer's slots."""
    _Slots(up).write(memoryview(data))


def _direct_upload(storage: Storage, name: str, size: int, resumable: bool = False) -> Upload:
    up = storage.begin_upload(name, size, "overwrite", resumable=resumable)
    if not up.begin_body():
        up.abort()
        pytest.skip(f"the file system under {storage.root} refuses O_DIRECT")
    return up


def test_bytes_still_in_a_slot_stay_reserved_until_they_are_written(tmp_path: Path) -> None:
    """The free space the kernel reports does not count bytes waiting in our buffers, so a
    paused upload must keep them reserved, or other uploads are promised its room."""
    storage = Storage(tmp_path / "root")
    try:
        size = DIRECT_FROM * 2
        data = os.urandom(size)
        up = _direct_upload(storage, "a", size)
        _land(up, data[: DIRECT_SLOT - 1])  # less than a slot: nothing written yet
        assert storage.space.unwritten == size
        _land(up, data[DIRECT_SLOT - 1 :])
        entry = up.commit()
        assert entry.size == size and (storage.root / "a").read_bytes() == data
        assert storage.space.unwritten == 0
        up = _direct_upload(storage, "dropped", size)
        _land(up, data[: 3 * DIRECT_SLOT + 5])
        up.abort()
        assert storage.space.unwritten == 0
        up = _direct_upload(storage, "kept", size, resumable=True)
        _land(up, data[: 3 * DIRECT_SLOT + 5])
        up.suspend()
        assert storage.space.unwritten == 0
        [part] = (storage.root / ".ftpd" / "staging").glob("*.part")
        assert part.read_bytes() == data[: 3 * DIRECT_SLOT + 5]
    finally:
        storage.close()


def test_only_a_few_uploads_at_once_get_a_direct_writer(tmp_path: Path) -> None:
    """Each holds a thread and 4 MiB: the rest go through the page cache, whatever the
    connection limit, and a place freed is taken by the next upload."""
    storage = Storage(tmp_path / "root")
    ups = [storage.begin_upload(f"f{i}", DIRECT_FROM, "fail") for i in range(DIRECT_WRITERS + 1)]
    try:
        direct = [up.begin_body() for up in ups]
        if not any(direct):
            pytest.skip(f"the file system under {storage.root} refuses O_DIRECT")
        assert direct == [True] * DIRECT_WRITERS + [False]
        ups[0].abort()
        late = storage.begin_upload("late", DIRECT_FROM, "fail")
        ups.append(late)
        assert late.begin_body()
    finally:
        for up in ups:
            up.abort()
        storage.close()
    assert storage.space.unwritten == 0
    assert not [t for t in threading.enumerate() if t.name == "direct-writer"]
