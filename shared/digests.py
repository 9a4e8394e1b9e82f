"""The digests a transfer can be verified with: md5 always, faster ones where installed.

md5 runs at about 700 MB/s on one core, which caps a verified transfer on a
small machine; xxh3-128 (the `xxhash` package) runs at several GB/s. Like md5,
neither is a defence against tampering: they catch accidents, and TLS covers the
rest. The server offers what it has in `hello.digests`; a request names the one
it uses in `digest`, and its value travels in `sum` (or `md5` for md5).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Protocol

MD5 = "md5"


def sum_field(digest: str) -> str:
    """The field a checksum travels in: `md5` for md5, `sum` for every other digest."""
    return "md5" if digest == MD5 else "sum"


def sum_fields(digest: str, value: str) -> dict[str, str]:
    """The fields that carry a checksum in a request or reply: `md5`, or `digest` and `sum`."""
    return {"md5": value} if digest == MD5 else {"digest": digest, "sum": value}


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def _factories() -> dict[str, Callable[[], Hasher]]:
    found: dict[str, Callable[[], Hasher]] = {MD5: hashlib.md5}
    try:
        import xxhash
    except ImportError:  # pragma: no cover - a dependency, but the protocol works without it
        pass
    else:
        found["xxh3-128"] = xxhash.xxh3_128
    try:
        import blake3  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:  # pragma: no cover - optional
        found["blake3"] = blake3.blake3
    return found


_FACTORIES = _factories()


def available() -> list[str]:
    """The digests this side can compute, md5 first."""
    return list(_FACTORIES)


def new(name: str) -> Hasher:
    """A fresh hasher; ValueError for a digest this side does not have."""
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ValueError(
            f"unknown digest {name!r}; this side has {', '.join(_FACTORIES)}"
        ) from None


class BackgroundHasher:
    """Hashes in a second thread, so that receiving, writing and hashing overlap.

    hashlib releases the GIL while it hashes a large buffer, so on two cores the
    md5 of a download runs beside the socket reads and file writes instead of
    after them. Chunks are copied into a few reused 1 MiB slots (a memcpy costs
    a few percent of an md5); small chunks are packed together first. Call
    `hexdigest()` once at the end, or `close()` to give up; either stops the thread.
    """

    def __init__(
        self, name: str, slots: int = 4, slot_size: int = 1 << 20, base: Hasher | None = None
    ) -> None:
        """`base`, if given, already holds the hash of what came before (a resumed transfer)."""
        self._hash = base if base is not None else new(name)
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(slots):
            self._free.put(bytearray(slot_size))
        self._work: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self._slot: bytearray | None = None
        self._fill = 0
        self._thread = threading.Thread(target=self._run, name="hasher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            slot, n = item
            self._hash.update(memoryview(slot)[:n])
            self._free.put(slot)

    def update(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        while view:
            if self._slot is None:
                self._slot, self._fill = self._free.get(), 0
            n = min(len(view), len(self._slot) - self._fill)
            self._slot[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == len(self._slot):
                self._work.put((self._slot, self._fill))
                self._slot = None

    def hexdigest(self) -> str:
        if self._slot is not None:
            self._work.put((self._slot, self._fill))
            self._slot = None
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._work.put(None)
            self._thread.join()


SLOW = frozenset({MD5})
"""Digests slower than the disk and the loopback: with one of these, hashing is what a
transfer waits for, and every other cycle taken from the hashing thread shows."""


def hasher_for_stream(name: str, base: Hasher | None = None) -> Hasher:
    """md5 is slow enough to deserve its own thread; faster digests are not worth the copy.
    `base` continues a hash already fed with a resumed transfer's first bytes."""
    if name in SLOW:
        return BackgroundHasher(name, base=base)
    return base if base is not None else new(name)


def hash_prefix(fd: int, n: int, name: str) -> tuple[Hasher, int]:
    """A hasher fed with the first `n` bytes of `fd` (read with pread: the offset stays),
    and how many bytes there were (fewer if the file is shorter)."""
    digest = new(name)
    buf = bytearray(min(1 << 20, max(n, 1)))
    view = memoryview(buf)
    done = 0
    while done < n:
        got = os.preadv(fd, [view[: min(len(buf), n - done)]], done)
        if got == 0:
            break
        digest.update(view[:got])
        done += got
    return digest, done


class FileHasher:
    """Hashes the first `size` bytes of an open file in a second thread.

    An upload sends the file with sendfile (the kernel copies it, costing this
    process almost nothing) while this thread reads it again from the page
    cache and hashes it: the two overlap on two cores. If the file changes in
    between, the two disagree and the server refuses the upload; nothing wrong
    is ever stored.
    """

    def __init__(
        self, fd: int, size: int, name: str, start: int = 0, base: Hasher | None = None
    ) -> None:
        """Hash bytes `start` to `size`, continuing `base` (the hash of the bytes before)."""
        self._fd = os.dup(fd)
        self._size = size
        self._hash = base if base is not None else new(name)
        self._stop = threading.Event()
        self._error: OSError | None = None
        self.hashed = start
        self._thread = threading.Thread(target=self._run, name="file-hasher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        try:
            while self.hashed < self._size and not self._stop.is_set():
                want = min(len(buf), self._size - self.hashed)
                n = os.preadv(self._fd, [view[:want]], self.hashed)
                if n == 0:
                    break
                self._hash.update(view[:n])
                self.hashed += n
        except OSError as exc:
            self._error = exc
        finally:
            os.close(self._fd)

    def result(self) -> str:
        """The digest; OSError if the file could not be read, or ended early."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self.hashed != self._size:
            raise OSError(f"the file shrank: {self.hashed} of {self._size} bytes")
        return self._hash.hexdigest()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
