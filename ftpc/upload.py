"""Client uploads: one file through `put`, with its checksum as a trailer, resumable on request.

`Client.put` checks its arguments and calls `put_file`; the pipelined uploads of many files
are in `ftpc.pipeline`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ftpc.files import PutResult, checksum_of, open_regular
from shared import digests
from shared.digests import MD5, sum_field, sum_fields
from shared.errors import ChecksumMismatch, Exists, LocalFileError
from shared.names import OVERWRITE
from shared.protocol import Message

if TYPE_CHECKING:
    from ftpc.client import Client, Progress


def put_file(
    client: Client,
    path: Path,
    name: str,
    mode: dict[str, object],
    on_progress: Progress | None,
    started: float,
) -> PutResult:
    """Send one file under `name` with the request fields `mode` (conflict, resume)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        algo = client.digest
        named = {} if algo == MD5 else {"digest": algo}
        # Overwrite is asked for only once the name is known to be taken by other
        # content: a first put without it finds out, so identical bytes are never resent.
        first = {k: v for k, v in mode.items() if v != OVERWRITE}
        client.chan.send("put", name=name, size=size, **first, **named)
        trailer = True
        try:
            reply = client._reply("continue", "ok")
        except Exists:
            # Identical content counts as success: prove it with the local checksum.
            local = checksum_of(f, algo)
            fields = sum_fields(algo, local)
            client.chan.send("put", name=name, size=size, **mode, **fields)
            reply = client._reply("ok", "continue")
            trailer = False
        if reply.type == "ok":
            return settled_result(client, reply, started)
        start, base = _agree_on_prefix(client, f.fileno(), reply)
        if start and on_progress is not None:
            on_progress(start)
        # The kernel sends the file while a second thread hashes it: two cores at work.
        hasher = digests.FileHasher(f.fileno(), size, algo, start=start, base=base)
        try:
            client.chan.send("data", size=size - start, **({"offset": start} if start else {}))
            f.seek(start)
            client.chan.send_body(f, size - start, on_sent=on_progress)
            value = hasher.result()
        except OSError as exc:
            hasher.close()
            client._drop()
            raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except BaseException:
            # Interrupted mid-body (even by Ctrl-C): the stream is out of frame.
            hasher.close()
            client._drop()
            raise
        if trailer:
            client.chan.send("done", **{sum_field(algo): value})
        ok = client._reply("ok")
    if client._sum(ok) != value:
        raise ChecksumMismatch(f"server stored {algo} {client._sum(ok)}, we sent {value}")
    seconds = time.monotonic() - started
    stored = ok.get("name", name)
    return PutResult(
        stored, size, value, bool(ok.get("existed")), seconds, algo, resumed_from=start
    )


def _agree_on_prefix(client: Client, fd: int, reply: Message) -> tuple[int, digests.Hasher | None]:
    """Where to start sending: the server's offset if our first bytes hash as its do.

    Returns (offset, the hash of our bytes before it); (0, None) to start over.
    """
    offset = reply.get("offset", 0)
    if not offset:
        return 0, None
    try:
        hasher, got = digests.hash_prefix(fd, offset, client.digest)
    except OSError as exc:
        client._drop()
        raise LocalFileError(f"cannot read the file to resume: {exc.strerror}") from exc
    if got == offset and hasher.hexdigest() == reply.get("prefix"):
        return offset, hasher
    return 0, None  # our file changed since: never splice, send it all


def settled_result(client: Client, reply: Message, started: float) -> PutResult:
    """The result of a put the server answered without taking any bytes."""
    return PutResult(
        reply.get("name", ""),
        reply.get("size", 0),
        client._sum(reply),
        bool(reply.get("existed")),
        time.monotonic() - started,
        client.digest,
        bool(reply.get("skipped")),
    )
