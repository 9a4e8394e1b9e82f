"""One upload in flight: a staging file, hashed as the bytes arrive, published atomically.

The staging file lives in the root's `.ftpd/staging`, so that publishing is a link or a
rename on one filesystem. Storage decides when to commit (alone or in a group); this
module does the steps.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from shared import digests
from shared.digests import MD5
from shared.errors import Exists, FtpError, NoSpace
from shared.names import MAX_PATH_CHARS, OVERWRITE, RENAME, numbered
from shared.writeback import WriteBehind

RENAME_TRIES = 1000
"""`rename` tries the name, then .1 to .999, before giving up."""

if TYPE_CHECKING:
    from ftpd.partials import Partial
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
        resumable: bool = False,
        partial: Partial | None = None,
        md5: str | None = None,
    ) -> None:
        """With `partial`, continue its bytes: `offset` is how many there are, and `prefix`
        their checksum, which the client must confirm before sending the rest."""
        self.storage = storage
        self.name = name
        self.size = size
        self.resumable = resumable and storage.partials.ttl > 0
        """Kept for a resume if the connection drops (never with a TTL of 0)."""
        self.conflict = conflict
        """What publishing does if the name is taken: fail, overwrite, or rename."""
        self.owner = owner
        self._reserved = True
        self.received = 0
        self.digest = digest
        self._hash = digests.new(digest)
        self._sum: str | None = None
        self.offset = 0
        self.prefix = ""
        partials = storage.partials
        if partial is not None:
            self.id = partial.id
            self.path = partials.part(self.id)
            fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, "a kept partial upload is not a regular file")
                have = st.st_size
                if have > size:
                    os.ftruncate(fd, 0)
                    have = 0
                self._hash, self.offset = digests.hash_prefix(fd, have, digest)
                os.ftruncate(fd, self.offset)
                os.lseek(fd, self.offset, os.SEEK_SET)
            except BaseException:
                os.close(fd)
                raise
            self.prefix = self._hash.hexdigest()
            self.received = self.offset
            storage.space.wrote(self.offset)
        else:
            self.id = partials.new_id()
            self.path = partials.part(self.id)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            if resumable:
                try:
                    partials.create(self.id, owner, name, size, digest, md5)
                except BaseException:
                    os.close(fd)
                    _unlink(self.path)
                    raise
        self.fd = fd
        """The staging file, written with os.write: a file object would cost an fstat and
        an object per upload, for nothing a small upload uses."""
        self._behind = WriteBehind(fd)

    def write(self, chunk: memoryview) -> None:
        if self.received + len(chunk) > self.size:
            raise ValueError("more bytes than announced")
        self._hash.update(chunk)
        self._sum = None
        try:
            while chunk:
                n = os.write(self.fd, chunk)
                chunk = chunk[n:]
                self.received += n
                self._behind.wrote(n)
                self.storage.space.wrote(n)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace("the server ran out of disk space") from exc
            raise

    @property
    def checksum(self) -> str:
        """The digest of the bytes received so far (kept until the next write: a pipelined
        upload asks for it five times)."""
        if self._sum is None:
            self._sum = self._hash.hexdigest()
        return self._sum

    def _unreserve(self) -> None:
        if self._reserved:
            self._reserved = False
            self.storage.space.release(self.size - self.received, self.size, self.owner)

    def restart(self) -> None:
        """The client's copy differs from the bytes kept: start again from the first byte."""
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.storage.space.wrote(-self.received)
        self._hash = digests.new(self.digest)
        self._sum = None
        self.received = self.offset = 0
        self.prefix = ""

    def suspend(self) -> None:
        """The connection dropped: keep a resumable upload's bytes for a later put; any other
        upload is dropped."""
        if not self.resumable:
            self.abort()
            return
        self._unreserve()
        self._close()
        self.storage.partials.release(self.id)

    def commit(self) -> Entry:
        """fsync, publish atomically, fsync the directory. Only then is it stored."""
        [result] = self.storage.commit_many([self])
        if isinstance(result, FtpError):
            raise result
        return result

    def _sync(self, already: bool = False) -> os.stat_result:
        """Make the bytes durable (`already`: a syncfs did); the file is closed either way."""
        try:
            if not already:
                self._behind.finish()
            return os.fstat(self.fd)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace("the server ran out of disk space") from exc
            raise
        finally:
            self._close()

    def _close(self) -> None:
        """Close the staging file once, whichever way the upload ends."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def _publish(self, dir_fd: int, leaf: str) -> None:
        """Put the synced file under its name in `dir_fd` in one atomic step (the folder is
        not synced). With `rename`, a taken name gets the first free numbered variant.

        If another session stored these very bytes under the name meanwhile (a retry racing
        the upload whose reply it never saw), the name already holds them: done."""
        try:
            if self.conflict == OVERWRITE:
                os.replace(self.path, leaf, dst_dir_fd=dir_fd)
                return
            folder = self.name.rpartition("/")[0]
            room = MAX_PATH_CHARS - len(folder) - 1 if folder else MAX_PATH_CHARS
            candidates = (
                (numbered(leaf, n, room) for n in range(RENAME_TRIES))
                if self.conflict == RENAME
                else iter([leaf])
            )
            for n, candidate in enumerate(candidates):
                if len(candidate) > room:
                    continue  # no variant this long fits a reply's `name`
                try:
                    # link() refuses an existing name atomically, unlike rename().
                    os.link(self.path, candidate, dst_dir_fd=dir_fd)
                except FileExistsError:
                    if n == 0 and self._stored_already():
                        return
                    continue
                self.name = f"{folder}/{candidate}" if folder else candidate
                return
            if self.conflict == RENAME:
                raise Exists(
                    f"{self.name!r} and its first {RENAME_TRIES - 1} numbered variants"
                    " already exist"
                )
            raise Exists(f"{self.name!r} already exists with other content")
        finally:
            _unlink(self.path)
            if self.resumable:
                self.storage.partials.drop(self.id)

    def _stored_already(self) -> bool:
        try:
            return self.storage.existing_sum(self.name, self.digest) == (self.size, self.checksum)
        except FtpError:
            return False

    def abort(self) -> None:
        """Drop the staging file; the published version, if any, is untouched."""
        self._unreserve()
        self._close()
        _unlink(self.path)
        if self.resumable:
            self.storage.partials.drop(self.id)


def _unlink(path: str) -> None:
    """Remove a staging name that may be gone already."""
    try:  # noqa: SIM105 - contextlib.suppress builds an object per call, and this runs per upload
        os.unlink(path)
    except FileNotFoundError:
        pass
