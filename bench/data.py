"""The files the scenarios move, and the md5 helper every "verified" figure is timed with."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from shared import digests

BUF = 1 << 20
"""1 MiB reads: the buffer size every party in the bench uses."""


def make_file(path: Path, size: int) -> str:
    """Write `size` random bytes (random, so nothing on the way can compress); return the md5."""
    digest = hashlib.md5()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(BUF, left))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def make_small_files(folder: Path, count: int, size: int) -> list[Path]:
    """`count` distinct files of `size` bytes, named so that each sorts in creation order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"small-{i:05d}.bin"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def md5_file(path: Path) -> str:
    """md5 of a file read through one reused 1 MiB buffer (from page cache once it is warm)."""
    return file_digest(path, "md5")


def file_digest(path: Path, name: str) -> str:
    """The `name` digest (as ftpd computes it, from `shared.digests`) of a whole file."""
    digest = digests.new(name)
    buf = bytearray(BUF)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def clear_dir(folder: Path) -> None:
    """Remove what a run stored in a server root or download folder, keeping hidden metadata.

    ftpd keeps its staging area and md5 cache under `.ftpd`; a stale cache row is harmless
    because rows are keyed by size, mtime and inode.
    """
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
