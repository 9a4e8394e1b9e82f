"""Write-behind: start writing a large file to disk while it is still being written.

An fsync at the end of a 1 GiB write would wait for the whole gigabyte to reach
the disk. Every 8 MiB, `sync_file_range(SYNC_FILE_RANGE_WRITE)` asks the kernel
to start writing what is dirty, and returns without waiting: the disk works while
bytes keep arriving, and the final fsync, which alone decides when the file is
durable, has only the tail left. Unlike an fdatasync it flushes no disk cache and
commits no journal, so the writes that follow are not held up behind it (measured:
a 1 GiB md5 upload went from 302-365 to 370-409 MB/s, see docs/BENCHMARKS.md).

For many small files the opposite holds: one fsync each means one journal
commit each, so a group of them is made durable with one syncfs instead.

A large upload verified with md5 skips the page cache altogether (`DirectWriter`):
hashing holds the server's core, and copying into fresh page-cache pages was most of
the rest. One verified with a fast digest is written through the page cache, which
keeps the disk busier, and so is every download: on this machine the client's copy is
cheap and the kernel's writeback beat one direct write at a time.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import platform
import queue
import re
import sys
import threading
from collections.abc import Callable

from shared.wire import Landing

EVERY = 8 << 20
SYNC_FILE_RANGE_WRITE = 2


class WriteBehind:
    """Counts the bytes written to `fd` and starts their writeback every `every` bytes."""

    def __init__(self, fd: int, every: int = EVERY) -> None:
        self.fd = fd
        self.every = every
        self._since = 0

    def wrote(self, n: int) -> None:
        """`n` more bytes were written; OSError if the kernel refuses to write them back."""
        self._since += n
        if self._since >= self.every:
            self._since = 0
            start_writeback(self.fd)

    def finish(self) -> None:
        """The durable end: fsync, which also reports any write error met on the way."""
        os.fsync(self.fd)


ALIGN = 4096
"""O_DIRECT wants buffers, lengths and file offsets aligned to the disk's logical block
(512 bytes here, 4096 on some disks): page-aligned buffers and 4 KiB multiples suit all."""
DIRECT_FROM = 8 << 20
"""Bodies this large may be written by a DirectWriter: below it, a thread and its buffers
cost more than the page cache does."""
DIRECT_SLOT = 1 << 20
DIRECT_SLOTS = 4
"""4 MiB of buffers per writer. Larger slots were no faster: one 1 MiB O_DIRECT write at
a time kept this disk as busy as 4 MiB ones did (1,217-1,339 MB/s either way)."""


class DirectWriter(Landing):
    """Writes a file with O_DIRECT from a few reused, aligned buffers, in a second thread.

    A buffered write copies every byte into a page-cache page that must first be found
    and, on a virtual machine, often faulted in by the host; on a server busy hashing
    md5 that copy was most of its system time. With O_DIRECT the disk reads our buffers
    itself, and the thread lets it do so while the next bytes arrive; the bytes are not
    left in the page cache. Bytes can be received straight into the buffers (it is a
    Landing), so the receiving thread copies nothing; `write` copies bytes in from
    elsewhere, and raises the OSError of an earlier write. They are written in order, so
    the file is always a prefix of the stream (a resumable part stays resumable).

    `open()` gives None where the file system refuses O_DIRECT; a write the file system
    refuses later (EINVAL) is retried buffered, and so is the unaligned tail.
    """

    def __init__(
        self, fd: int, offset: int, on_written: Callable[[int], None] | None = None
    ) -> None:
        """Use `open()`: it sets O_DIRECT first, and falls back when anything fails."""
        self.offset = offset
        """Where the next slot goes in the file."""
        self._on_written = on_written
        """Told how many bytes each write put in the file, from the writer's thread (and
        from `close()` for the tail): bytes merely handed over are not on the disk yet."""
        self._free: queue.Queue[mmap.mmap] = queue.Queue()
        for _ in range(DIRECT_SLOTS):
            self._free.put(mmap.mmap(-1, DIRECT_SLOT))
        self._work: queue.Queue[tuple[mmap.mmap, int, int] | None] = queue.Queue()
        self._slot: mmap.mmap | None = None
        self._fill = 0
        self._direct = True
        self._error: OSError | None = None
        self._caller = fd
        self.fd = os.dup(fd)
        """The thread's own descriptor: if the caller's is closed while slots are still
        queued (an interrupt in `close()`), the bytes still go to this file, not to
        whatever file reuses the number."""
        self._thread = threading.Thread(target=self._run, name="direct-writer", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            os.close(self.fd)
            raise

    @classmethod
    def open(cls, fd: int, on_written: Callable[[int], None] | None = None) -> DirectWriter | None:
        """A writer continuing at `fd`'s position, or None if O_DIRECT cannot be used (the
        file system refuses it, or there is no memory or thread for the buffers)."""
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        if offset % ALIGN or not hasattr(os, "O_DIRECT"):
            return None
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
        except OSError:
            return None
        try:
            return cls(fd, offset, on_written)
        except (OSError, MemoryError, RuntimeError):  # RuntimeError: no thread to be had
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
            return None

    def _run(self) -> None:
        try:
            while (item := self._work.get()) is not None:
                slot, n, at = item
                try:
                    if self._error is None:
                        self._write_at(self.fd, memoryview(slot)[:n], at)
                        if self._on_written is not None:
                            self._on_written(n)
                except OSError as exc:
                    self._error = exc
                except BaseException as exc:  # never die silently: a hole would be published
                    self._error = OSError(errno.EIO, f"the direct writer failed: {exc!r}")
                finally:
                    self._free.put(slot)
        finally:
            os.close(self.fd)

    def _write_at(self, fd: int, view: memoryview, at: int) -> None:
        while view:
            try:
                n = os.pwrite(fd, view, at)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self._direct:
                    raise
                self._buffered(fd)  # the file system took the flag but not the write
                continue
            if n == 0:
                raise OSError(errno.EIO, "the file system took no bytes")
            view, at = view[n:], at + n
            if n % ALIGN and view:
                self._buffered(fd)  # a short, unaligned write: the rest cannot be direct

    def _buffered(self, fd: int) -> None:
        """Clear O_DIRECT (on the open file, so for both descriptors)."""
        self._direct = False
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)

    def space(self) -> memoryview:
        """Where the next bytes go: the free end of the current slot (never empty). Put
        bytes there, then say how many with `filled`. OSError from an earlier write."""
        if self._error is not None:
            raise self._error
        if self._slot is None:
            self._slot, self._fill = self._free.get(), 0
        return memoryview(self._slot)[self._fill :]

    def filled(self, n: int) -> None:
        """`n` bytes were put at the start of the last `space()`."""
        self._fill += n
        if self._fill == DIRECT_SLOT:
            self._submit(DIRECT_SLOT)

    def _submit(self, n: int) -> None:
        assert self._slot is not None
        self._work.put((self._slot, n, self.offset))
        self.offset += n
        self._slot, self._fill = None, 0

    def close(self) -> None:
        """Write everything taken so far (the unaligned tail buffered), stop the thread and
        put the descriptor back to buffered; OSError if any write failed. Call it once,
        whatever happened."""
        tail = b""
        if self._slot is not None:
            whole = self._fill - self._fill % ALIGN
            tail = bytes(self._slot[whole : self._fill])
            if whole:
                self._submit(whole)
            else:
                self._free.put(self._slot)
                self._slot = None
        self._work.put(None)
        self._thread.join()  # the thread closes its descriptor: from here on, the caller's
        try:
            if self._direct:
                self._buffered(self._caller)
            if tail and self._error is None:
                self._write_at(self._caller, memoryview(tail), self.offset)
                self.offset += len(tail)
                if self._on_written is not None:
                    self._on_written(len(tail))
        except OSError as exc:
            self._error = self._error or exc
        if self._error is not None:
            raise self._error


def _libc(name: str, *argtypes: type) -> Callable[..., int] | None:
    """A Linux libc call the os module lacks, returning an int and setting errno; None
    elsewhere or where this libc does not have it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    func.argtypes = list(argtypes)
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


