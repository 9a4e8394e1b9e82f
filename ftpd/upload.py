"""One upload in flight: a staging file, hashed as the bytes arrive, published atomically.

The staging file lives in the root's `.ftpd/staging`, so that publishing is a link or a
rename on one filesystem. Storage decides when to commit (alone or in a group); this
module does the steps.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING, NoReturn

from shared import digests
from shared.digests import MD5
from shared.errors import Exists, FtpError, NoSpace
from shared.names import MAX_PATH_CHARS, OVERWRITE, RENAME, numbered
from shared.writeback import DIRECT_FROM, DirectWriter, WriteBehind

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
        self.on_disk = 0
        """Bytes in the file, which the free space the kernel reports already counts (see
        Reservations.wrote); behind `received` while a DirectWriter holds some."""
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
            self.received = self.on_disk = self.offset
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
        self._writer: DirectWriter | None = None
        self._room: memoryview | None = None

    def begin_body(self) -> bool:
        """Just before the body arrives: True if it goes to a DirectWriter, which is then
        fed with `space` and `filled` (the bytes land in its buffers).

        Only a large body checked with a slow digest does: hashing then holds the
        session's core, and the copy into fresh page-cache pages was most of the rest
        (measured: 1 GiB md5 uploads 269-296 -> 304-323 MB/s, alternating). With a fast
        digest the disk is nearer the limit, and writeback through the page cache kept
        it busier than one direct writer did (xxh3-128: 925-948 MB/s buffered, 809-849
        direct); a thread writing through the page cache was slower still (423-848).
        """
        if self.digest not in digests.SLOW or self.size - self.received < DIRECT_FROM:
            return False
        if not self.storage.direct_writers.acquire(blocking=False):
            return False  # the server's writers are all busy: the page cache it is
        self._writer = DirectWriter.open(self.fd, self._wrote)
        if self._writer is None:
            self.storage.direct_writers.release()
        return self._writer is not None

    def _wrote(self, n: int) -> None:
        """`n` bytes reached the file (told by the DirectWriter's thread)."""
        self.on_disk += n
        self.storage.space.wrote(n)

    def space(self) -> memoryview:
        """Where the next body bytes go (after `begin_body` said True)."""
        assert self._writer is not None
        try:
            self._room = self._writer.space()
        except OSError as exc:
            _disk_error(exc)
        return self._room

    def filled(self, n: int) -> None:
        """`n` body bytes were put at the start of the last `space()`."""
        assert self._writer is not None and self._room is not None
        if self.received + n > self.size:
            raise ValueError("more bytes than announced")
        self._hash.update(self._room[:n])
        self._sum = None
        self._room = None
        self._writer.filled(n)
        self.received += n

    def write(self, chunk: memoryview) -> None:
        if self.received + len(chunk) > self.size:
            raise ValueError("more bytes than announced")
        self._hash.update(chunk)
        self._sum = None
        try:
            if self._writer is not None:
                self._writer.write(chunk)
                self.received += len(chunk)
                return
            while chunk:
                n = os.write(self.fd, chunk)
                chunk = chunk[n:]
                self.received += n
                self._behind.wrote(n)
                self._wrote(n)
        except OSError as exc:
            _disk_error(exc)

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
            self.storage.space.release(self.size - self.on_disk, self.size, self.owner)

    def restart(self) -> None:
        """The client's copy differs from the bytes kept: start again from the first byte."""
        self._end_writer()
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.storage.space.wrote(-self.on_disk)
        self._hash = digests.new(self.digest)
        self._sum = None
        self.received = self.on_disk = self.offset = 0
        self.prefix = ""

    def suspend(self) -> None:
        """The connection dropped: keep a resumable upload's bytes for a later put; any other
        upload is dropped."""
        if not self.resumable:
            self.abort()
            return
        self._close()  # first: the writer may still put bytes in the file
        self._unreserve()
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
            if self._writer is not None:
                self._end_writer(keep_error=True)
                already = False  # a syncfs before close() did not see the last slots
            if not already:
                self._behind.finish()
            return os.fstat(self.fd)
        except OSError as exc:
            _disk_error(exc)
        finally:
            self._close()

    def _end_writer(self, keep_error: bool = False) -> None:
        """Stop the DirectWriter, which writes what it was given first (a kept upload stays
        a prefix), and give its place back. Its error is raised with `keep_error`, for an
        upload about to be published; otherwise it is dropped or kept, and it no longer
        matters."""
        if self._writer is None:
            return
        self._writer, writer = None, self._writer
        try:
            writer.close()
        except OSError:
            if keep_error:
                raise
        finally:
            self.storage.direct_writers.release()

    def _close(self) -> None:
        """Close the staging file once, whichever way the upload ends."""
        self._end_writer()
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
        self._close()  # first: the writer may still put bytes in the file
        self._unreserve()
        _unlink(self.path)
        if self.resumable:
            self.storage.partials.drop(self.id)


def _disk_error(exc: OSError) -> NoReturn:
    """Raise a full disk or quota as NoSpace, the client's to hear of; anything else stays
    an OSError (reported as an internal error)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise NoSpace("the server ran out of disk space") from exc
    raise exc


def _unlink(path: str) -> None:
    """Remove a staging name that may be gone already."""
    try:  # noqa: SIM105 - contextlib.suppress builds an object per call, and this runs per upload
        os.unlink(path)
    except FileNotFoundError:
        pass
