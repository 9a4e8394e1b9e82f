"""Client downloads: into a temporary or resumable part file, linked into place once verified.

`Client.get` checks its arguments and calls `get_file`.
"""

from __future__ import annotations

import errno
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
    have, base = _resumable_bytes(part, algo) if part is not None else (0, None)
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
    try:
        if part is not None:
            fd, tmp = _open_part(part, start), str(part)
        else:
            fd, tmp = create_part(target)
    except OSError as exc:
        client._drop()
        raise LocalFileError(f"cannot write in {target.parent}: {exc.strerror}") from exc
    keep = part is not None  # an interrupted resumable download keeps its bytes
    try:
        claimed = client._sum(header)
        if start and on_progress is not None:
            on_progress(start)
        value = _receive_into(client, fd, on_progress, base if start else None)
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
    client: Client, fd: int, on_progress: Progress | None, base: digests.Hasher | None = None
) -> str:
    """Write the body into `fd`, hashing it on the way (after `base`, the hash of the
    bytes before, for a resumed download); fsync before anyone renames it."""
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
                behind.wait()
                client._drop()  # the rest of the body is still on the wire
                raise
            behind.finish()
        return digest.hexdigest()
    finally:
        if isinstance(digest, digests.BackgroundHasher):
            digest.close()


# --- delete ----------------------------------------------------------------


def _resumable_bytes(part: Path, algo: str) -> tuple[int, digests.Hasher | None]:
    """How many bytes an earlier download left in `part`, and their hash."""
    try:
        fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0, None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return 0, None
        hasher, have = digests.hash_prefix(fd, os.fstat(fd).st_size, algo)
        return have, hasher
    except OSError:
        return 0, None
    finally:
        os.close(fd)


def _open_part(part: Path, start: int) -> int:
    """The resumable part file, cut to `start` bytes and positioned there."""
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{part} is not a regular file")
        os.ftruncate(fd, start)
        os.lseek(fd, start, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
