"""Helpers for test_hostile_paths_resume: raw puts, planted partials and a daemon of one's own."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftpd.auth import UserStore
from ftpd.limits import Limits
from ftpd.server import FtpServer
from ftpd.storage import Storage
from shared.protocol import Message, Role, encode
from tests.conftest import Daemon, Raw, stop_daemon


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put(raw: Raw, name: str, data: bytes, *, checksum: bool = True, **more: Any) -> Message:
    """A whole put (checksum in `put`, or in `done`); the final reply, or the refusal."""
    fields = {"md5": md5(data)} if checksum else {}
    raw.send("put", name=name, size=len(data), **fields, **more)
    first = raw.recv()
    if first.type != "continue":
        return first
    raw.chan.send_raw(encode("data", Role.CLIENT, size=len(data)) + data)
    if not checksum:
        raw.send("done", md5=md5(data))
    return raw.recv()


def get(raw: Raw, name: str, **more: Any) -> tuple[Message, bytes]:
    raw.send("get", name=name, **more)
    header = raw.recv()
    body = bytearray()
    if header.type == "file":
        raw.chan.recv_body(body.extend)
    return header, bytes(body)


def plant_partial(
    staging: Path,
    data: bytes,
    *,
    owner: str = "alice",
    name: str = "big.bin",
    size: int | None = None,
    id_: str = "ab" * 16,
    **sidecar: Any,
) -> tuple[Path, Path]:
    """A partial as the server leaves it: `<id>.part` holding `data`, and its sidecar."""
    part, side = staging / f"{id_}.part", staging / f"{id_}.json"
    part.write_bytes(data)
    record = {
        "owner": owner,
        "name": name,
        "size": len(data) if size is None else size,
        "digest": "md5",
        "md5": None,
        "created": 0,
    }
    record.update(sidecar)
    side.write_text(json.dumps(record))
    return part, side


@contextmanager
def own_daemon(root: Path, users: UserStore, **storage_kw: Any) -> Iterator[Daemon]:
    """A threaded daemon whose Storage takes `storage_kw` (resume_ttl, ...), not the fixture's:
    for tests where the daemon is expected to log a traceback."""
    storage = Storage(root, **storage_kw)
    logger = logging.getLogger("ftpd.hostile-resume")
    server = FtpServer(
        ("127.0.0.1", 0), storage, users, limits=Limits(idle_timeout=10), logger=logger
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    host, port = server.address
    try:
        yield Daemon(server, storage.root, users, host, port)
    finally:
        stop_daemon(server, thread)
        storage.close()


class GatedOs:
    """Stands in for `os` in ftpd.partials: after a sidecar is renamed into place, the
    renaming thread waits on `go`, so that the window before it marks the partial active
    can be used by another session."""

    def __init__(self) -> None:
        self.published = threading.Event()
        self.go = threading.Event()

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)
        if dst.endswith(".json") and not self.published.is_set():
            self.published.set()
            self.go.wait(10)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def outside_snapshot(top: Path) -> dict[str, bytes | str]:
    """Every entry under `top`: content of files, target of links, 'dir' for folders."""
    seen: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(top))
            if p.is_symlink():
                seen[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                seen[rel] = "dir"
            else:
                seen[rel] = p.read_bytes()
    return seen
