"""Folders under the root, opened one component at a time without following links.

Every path operation happens relative to a directory descriptor reached from the root
by `openat(..., O_NOFOLLOW)`, component by component. A symlink planted anywhere on the
way, or swapped in mid-walk, ends the walk instead of leading outside the root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence

from shared.errors import Exists, NotFound

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_A_FOLDER = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


class Tree:
    """The root directory, held open; safe to share between threads (descriptors are)."""

    def __init__(self, root: str) -> None:
        self.fd = os.open(root, _DIR_FLAGS)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @contextlib.contextmanager
    def folder(self, parts: Sequence[str]) -> Iterator[int]:
        """A descriptor for the folder at `parts` (the root for none); NotFound if absent."""
        fd = self._walk(parts)
        try:
            yield fd
        finally:
            if fd != self.fd:
                os.close(fd)

    @contextlib.contextmanager
    def parent(self, path: str) -> Iterator[tuple[int, str]]:
        """(descriptor of the folder holding `path`, last component of `path`)."""
        *parts, leaf = path.split("/")
        with self.folder(parts) as fd:
            yield fd, leaf

    def open(self, folder: str) -> int:
        """A descriptor for `folder` ("" is the root); give it back with `release`."""
        return self._walk(folder.split("/") if folder else [])

    @contextlib.contextmanager
    def scan(self, parts: Sequence[str]) -> Iterator[Iterator[os.DirEntry[str]]]:
        """The entries of a folder, read through a descriptor of its own: scandir on a
        duplicate would share the file offset with every other reader of that folder."""
        with self.folder(parts) as fd:
            own = os.open(".", _DIR_FLAGS, dir_fd=fd)
        try:
            with os.scandir(own) as it:
                yield it
        finally:
            os.close(own)

    def release(self, fd: int) -> None:
        if fd != self.fd:
            os.close(fd)

    def _walk(self, parts: Sequence[str]) -> int:
        fd = self.fd
        try:
            for i, part in enumerate(parts):
                child = self._enter(fd, part, parts[: i + 1])
                if fd != self.fd:
                    os.close(fd)
                fd = child
        except BaseException:
            if fd != self.fd:
                os.close(fd)
            raise
        return fd

    def mkdir(self, path: str, parents: bool) -> bool:
        """Create the folder `path`, fsynced into its parent; with `parents`, also the missing
        folders above it, and an existing folder is no error. Returns whether `path` was new."""
        *above, leaf = path.split("/")
        if not parents:
            with self.folder(above) as fd:
                return self._make(fd, leaf, path, exist_ok=False)
        fd = self.fd
        try:
            for i, part in enumerate(above):
                self._make(fd, part, "/".join(above[: i + 1]), exist_ok=True)
                child = self._enter(fd, part, above[: i + 1])
                if fd != self.fd:
                    os.close(fd)
                fd = child
            return self._make(fd, leaf, path, exist_ok=True)
        finally:
            if fd != self.fd:
                os.close(fd)

    @staticmethod
    def _make(fd: int, part: str, where: str, exist_ok: bool) -> bool:
        try:
            os.mkdir(part, 0o755, dir_fd=fd)
        except FileExistsError:
            st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise Exists(f"{where!r} is taken by a file or a link") from None
            if not exist_ok:
                raise Exists(f"the folder {where!r} already exists") from None
            return False
        except FileNotFoundError as exc:  # the folder we hold was removed meanwhile
            raise NotFound(f"the folder holding {where!r} was removed") from exc
        os.fsync(fd)
        return True

    @staticmethod
    def _enter(fd: int, part: str, where: Sequence[str]) -> int:
        """Open the folder `part` in `fd`; `where` is its path, joined only for an error."""
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in _NOT_A_FOLDER:
                raise NotFound(f"there is no folder {'/'.join(where)!r}") from exc
            raise
