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
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import sys
from collections.abc import Callable

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


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2), which the os module lacks; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


_SYNC_FILE_RANGE = _load_sync_file_range()


def start_writeback(fd: int) -> None:
    """Start writing every dirty page of `fd` to disk and return at once (0, 0: the whole
    file; pages already on their way are skipped). Where there is no such call, the final
    fsync does all the work."""
    if _SYNC_FILE_RANGE is None:
        return
    if _SYNC_FILE_RANGE(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2), which the os module lacks; None elsewhere, and before Linux 5.8,
    whose syncfs did not report write errors."""
    if not sys.platform.startswith("linux"):
        return None
    version = re.match(r"(\d+)\.(\d+)", platform.release())
    if version is None or (int(version.group(1)), int(version.group(2))) < (5, 8):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


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
    if _SYNCFS(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
