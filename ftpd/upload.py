"""One upload in flight: a staging file, hashed as the bytes arrive, published atomically.

The staging file lives in the root's `.ftpd/staging`, so that publishing is a link or a
rename on one filesystem. Storage decides when to commit (alone or in a group); this
module does the steps.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import TYPE_CHECKING

from shared import digests
from shared.digests import MD5
from shared.errors import Exists, FtpError, NoSpace
from shared.names import OVERWRITE, RENAME, numbered
from shared.writeback import WriteBehind

RENAME_TRIES = 1000
"""`rename` tries the name, then .1 to .999, before giving up."""

if TYPE_CHECKING:
    from ftpd.storage import Entry, Storage


class Upload:
    """One upload in flight: a staging file hashed as the bytes arrive."""

    def __init__(
        self,
        storage: Storage,
        name: str,
        size: int,
        conflict: str,
        owner: str | None,
        digest: str = MD5,
    ) -> None:
        self.storage = storage
        self.name = name
        self.size = size
        self.conflict = conflict
        """What publishing does if the name is taken: fail, overwrite, or rename."""
        self.owner = owner
        self._reserved = True
        self.received = 0
        self.digest = digest
        self._hash = digests.new(digest)
        self.path = os.path.join(storage._staging, os.urandom(16).hex() + ".part")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._behind = WriteBehind(fd)

    def write(self, chunk: memoryview) -> None:
        if self.received + len(chunk) > self.size:
            raise ValueError("more bytes than announced")
        self._hash.update(chunk)
        try:
            while chunk:
                n = self._file.write(chunk)
                chunk = chunk[n:]
                self.received += n
                self._behind.wrote(n)
                self.storage._wrote(n)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace("the server ran out of disk space") from exc
            raise

    @property
    def checksum(self) -> str:
        """The digest of the bytes received so far."""
        return self._hash.hexdigest()

    def _unreserve(self) -> None:
        if self._reserved:
            self._reserved = False
            self.storage._release(self.size - self.received, self.size, self.owner)

    def commit(self) -> Entry:
        """fsync, publish atomically, fsync the directory. Only then is it stored."""
        [result] = self.storage.commit_many([self])
        if isinstance(result, FtpError):
            raise result
        return result

    def _sync(self, already: bool = False) -> os.stat_result:
        """Make the bytes durable (`already`: a syncfs did); the file is closed either way."""
        try:
            if already:
                self._behind.settle()
            else:
                self._behind.finish()
            return os.fstat(self._file.fileno())
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace("the server ran out of disk space") from exc
            raise
        finally:
            self._file.close()

    def _publish(self, dir_fd: int, leaf: str) -> None:
        """Put the synced file under its name in `dir_fd` in one atomic step (the folder is
        not synced). With `rename`, a taken name gets the first free numbered variant."""
        try:
            if self.conflict == OVERWRITE:
                os.replace(self.path, leaf, dst_dir_fd=dir_fd)
                return
            candidates = (
                (numbered(leaf, n) for n in range(RENAME_TRIES))
                if self.conflict == RENAME
                else iter([leaf])
            )
            for candidate in candidates:
                try:
                    # link() refuses an existing name atomically, unlike rename().
                    os.link(self.path, candidate, dst_dir_fd=dir_fd)
                except FileExistsError:
                    continue
                folder = self.name.rpartition("/")[0]
                self.name = f"{folder}/{candidate}" if folder else candidate
                return
            what = f"{self.name!r} and its first {RENAME_TRIES - 1} numbered variants"
            raise Exists(f"{what if self.conflict == RENAME else repr(self.name)} already exist")
        finally:
            _unlink(self.path)

    def abort(self) -> None:
        """Drop the staging file; the published version, if any, is untouched."""
        self._unreserve()
        self._behind.wait()
        self._file.close()
        _unlink(self.path)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
