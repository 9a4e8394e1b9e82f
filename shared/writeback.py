"""Write-behind: flush a large file to disk while it is still being written.

An fsync at the end of a 1 GiB write waits for the whole gigabyte to reach the
disk (about 0.4 s here). Starting an fdatasync in the background every 64 MiB
lets the disk work while bytes keep arriving, so the final fsync, which still
decides when the file is durable, has only the tail left to flush.

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
import threading
from collections.abc import Callable

EVERY = 64 << 20


class WriteBehind:
    """Tracks bytes written to `fd`; one background fdatasync at a time."""

    def __init__(self, fd: int, every: int = EVERY) -> None:
        self.fd = fd
        self.every = every
        self._since = 0
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def wrote(self, n: int) -> None:
        self._since += n
        if self._since < self.every or (self._thread is not None and self._thread.is_alive()):
            return
        self._since = 0
        self._thread = threading.Thread(target=self._flush, name="write-behind", daemon=True)
        self._thread.start()

    def _flush(self) -> None:
        try:
            os.fdatasync(self.fd)
        except OSError as exc:  # reported by finish(), which the caller cannot skip
            self._error = exc

    def wait(self) -> None:
        """Let a background flush end; call before closing the file, whatever happened."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def settle(self) -> None:
        """Wait for the background flush; raise its OSError, if it had one."""
        self.wait()
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """The durable end: settle, then fsync."""
        self.settle()
        os.fsync(self.fd)


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
