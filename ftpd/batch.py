"""Group commit: uploads that arrive pipelined are synced together, then acknowledged in order.

Every upload is on stable storage before its `ok` is sent; what is shared is the flush
(one syncfs for a group of four or more, see Storage.commit_many), the directory fsync
and the catalog transaction, and the replies go out in one write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftpd.storage import Storage, Upload
from shared.digests import sum_fields
from shared.errors import FtpError
from shared.protocol import Role, encode, encode_stored

MAX_FILES = 256
MAX_BYTES = 64 << 20
"""A batch is committed at the latest when it holds this many files or bytes."""

Logger = Callable[[str, int, str, float, str, str], None]
"""(name, bytes, checksum, started, result, digest): one log line per upload."""


@dataclass
class _Item:
    started: float
    upload: Upload | None = None
    frame: bytes = b""


class CommitBatch:
    """The replies owed for pipelined uploads, in request order, and the uploads to commit."""

    def __init__(self, storage: Storage, send: Callable[[bytes], None], log: Logger) -> None:
        self.storage = storage
        self._send = send
        self._log = log
        self._items: list[_Item] = []
        self._bytes = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= MAX_FILES or self._bytes >= MAX_BYTES

    def add_upload(self, upload: Upload, started: float) -> None:
        self._items.append(_Item(started, upload=upload))
        self._bytes += upload.size

    def add_reply(self, type_: str, started: float, **fields: Any) -> None:
        """A reply that must wait its turn behind the uploads before it."""
        self._items.append(_Item(started, frame=encode(type_, Role.SERVER, **fields)))

    def flush(self) -> None:
        """Commit every upload held, then send all the replies owed, in order."""
        items, self._items, self._bytes = self._items, [], 0
        uploads = [item.upload for item in items if item.upload is not None]
        results = iter(self.storage.commit_many(uploads) if uploads else [])
        frames = []
        for item in items:
            if item.upload is None:
                frames.append(item.frame)
                continue
            up = item.upload
            result = next(results)
            if isinstance(result, FtpError):
                self._log(up.name, 0, up.checksum, item.started, result.code, up.digest)
                frames.append(encode("error", Role.SERVER, **result.wire_fields()))
            else:
                self._log(up.name, result.size, up.checksum, item.started, "ok", up.digest)
                frames.append(
                    encode_stored(result.name, result.size, sum_fields(up.digest, up.checksum))
                )
        self._send(b"".join(frames))
