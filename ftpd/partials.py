"""Interrupted uploads kept for resuming: a staging file and a small sidecar beside it.

    .ftpd/staging/<id>.part    the bytes received so far
    .ftpd/staging/<id>.json    {"owner", "name", "size", "digest", "md5", "created"}

Only an upload that asked to be resumable gets a sidecar. When its connection drops,
the staging file stays; a later resumable put of the same name and size, by the same
account and with the same digest, continues it once both sides agree on the prefix.
A partial not touched for `ttl` seconds is purged, and a staging file without a
sidecar is never resumed (it is an upload in flight, or the leftover of a crash).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TTL = 24 * 3600
"""Seconds an interrupted upload is kept for resuming after its last byte arrived."""


@dataclass(frozen=True)
class Partial:
    """A resumable upload's identity and where its bytes are."""

    id: str
    owner: str | None
    name: str
    size: int
    digest: str
    md5: str | None

    def matches(
        self, owner: str | None, name: str, size: int, digest: str, md5: str | None
    ) -> bool:
        """The same upload: same account, path, size and digest, and no md5 that differs."""
        if md5 is not None and self.md5 is not None and md5 != self.md5:
            return False
        return (self.owner, self.name, self.size, self.digest) == (owner, name, size, digest)


class Partials:
    """The resumable uploads in one staging directory. Safe to share between threads."""

    def __init__(
        self, staging: str, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self.staging = staging
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._last_purge = 0.0

    def part(self, id_: str) -> str:
        return os.path.join(self.staging, id_ + ".part")

    def _sidecar(self, id_: str) -> str:
        return os.path.join(self.staging, id_ + ".json")

    def startup(self) -> int:
        """At start, with no upload in flight: drop every staging file that cannot be
        resumed (no sidecar, or expired) and every sidecar without its file."""
        with os.scandir(self.staging) as it:
            names = {e.name for e in it if e.is_file(follow_symlinks=False)}
        purged = 0
        for name in names:
            stem, _, ext = name.rpartition(".")
            if ext == "part":
                if stem + ".json" not in names or self._expired(stem) or self.ttl <= 0:
                    purged += _remove(self.part(stem))
            elif ext == "json":
                if stem + ".part" not in names or self._expired(stem) or self.ttl <= 0:
                    _remove(self._sidecar(stem))
            else:
                purged += _remove(os.path.join(self.staging, name))
        return purged

    def _expired(self, id_: str) -> bool:
        try:
            touched = os.stat(self.part(id_)).st_mtime
        except FileNotFoundError:
            return True
        return self._clock() - touched > self.ttl

    def _read(self, id_: str) -> Partial | None:
        try:
            with open(self._sidecar(id_), encoding="utf-8") as f:
                obj = json.load(f)
            return Partial(
                id_,
                obj["owner"],
                obj["name"],
                int(obj["size"]),
                obj["digest"],
                obj.get("md5"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def claim(
        self, owner: str | None, name: str, size: int, digest: str, md5: str | None = None
    ) -> Partial | None:
        """The resumable partial of this upload, reserved for the caller; None if there is
        none (or another session is using it)."""
        if self.ttl <= 0:
            return None
        with self._lock:
            with os.scandir(self.staging) as it:
                ids = [e.name[:-5] for e in it if e.name.endswith(".json")]
            for id_ in ids:
                if id_ in self._active or self._expired(id_):
                    continue
                partial = self._read(id_)
                if partial is not None and partial.matches(owner, name, size, digest, md5):
                    self._active.add(id_)
                    return partial
        return None

    def create(
        self, id_: str, owner: str | None, name: str, size: int, digest: str, md5: str | None
    ) -> None:
        """Record a new resumable upload (its staging file exists already)."""
        if self.ttl <= 0:
            return
        record = {
            "owner": owner,
            "name": name,
            "size": size,
            "digest": digest,
            "md5": md5,
            "created": self._clock(),
        }
        tmp = self._sidecar(id_) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, self._sidecar(id_))
        with self._lock:
            self._active.add(id_)

    def release(self, id_: str) -> None:
        """The upload's connection is gone: keep its bytes for a resume."""
        with self._lock:
            self._active.discard(id_)

    def drop(self, id_: str) -> None:
        """The upload ended (stored, or refused): forget it. Its .part is the caller's."""
        with self._lock:
            self._active.discard(id_)
        _remove(self._sidecar(id_))

    def purge_expired(self, every: float = 60.0) -> int:
        """Drop partials idle for longer than the TTL; at most once per `every` seconds."""
        now = self._clock()
        if now - self._last_purge < every:
            return 0
        self._last_purge = now
        purged = 0
        with self._lock:
            with os.scandir(self.staging) as it:
                ids = [e.name[:-5] for e in it if e.name.endswith(".json")]
            for id_ in ids:
                if id_ not in self._active and self._expired(id_):
                    purged += _remove(self.part(id_))
                    _remove(self._sidecar(id_))
        return purged


def _remove(path: str) -> int:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
        return 1
    return 0
