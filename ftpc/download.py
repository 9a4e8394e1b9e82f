"""Client downloads: into a temporary or resumable part file, linked into place once verified.

`Client.get` checks its arguments and calls `get_file`.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ftpc.files import GetResult, checksum_of, create_part, open_regular, publish, resume_part
from shared import digests
from shared.digests import MD5
from shared.errors import (
    ChecksumMismatch,
    LocalFileError,
    LocalFileExists,
    NotFound,
    ProtocolError,
    RemoteProtocolError,
    TransportError,
)
from shared.names import FAIL, SKIP, split_path
from shared.writeback import WriteBehind

if TYPE_CHECKING:
    from ftpc.client import Client, Progress


def get_file(
    client: Client,
    name: str,
    dest: str | os.PathLike[str] | None,
    mode: str,
    on_progress: Progress | None,
    resume: bool,
    started: float,
) -> GetResult:
    """Fetch the checked path `name` into `dest` (a folder, or a file path)."""
    target = Path(dest) if dest is not None else Path.cwd()
    if target.is_dir():
        target = target / split_path(name)[1]
    if os.path.lexists(target):
        settled = _local_conflict(client, name, target, mode, started)
        if settled is not None:
            return settled
    client._require_for(name, {"resume": resume})
    algo = client.digest
    part = resume_part(target) if resume else None
    part_fd = _lock_part(part) if part is not None else None
    try:
        have, base = _hash_part(part_fd, algo) if part_fd is not None else (0, None)
        request: dict[str, object] = {} if algo == MD5 else {"digest": algo}
        if have and base is not None:
            request.update(offset=have, prefix=base.hexdigest())
        client.chan.send("get", name=name, **request)
        header = client._reply("file")
        if header["name"] != name:
            client._drop()
            raise RemoteProtocolError(f"asked for {name!r}, the server sent {header['name']!r}")
        start = header.get("offset", 0)
        if start not in (0, have):
            client._drop()
            raise RemoteProtocolError(f"asked to resume at byte {have}, the server sent {start}")
        if part_fd is not None:
            os.ftruncate(part_fd, start)
            os.lseek(part_fd, start, os.SEEK_SET)
            fd, tmp = part_fd, str(part)
        else:
            fd, tmp = create_part(target)
    except OSError as exc:
        _give_up_part(part, part_fd)
        client._drop()
        raise LocalFileError(f"cannot write in {target.parent}: {exc.strerror}") from exc
    except BaseException:
        _give_up_part(part, part_fd)
        raise
    keep = part is not None  # an interrupted resumable download keeps its bytes
    try:
        claimed = client._sum(header)
        if start and on_progress is not None:
            on_progress(start)
        value = _receive_into(client, fd, header["size"], on_progress, base if start else None)
        if value != claimed:
            keep = False
            raise ChecksumMismatch(
                f"{name!r} arrived with {algo} {value}, the server said {claimed}:"
                " nothing was saved"
            )
        landed = publish(Path(tmp), target, mode)
    except OSError as exc:
        raise LocalFileError(f"cannot write {target}: {exc.strerror}") from exc
    except (TransportError, ProtocolError):
        raise
    except BaseException:
        keep = False
        raise
    finally:
        if not keep:
            Path(tmp).unlink(missing_ok=True)
    seconds = time.monotonic() - started
    total = start + header["size"]
    return GetResult(name, landed, total, value, seconds, algo, resumed_from=start)


def _local_conflict(
    client: Client, name: str, target: Path, mode: str, started: float
) -> GetResult | None:
    """A local file is in the way: the result if there is nothing to fetch, else None."""
    entry = client.stat(name)
    if entry.is_folder:
        raise NotFound(f"{name!r} is a folder: download it with get -r")
    try:
        with open_regular(target) as f:
            same = checksum_of(f, MD5) == entry.md5
    except LocalFileError:
        same = False  # a folder, link or unreadable file: not the same content
    if same or mode == SKIP:
        seconds = time.monotonic() - started
        return GetResult(
            name, target, entry.size, entry.md5, seconds, MD5, existed=same, skipped=not same
        )
    if mode == FAIL:
        raise LocalFileExists(
            f"{target} already exists with other content;"
            " choose --on-conflict overwrite, rename or skip"
        )
    return None


def _receive_into(
    client: Client,
    fd: int,
    size: int,
    on_progress: Progress | None,
    base: digests.Hasher | None = None,
) -> str:
    """Write the body of `size` bytes into `fd`, hashing it on the way (after `base`, the
    hash of the bytes before, for a resumed download); fsync before anyone renames it.

    The bytes go through the page cache, with write-behind so that the final fsync has
    only the tail left. That beat O_DIRECT from a writer thread on this machine in 14 of
    14 alternating 1 GiB downloads (docs/BENCHMARKS.md): the kernel's writeback keeps
    the disk busier than one direct write at a time, and the client's copy is cheap here.
    """
    digest = digests.hasher_for_stream(client.digest, base)
    behind = WriteBehind(fd)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:

            def received(chunk: memoryview) -> None:
                digest.update(chunk)
                rest = chunk
                while rest:
                    rest = rest[out.write(rest) :]
                behind.wrote(len(chunk))
                if on_progress is not None:
                    on_progress(len(chunk))

            try:
                client.chan.recv_body(received)
            except BaseException:
                client._drop()  # the rest of the body is still on the wire
                raise
            behind.finish()
        return digest.hexdigest()
    finally:
        if isinstance(digest, digests.BackgroundHasher):
            digest.close()


def _lock_part(part: Path) -> int:
    """Open (or create) the resumable part file and hold it: two downloads of one target
    never write into the same part. A link or anything but a regular file is refused."""
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        raise LocalFileError(f"cannot use {part}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LocalFileError(f"{part} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LocalFileError(f"another download is using {part}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _give_up_part(part: Path | None, fd: int | None) -> None:
    """Nothing was received: release the part file, and remove it if it holds nothing (it
    was made for this request, which the server refused)."""
    if part is None or fd is None:
        return
    try:
        if os.fstat(fd).st_size == 0:
            part.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _hash_part(fd: int, algo: str) -> tuple[int, digests.Hasher | None]:
    """How many bytes an earlier download left in the part file, and their hash."""
    try:
        hasher, have = digests.hash_prefix(fd, os.fstat(fd).st_size, algo)
    except OSError:
        return 0, None
    return have, hasher
