"""Bytes promised to uploads in flight, so that concurrent uploads cannot together overrun
the free space or a quota that each one alone fits in.

An upload reserves its whole size before its first byte is read. As bytes reach the
disk they count in the free space the kernel reports, so they stop counting here
(`wrote`); what is left is released when the upload ends, stored or not (`release`).
Quota usage keeps the whole size until the owner row of the stored file is written.
"""

from __future__ import annotations

import threading
from collections import Counter


class Reservations:
    """The bytes reserved in total and per account. Safe to share between threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        """Held by the caller across its check and `reserve`, so that the two are one step."""
        self.unwritten = 0
        self._by: Counter[str] = Counter()

    def of(self, owner: str) -> int:
        """Bytes `owner`'s uploads in flight will take."""
        return self._by[owner]

    def reserve(self, size: int, owner: str | None) -> None:
        """Promise `size` bytes to an upload; call with `lock` held."""
        self.unwritten += size
        if owner is not None:
            self._by[owner] += size

    def wrote(self, n: int) -> None:
        """Bytes now on the disk count in its free space: stop reserving them twice."""
        with self.lock:
            self.unwritten -= n

    def release(self, unwritten: int, size: int, owner: str | None) -> None:
        """An upload ended: drop what it had not written, and its share of the quota."""
        with self.lock:
            self.unwritten -= unwritten
            if owner is not None:
                self._by[owner] -= size
                if self._by[owner] <= 0:
                    del self._by[owner]
