"""Reading stored files: opened without following a link, with a checksum from the catalog.

A file that the catalog does not know (dropped in by hand, or hashed with another digest
before) is hashed on open, and the result remembered.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from shared import digests
from shared.digests import MD5
from shared.errors import InternalError, NotFound
from shared.listing import FILE

if TYPE_CHECKING:
    from ftpd.storage import Storage

HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """What a listing shows of one stored file or folder (`name` is its path)."""

    name: str
    size: int
    mtime: int
    md5: str
    kind: str = FILE


def hash_file(f: BinaryIO, algo: str = MD5) -> str:
    """Checksum of an open file from its current position (for files not hashed on receipt)."""
    digest = digests.new(algo)
    size = os.fstat(f.fileno()).st_size
    buf = bytearray(max(1, min(HASH_CHUNK, size + 1)))
    view = memoryview(buf)
    while n := f.readinto(buf):  # type: ignore[attr-defined]
        digest.update(view[:n])
    return digest.hexdigest()


class Opened:
    """Context manager yielding (file, Entry) for a published file."""

    def __init__(
        self, storage: Storage, name: str, remember: bool = True, digest: str = MD5
    ) -> None:
        """With remember=False the cache is neither read nor written (the caller batches)."""
        self.storage = storage
        self.name = name
        self.remember = remember
        self.digest = digest
        self.checksum = ""
        self.file: BinaryIO | None = None
        self.stat: os.stat_result

    def __enter__(self) -> tuple[BinaryIO, Entry]:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            with self.storage.tree.parent(self.name) as (dir_fd, leaf):
                fd = os.open(leaf, flags, dir_fd=dir_fd)
        except FileNotFoundError as exc:
            raise NotFound(f"no file named {self.name!r}") from exc
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise NotFound(f"no file named {self.name!r}") from exc
            raise InternalError(f"cannot open {self.name!r}: {exc.strerror}") from exc
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotFound(f"no file named {self.name!r}")
        self.file = f = os.fdopen(fd, "rb", buffering=0)
        self.stat = st
        try:
            cache = self.storage.cache
            value = cache.lookup(self.name, st, self.digest) if self.remember else None
            if value is None:
                value = hash_file(f, self.digest)
                f.seek(0)
                if self.remember:
                    cache.store(self.name, st, value, self.digest)
            md5 = value if self.digest == MD5 else (cache.lookup(self.name, st) or "")
        except OSError as exc:
            f.close()  # __exit__ will not run
            raise InternalError(f"cannot read {self.name!r}: {exc.strerror}") from exc
        except BaseException:
            f.close()
            raise
        self.checksum = value
        return f, Entry(self.name, st.st_size, st.st_mtime_ns // 10**9, md5)

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()
