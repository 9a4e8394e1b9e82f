"""Names to paths, staging, atomic publish, listing and the md5 cache.

Layout of the root:
    NAME, FOLDER/NAME, ...    published files and the folders holding them
    .ftpd/staging/*.part      uploads in flight; never listed. At start, all are purged
                              but resumable ones (with a .json sidecar) within their TTL
    .ftpd/md5.sqlite3         md5 of stored files, keyed by (size, mtime_ns, inode),
                              and who uploaded each file (for quotas)

Staging lives inside the root so that publishing is a rename on one filesystem. Paths
are walked one folder at a time without following links (ftpd.tree), so nothing
outside the root is ever reached.
The md5 cache is only a cache: a row that does not match the file's current
stat is ignored and the file is hashed again. Quota usage is first estimated from the
sizes recorded at upload (one query, however many files the account has); only when
the estimate comes near the quota are the account's files themselves measured, so a
file removed or grown by hand counts as it is then.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import os
import shutil
import stat
import threading
from pathlib import Path

from ftpd.catalog import Md5Cache
from ftpd.partials import DEFAULT_TTL, Partials
from ftpd.reading import Entry, Opened
from ftpd.space import Reservations
from ftpd.tree import Tree
from ftpd.upload import Upload
from shared.digests import MD5
from shared.errors import (
    BadName,
    Exists,
    FtpError,
    InternalError,
    NoSpace,
    NotEmpty,
    NotFound,
    QuotaExceeded,
    TooLarge,
)
from shared.listing import FOLDER
from shared.names import (
    FAIL,
    OVERWRITE,
    RESERVED_PREFIX,
    check_folder,
    check_name,
    check_path,
    join_path,
    split_path,
)
from shared.writeback import syncfs, syncfs_available

__all__ = ["Entry", "RootInUse", "Storage", "Upload"]


class _Unknown(enum.Enum):
    LOOK = 0


LOOK = _Unknown.LOOK
"""For `found`: the caller has not looked at the name; the callee lstats it itself."""
Found = os.stat_result | None | _Unknown

GROUP_SYNC = 4
"""From this many files on, a group commit flushes the disk once (syncfs), not file by file."""
DIRECT_WRITERS = 8
"""At most this many uploads at once are written with O_DIRECT; the others go through the
page cache. Eight keep the disk busy (one is enough for a 1 GiB upload) for 8 threads and
32 MiB of buffers, whatever --max-connections allows."""


class RootInUse(FtpError):
    """Another daemon holds this root: two would purge each other's uploads."""

    code = "root-in-use"


