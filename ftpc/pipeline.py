"""Many uploads over one connection: small files are pipelined, so the server can group-commit.

Small files go several to an `uploads` frame (one header naming each file, its size and
checksum, then their bytes), or one to an `upload` frame on a server without `uploads`,
with no `continue` to wait for. Each file gets its own reply. Up to WINDOW files are in
flight; when the window fills, half of it is collected, so the next burst arrives back to
back and the server syncs it as one batch. Larger files go one at a time through `put`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ftpc.client import Client, Progress, PutResult
from ftpc.files import open_regular
from ftpc.upload import settled_result
from shared import digests
from shared.digests import MD5, sum_fields
from shared.errors import ChecksumMismatch, LocalFileError, RequestError, TransportError
from shared.names import check_path, conflict_fields
from shared.protocol import MAX_FRAME_FILES, MAX_FRAME_NAMES, MAX_INLINE, Role, encode

WINDOW = 512
"""Uploads in flight at most: twice the server's largest group commit (256 files), so that
while it commits one group the next is already on its way. With 256 the server sat idle
for about a fifth of a put_many of small files, waiting for frames after each commit."""
WINDOW_BYTES = 32 << 20
REPLY_BYTES = 128 << 10
"""At most this many bytes of replies, as `_reply_size` reckons them (an `ok` to a short name
is about half its estimate, an error naming a file whose name needs escaping up to 0.9), are
owed at once: long names get fewer files in flight. Frames go out through `send_reading`,
which reads the replies that arrive meanwhile, so however large they are, the two sides
never wait on each other."""
SEND_BYTES = 64 << 10
"""Frames are gathered up to this many bytes, then sent with one call."""
FRAME_BYTES = 256 << 10
"""An `uploads` frame is closed before its body would pass this many bytes (or the
protocol's MAX_FRAME_FILES files, or MAX_FRAME_NAMES characters of names)."""

Outcome = PutResult | RequestError | LocalFileError
"""Each file's fate: a refused or unreadable file does not stop the others."""
OnResult = Callable[[Path, Outcome], None]
OnStart = Callable[[Path, str, int], Progress]
"""Called as each file starts (path, remote name, size): returns that file's progress callback."""


@dataclass
class _InFlight:
    index: int
    path: Path
    name: str
    size: int
    checksum: str
    started: float


def put_many(
    client: Client,
    paths: Sequence[str | os.PathLike[str]],
    names: Sequence[str] | None,
    *,
    conflict: str,
    on_progress: Progress | None,
    on_result: OnResult | None,
    on_start: OnStart | None = None,
    resume: bool = False,
) -> list[Outcome]:
    """Upload `paths` in order; return one outcome per path, in the same order.

    Network and protocol errors end the call (the connection is gone); everything
    else is per file.
    """
    results: list[Outcome | None] = [None] * len(paths)
    pending: deque[_InFlight] = deque()
    in_flight_bytes = 0
    owed_reply_bytes = 0
    unsent: list[bytes] = []
    unsent_bytes = 0
    frame = _Frame()

    def close_frame() -> None:
        nonlocal unsent_bytes
        if frame.files:
            header = encode("uploads", Role.CLIENT, files=frame.files, size=frame.size, **mode)
            unsent.append(header)
            unsent.extend(frame.bodies)
            unsent_bytes += len(header) + frame.size
            frame.clear()

    def send(close: bool = True) -> None:
        """One send for the frames gathered (a send per 4 KiB file cost more than its md5),
        and first, with `close`, for the `uploads` frame still being filled."""
        nonlocal unsent_bytes
        if close:
            close_frame()
        if unsent:
            data = b"".join(unsent)
            unsent.clear()
            unsent_bytes = 0
            try:
                client.chan.send_reading(data)  # replies may arrive meanwhile
            except TransportError:
                salvage()
                raise

    def settle(item: _InFlight, outcome: Outcome) -> None:
        results[item.index] = outcome
        if on_result is not None:
            on_result(item.path, outcome)

    def collect(keep: int) -> None:
        send()  # every reply awaited must have its request on the way
        while len(pending) > keep:
            take_reply()

    def salvage() -> None:
        """The link broke while frames went out: settle each file whose reply arrived before
        it did. A server that ended the session answers what it owes first, then says why
        (a fatal error): that error is raised instead of the broken link."""
        with contextlib.suppress(TransportError):
            while pending:
                take_reply()

    def take_reply() -> None:
        nonlocal in_flight_bytes, owed_reply_bytes
        item = pending.popleft()
        in_flight_bytes -= item.size
        owed_reply_bytes -= _reply_size(item.name)
        try:
            ok = client._reply("ok")
        except RequestError as exc:
            settle(item, exc)
            if not client.connected:
                raise  # a fatal error: no more replies will come
            return
        if ok.get("skipped"):
            settle(item, settled_result(client, ok, item.started))
            return
        stored = client._sum(ok)
        if stored != item.checksum:
            problem = f"server stored {algo} {stored}, we sent {item.checksum}"
            settle(item, ChecksumMismatch(problem))
            return
        seconds = time.monotonic() - item.started
        existed = bool(ok.get("existed"))
        stored_as = ok.get("name", item.name)
        settle(item, PutResult(stored_as, item.size, item.checksum, existed, seconds, algo))

    pipelined = "upload" in client.hello["capabilities"]
    grouped = "uploads" in client.hello["capabilities"]
    algo = client.digest
    on_conflict = conflict_fields(conflict)
    mode: dict[str, object] = {**on_conflict}  # an `uploads` frame's: sums go in its files
    if algo != MD5:
        mode["digest"] = algo
    for index, raw_path in enumerate(paths):
        path = Path(raw_path)
        started = time.monotonic()
        try:
            name = check_path(names[index] if names is not None else path.name)
            client._require_for(name, on_conflict)
            data = _read_small(path) if pipelined else None
        except (RequestError, LocalFileError) as exc:
            settle(_InFlight(index, path, path.name, 0, "", started), exc)
            continue
        if data is None:
            collect(0)  # keep replies in order with the `put` that follows
            item = _InFlight(index, path, name, 0, "", started)
            progress = on_progress
            if on_start is not None:
                with contextlib.suppress(OSError):
                    progress = on_start(path, name, path.stat().st_size)
            try:
                outcome = client.put(
                    path, name, on_conflict=conflict, on_progress=progress, resume=resume
                )
                settle(item, outcome)
            except (RequestError, LocalFileError) as exc:
                if not client.connected:
                    raise
                settle(item, exc)
            continue
        hasher = digests.new(algo)
        hasher.update(data)
        checksum = hasher.hexdigest()
        if grouped:
            if not frame.fits(name, len(data)):
                close_frame()
            frame.add(name, data, checksum)
        else:
            fields = {**on_conflict, **sum_fields(algo, checksum)}
            header = encode("upload", Role.CLIENT, name=name, size=len(data), **fields)
            unsent.append(header)
            unsent.append(data)
            unsent_bytes += len(header) + len(data)
        if unsent_bytes >= SEND_BYTES:
            send(close=False)  # the frame being filled stays open: replies are not awaited
        progress = on_start(path, name, len(data)) if on_start is not None else on_progress
        if progress is not None:
            progress(len(data))
        pending.append(_InFlight(index, path, name, len(data), checksum, started))
        in_flight_bytes += len(data)
        owed_reply_bytes += _reply_size(name)
        if (
            len(pending) >= WINDOW
            or in_flight_bytes >= WINDOW_BYTES
            or owed_reply_bytes >= REPLY_BYTES
        ):
            collect(len(pending) // 2)
    collect(0)
    return [r for r in results if r is not None]


def _reply_size(name: str) -> int:
    """A generous guess at the bytes of a file's reply: an `ok` is about 100 plus its name,
    an error's message names the file (as a repr, whose escapes such as \\xad can take
    2.5 times the name's UTF-8) or a quota."""
    return 200 + 3 * len(name.encode("utf-8", "surrogatepass"))


class _Frame:
    """The files gathered for the next `uploads` frame."""

    def __init__(self) -> None:
        self.files: list[list[object]] = []
        self.bodies: list[bytes] = []
        self.size = 0
        self.names = 0

    def fits(self, name: str, size: int) -> bool:
        """Can this file join the frame within the protocol's limits and FRAME_BYTES?"""
        return not self.files or (
            len(self.files) < MAX_FRAME_FILES
            and self.names + len(name) <= MAX_FRAME_NAMES
            and self.size + size <= FRAME_BYTES
        )

    def add(self, name: str, data: bytes, checksum: str) -> None:
        self.files.append([name, len(data), checksum])
        self.bodies.append(data)
        self.size += len(data)
        self.names += len(name)

    def clear(self) -> None:
        self.files, self.bodies, self.size, self.names = [], [], 0, 0


def _read_small(path: Path) -> bytes | None:
    """The bytes of a regular file small enough for one `upload` frame, else None."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_INLINE:
            return None
        try:
            data = f.read(size + 1)
        except OSError as exc:
            raise LocalFileError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) != size:
        raise LocalFileError(f"{path} changed size while it was read")
    return data
