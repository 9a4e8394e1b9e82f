"""Write-behind: flush a large file to disk while it is still being written.

An fsync at the end of a 1 GiB write waits for the whole gigabyte to reach the
disk (about 0.4 s here). Starting an fdatasync in the background every 64 MiB
lets the disk work while bytes keep arriving, so the final fsync, which still
decides when the file is durable, has only the tail left to flush.
"""

from __future__ import annotations

import os
import threading

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

    def finish(self) -> None:
        """The durable end: wait for the background flush, then fsync. Raises its OSError."""
        self.wait()
        if self._error is not None:
            raise self._error
        os.fsync(self.fd)