def _check(result: int) -> None:
    """Raise the OSError a libc call reported by returning nonzero."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_SYNC_FILE_RANGE = _libc(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)


def start_writeback(fd: int) -> None:
    """Start writing every dirty page of `fd` to disk and return at once (0, 0: the whole
    file; pages already on their way are skipped). Where there is no such call, the final
    fsync does all the work."""
    if _SYNC_FILE_RANGE is not None:
        _check(_SYNC_FILE_RANGE(fd, 0, 0, SYNC_FILE_RANGE_WRITE))


def _load_syncfs() -> Callable[..., int] | None:
    """Linux's syncfs(2); None elsewhere, and before Linux 5.8, whose syncfs did not
    report write errors."""
    version = re.match(r"(\d+)\.(\d+)", platform.release())
    if version is None or (int(version.group(1)), int(version.group(2))) < (5, 8):
        return None
    return _libc("syncfs", ctypes.c_int)


_SYNCFS = _load_syncfs()


def syncfs_available() -> bool:
    return _SYNCFS is not None


def syncfs(fd: int) -> None:
    """Flush every dirty file of the filesystem holding `fd`, and wait: one journal commit
    for a whole batch instead of one per file.

    A write error is reported to every descriptor opened before it happened, so each caller
    should open its own: then a batch never misses an error, at worst it also fails on
    another's."""
    if _SYNCFS is None:
        raise OSError(errno.ENOSYS, "syncfs is not available here")
    _check(_SYNCFS(fd))
