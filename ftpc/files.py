"""Local files for ftpc: what a transfer returns, and opening, hashing and landing files safely.

A download lands in a temporary file beside its target and is linked into place only
when verified; an upload refuses anything that is not a regular file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared import digests
from shared.digests import MD5
from shared.errors import LocalFileError, LocalFileExists
from shared.names import OVERWRITE, RENAME, numbered

RENAME_TRIES = 1000


class _Moved:
    """What both results say of the bytes: how many crossed the network, and the md5."""

    size: int
    checksum: str
    digest: str
    existed: bool
    skipped: bool
    resumed_from: int

    @property
    def sent(self) -> int:
        """File bytes that crossed the network for this result."""
        return 0 if self.existed or self.skipped else self.size - self.resumed_from

    @property
    def md5(self) -> str:
        """The checksum, when the transfer was verified with md5 (else empty)."""
        return self.checksum if self.digest == MD5 else ""


@dataclass(frozen=True)
class PutResult(_Moved):
    """`name` is where the file is stored (with `rename`, perhaps not the name asked for).
    `existed`: identical content was already there, nothing was sent. `skipped`: other
    content is there and was left alone (on_conflict=skip); `checksum` is then its own."""

    name: str
    size: int
    checksum: str
    existed: bool
    seconds: float
    digest: str = MD5
    skipped: bool = False
    resumed_from: int = 0
    """Bytes that were already on the server from an interrupted upload, and not resent."""


@dataclass(frozen=True)
class GetResult(_Moved):
    """`path` is where the file landed. `existed`: the local file already had these bytes;
    `skipped`: a local file with other content was left alone (on_conflict=skip)."""

    name: str
    path: Path
    size: int
    checksum: str
    seconds: float
    digest: str = MD5
    existed: bool = False
    skipped: bool = False
    resumed_from: int = 0
    """Bytes already in the local .part file from an interrupted download, not fetched again."""


def checksum_of(f: BinaryIO, algo: str) -> str:
    """Checksum of an open file from the start, leaving it rewound for sending."""
    digest = digests.new(algo)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    try:
        f.seek(0)
        while n := f.readinto(buf):  # type: ignore[attr-defined]
            digest.update(view[:n])
        f.seek(0)
    except OSError as exc:
        raise LocalFileError(
            f"cannot read {getattr(f, 'name', 'the file')}: {exc.strerror}"
        ) from exc
    return digest.hexdigest()


def create_part(target: Path) -> tuple[int, str]:
    """A fresh temporary file beside `target`, with the mode the umask gives new files."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    # Keep the temporary name within NAME_MAX (255 bytes) whatever the target's script.
    stem = target.name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    for _ in range(100):
        tmp = str(target.parent / f".{stem}.{secrets.token_hex(6)}.part")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name")


def resume_part(target: Path) -> Path:
    """Where a resumable download of `target` keeps its bytes until they are verified.

    A long name is cut to fit NAME_MAX, and then carries a hash of the whole name, so two
    long names that share a beginning never share a part file."""
    raw = target.name.encode("utf-8", "surrogateescape")
    if len(raw) <= 200:
        return target.parent / f".{target.name}.ftpc-part"
    stem = raw[:180].decode("utf-8", "ignore")
    return target.parent / f".{stem}.{hashlib.sha256(raw).hexdigest()[:16]}.ftpc-part"


def open_regular(path: Path) -> BinaryIO:
    """Open a local file for upload; a device or FIFO has no honest size, so refuse it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LocalFileError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb", buffering=0)


def publish(tmp: Path, target: Path, conflict: str) -> Path:
    """Link the verified temporary file into place; return where it landed."""
    if conflict == OVERWRITE:
        os.replace(tmp, target)
        return target
    try:
        tries = RENAME_TRIES if conflict == RENAME else 1
        for n in range(tries):
            candidate = target.with_name(numbered(target.name, n))
            try:
                os.link(tmp, candidate)  # refuses an existing file atomically
            except FileExistsError:
                continue
            return candidate
        raise LocalFileExists(
            f"{target} already exists; choose --on-conflict overwrite, rename or skip"
        )
    finally:
        tmp.unlink(missing_ok=True)