class Storage:
    """A directory of published files. Safe to share between handler threads."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_file_size: int | None = None,
        reserve: int = 0,
        resume_ttl: float = DEFAULT_TTL,
    ) -> None:
        """`resume_ttl`: seconds an interrupted resumable upload is kept (0: never kept)."""
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)  # str joins: pathlib costs microseconds per file
        self.max_file_size = max_file_size
        self.reserve = reserve
        meta = self.root / RESERVED_PREFIX
        self.staging = meta / "staging"
        self.staging.mkdir(parents=True, exist_ok=True)
        self._staging = str(self.staging)
        # Purging staging is only safe if no other daemon is uploading into this root.
        self._lock_fd = os.open(meta / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise RootInUse(f"another ftpd is already serving {self.root}") from exc
        self.partials = Partials(self._staging, resume_ttl)
        self.purged = self._purge_staging()
        self.cache = Md5Cache(meta / "md5.sqlite3")
        self.tree = Tree(self._root)
        self.space = Reservations()
        self.direct_writers = threading.BoundedSemaphore(DIRECT_WRITERS)
        """Places for uploads written with O_DIRECT (Upload.begin_body): each holds a thread
        and 4 MiB of buffers, so their number is bounded whatever the connection limit."""

    def _purge_staging(self) -> int:
        """Remove uploads a crash left behind (they were never published), except those
        kept for resuming."""
        count = 0
        for entry in os.scandir(self.staging):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                count += 1
        return count + self.partials.startup()

    def close(self) -> None:
        """Close the cache and release the root; safe to call twice."""
        if self._lock_fd < 0:
            return
        self.cache.close()
        self.tree.close()
        os.close(self._lock_fd)  # releases the flock
        self._lock_fd = -1

    def _lstat(self, path: str) -> os.stat_result | None:
        """lstat of whatever is at `path`, or None; NotFound if a folder above is missing."""
        folder, _, leaf = path.rpartition("/")
        fd = self.tree.open(folder)  # a plain call, not `parent`: this runs for every upload
        try:
            return os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            self.tree.release(fd)

    def _stat(self, path: str) -> os.stat_result | None:
        """lstat of a published regular file, or None; symlinks and others do not count."""
        try:
            st = self._lstat(path)
        except NotFound:
            return None
        return st if st is not None and stat.S_ISREG(st.st_mode) else None

    # --- reading ---------------------------------------------------------------

    def list(self, folder: str = "") -> list[Entry]:
        """The files and folders in `folder` (the root for ""), sorted by name, files with
        their md5. Links, devices and anything with an unsafe name are not listed."""
        folder = check_folder(folder)
        entries = []
        files: list[tuple[str, str, os.stat_result]] = []
        with self.tree.scan(folder.split("/") if folder else []) as it:
            for dirent in it:
                name = dirent.name
                try:
                    if check_name(name) != name:
                        continue
                    if dirent.is_dir(follow_symlinks=False):
                        st = dirent.stat(follow_symlinks=False)
                        entries.append(Entry(name, 0, st.st_mtime_ns // 10**9, "", FOLDER))
                        continue
                    if not dirent.is_file(follow_symlinks=False):
                        continue
                    files.append(
                        (name, join_path(folder, name), dirent.stat(follow_symlinks=False))
                    )
                except (BadName, OSError):
                    continue
        cached = self.cache.rows_for([path for _, path, _ in files])
        hashed: list[tuple[str, os.stat_result, str]] = []
        for name, path, st in files:
            row = cached.get(path)
            if row and row[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                md5 = row[3]
            else:
                opened = Opened(self, path, remember=False)
                try:
                    with opened as (_, entry):
                        md5 = entry.md5
                except (FtpError, OSError):
                    continue  # vanished or unreadable: not listed
                hashed.append((path, opened.stat, md5))
            entries.append(Entry(name, st.st_size, st.st_mtime_ns // 10**9, md5))
        if hashed:
            self.cache.store_many(hashed)
        entries.sort(key=lambda e: e.name)
        return entries

    def open(self, name: str, digest: str = MD5) -> Opened:
        """Open a published file for reading without following a symlink.

        The opener's `checksum` is the file's `digest` (cached, or computed now)."""
        return Opened(self, check_path(name), digest=digest)

    # --- writing ---------------------------------------------------------------

    def free_space(self) -> int:
        """Bytes an upload may still use: free space less the reserve and the bytes that
        uploads in flight have been promised but not yet written."""
        vfs = os.statvfs(self._root)
        return max(0, vfs.f_bavail * vfs.f_frsize - self.reserve - self.space.unwritten)

    def usage(self, owner: str) -> int:
        """Bytes of stored files uploaded by `owner`, measured on disk, plus its uploads in
        flight. One lstat per file: `check_upload` asks only near the quota. Rows written
        before sizes were kept get the size measured; no other row is changed, as an upload
        of the same name may be committing meanwhile."""
        total = self.space.of(owner)
        sizes = []
        for name in self.cache.owned_by(owner):
            st = self._stat(name)
            size = st.st_size if st is not None else 0  # gone, or not a file: counts 0
            total += size
            sizes.append((name, size))
        self.cache.fill_sizes(owner, sizes)
        return total

    def existing(self, name: str) -> Entry | None:
        """The published entry under `name`, or None."""
        try:
            with self.open(name) as (_, entry):
                return entry
        except NotFound:
            return None

    def target(self, name: str) -> os.stat_result | None:
        """lstat of whatever is at `name` (None if nothing); NotFound if a folder above is
        missing. An upload looks once and hands the answer to `existing_sum` and
        `begin_upload`, which would otherwise each walk the path and lstat it again."""
        return self._lstat(check_path(name))

    def existing_sum(self, name: str, digest: str, found: Found = LOOK) -> tuple[int, str] | None:
        """(size, checksum in `digest`) of the file published under `name`, or None."""
        try:
            if found is LOOK:
                found = self._lstat(check_path(name))
            if found is None:
                return None  # the common case for an upload, answered without raising NotFound
        except NotFound:
            return None  # a folder above is missing: check_upload says which
        opened = self.open(name, digest)
        try:
            with opened as (_, entry):
                return entry.size, opened.checksum
        except NotFound:
            return None

    def check_upload(
        self,
        name: str,
        size: int,
        owner: str | None = None,
        quota: int | None = None,
        on_disk: int = 0,
        replacing: bool = False,
        found: Found = LOOK,
    ) -> str:
        """Refuse an upload before any byte is read; return the checked name.
        `on_disk`: bytes of it already in staging (a resume), which need no more space."""
        name = check_path(name)
        st = self._lstat(name) if found is LOOK else found
        if st is not None and not stat.S_ISREG(st.st_mode):
            what = "a folder, not a file" if stat.S_ISDIR(st.st_mode) else "something not a file"
            raise Exists(f"{name!r} is taken by {what}")
        if self.max_file_size is not None and size > self.max_file_size:
            raise TooLarge(f"{size} bytes is over the limit of {self.max_file_size} bytes")
        if quota is not None and owner is not None:
            # Replacing one's own file frees its bytes: in the recorded total, the size
            # recorded for it; on disk, its size now.
            row = self.cache.owner_row(name) if replacing and st is not None else None
            replaced = row if row is not None and row[0] == owner else None
            recorded = self.cache.owned_bytes(owner)
            used = None
            if recorded is not None:
                freed = (replaced[1] or 0) if replaced is not None else 0
                used = self.space.of(owner) + recorded - freed
            if used is None or used + size > quota:  # near the quota: the files decide
                freed = st.st_size if replaced is not None and st is not None else 0
                used = self.usage(owner) - freed
            if used + size > quota:
                raise QuotaExceeded(
                    f"{size} bytes would take {owner!r} over its quota of {quota} bytes"
                    f" ({max(0, used)} used)"
                )
        free = self.free_space()
        if size - on_disk > free:
            raise NoSpace(f"{size - on_disk} bytes do not fit: {free} bytes free")
        return name

    def begin_upload(
        self,
        name: str,
        size: int,
        conflict: str = FAIL,
        owner: str | None = None,
        quota: int | None = None,
        digest: str = MD5,
        resumable: bool = False,
        md5: str | None = None,
        found: Found = LOOK,
    ) -> Upload:
        """Check the upload and reserve its bytes in one step; the Upload releases them.

        A `resumable` upload continues the partial left by an interrupted one of the same
        name, size, owner and digest, if any (its `offset` says how far it got), and is
        itself kept for resuming if its connection drops.
        """
        name = check_path(name)
        partial = self.partials.claim(owner, name, size, digest, md5) if resumable else None
        try:
            on_disk = os.lstat(self.partials.part(partial.id)).st_size if partial else 0
            with self.space.lock:
                name = self.check_upload(
                    name,
                    size,
                    owner,
                    quota,
                    on_disk=min(on_disk, size),
                    replacing=conflict == OVERWRITE,
                    found=found,
                )
                self.space.reserve(size, owner)
        except BaseException:
            if partial is not None:
                self.partials.release(partial.id)
            raise
        try:
            try:
                return Upload(self, name, size, conflict, owner, digest, resumable, partial, md5)
            except OSError:
                if partial is None:
                    raise
                # Not a regular file any more (swapped for a link or FIFO): never ours.
                self.partials.discard(partial.id)
                partial = None
                return Upload(self, name, size, conflict, owner, digest, resumable, None, md5)
        except BaseException:
            self.space.release(size, size, owner)
            if partial is not None:
                self.partials.release(partial.id)
            raise

    def commit_many(self, uploads: list[Upload]) -> list[Entry | FtpError]:
        """Group commit: make every file durable, publish each, then one directory fsync.

        A group of GROUP_SYNC or more files is flushed with one syncfs (one journal commit
        for all) instead of one fsync each; a write error anywhere fails the whole group.
        Nothing may be acknowledged before this returns; after it, every Entry returned is
        on stable storage under its name. A file that fails otherwise gets its error in its
        slot (and is not published); the others are unaffected.
        """
        results: list[Entry | FtpError] = []
        rows: list[tuple[str, os.stat_result, str, str, str | None]] = []
        grouped = len(uploads) >= GROUP_SYNC and syncfs_available()
        if grouped:
            try:
                fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)  # its own error cursor
                try:
                    syncfs(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                for upload in uploads:
                    upload.abort()
                return [_disk_error(exc) for _ in uploads]
        folders: dict[str, int] = {}  # each parent folder, held open until it is fsynced
        try:
            for upload in uploads:
                try:
                    st = upload._sync(already=grouped)
                    folder, leaf = split_path(upload.name)
                    if folder not in folders:
                        folders[folder] = self.tree.open(folder)
                    upload._publish(folders[folder], leaf)
                except FtpError as exc:
                    upload.abort()
                    results.append(exc)
                    continue
                except OSError as exc:
                    upload.abort()
                    results.append(InternalError(f"cannot store the upload: {exc.strerror}"))
                    continue
                rows.append((upload.name, st, upload.digest, upload.checksum, upload.owner))
                md5 = upload.checksum if upload.digest == MD5 else ""
                results.append(Entry(upload.name, st.st_size, st.st_mtime_ns // 10**9, md5))
            for fd in folders.values():
                os.fsync(fd)
            if rows:
                self.cache.record(rows)
        finally:
            for fd in folders.values():
                self.tree.release(fd)
            # Only now: until the owner rows are written, the reservations stand for them.
            for upload in uploads:
                upload._unreserve()
        return results

    def sync_folder_of(self, path: str) -> None:
        """fsync the folder holding `path`: every name published there so far is durable."""
        with self.tree.parent(path) as (fd, _):
            os.fsync(fd)

    def remove(self, name: str) -> str:
        """Delete a published file, or an empty folder; return its checked path."""
        name = check_path(name)
        with self.tree.parent(name) as (fd, leaf):
            try:
                st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(leaf, dir_fd=fd)
                elif stat.S_ISREG(st.st_mode):
                    os.unlink(leaf, dir_fd=fd)
                else:
                    raise NotFound(f"no file named {name!r}")
            except FileNotFoundError as exc:
                raise NotFound(f"no file named {name!r}") from exc
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY:
                    raise NotEmpty(f"the folder {name!r} is not empty") from exc
                raise InternalError(f"cannot remove {name!r}: {exc.strerror}") from exc
            if not stat.S_ISDIR(st.st_mode):
                self.cache.forget(name)
            os.fsync(fd)
        return name

    def mkdir(self, path: str, parents: bool = False) -> tuple[str, bool]:
        """Create a folder (and, with `parents`, those above it); return (path, created)."""
        path = check_path(path)
        try:
            return path, self.tree.mkdir(path, parents)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace("the server ran out of disk space") from exc
            raise InternalError(f"cannot create {path!r}: {exc.strerror}") from exc


def _disk_error(exc: OSError) -> FtpError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace("the server ran out of disk space")
    return InternalError(f"cannot store the upload: {exc.strerror}")
