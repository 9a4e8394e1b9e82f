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
import itertools
import json
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_SIDECAR = 4096
"""A sidecar holds a few short fields; a larger file is not one of ours."""
DEFAULT_TTL = 24 * 3600
"""Seconds an interrupted upload is kept for resuming after its last byte arrived."""
CLAIM_WAIT = 2.0
"""Seconds a resume waits for a matching partial that another session still holds. A
client that retries at once after its connection was cut is often back before the old
session has written its last bytes and let go (`--retries` with `--retry-wait 0`)."""


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
        self._let_go = threading.Condition(self._lock)
        """Notified whenever a partial stops being active."""
        self._active: set[str] = set()
        self._last_purge = 0.0
        self._prefix = os.urandom(8).hex()
        self._serial = itertools.count()

    def new_id(self) -> str:
        """A staging id no other upload of any run has: a random prefix per daemon start and
        a counter (one getrandom per upload cost 9 us of a 150 us small-file budget)."""
        return f"{self._prefix}{next(self._serial):08x}"

    def part(self, id_: str) -> str:
        return f"{self.staging}/{id_}.part"

    def _sidecar(self, id_: str) -> str:
        return os.path.join(self.staging, id_ + ".json")

    def startup(self) -> int:
        """At start, with no upload in flight: drop every staging file that cannot be
        resumed (no sidecar, or expired), every sidecar without its file, and anything
        that is not a regular file (links, FIFOs: never ours). Folders are the caller's."""
        purged = 0
        names = set()
        with os.scandir(self.staging) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    names.add(entry.name)
                elif not entry.is_dir(follow_symlinks=False):
                    purged += _remove(entry.path)
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
        """Past its TTL, or not a regular file at all (a planted link or FIFO)."""
        try:
            st = os.lstat(self.part(id_))
        except FileNotFoundError:
            return True
        return not stat.S_ISREG(st.st_mode) or self._clock() - st.st_mtime > self.ttl

    def _read(self, id_: str) -> Partial | None:
        """The sidecar's record, checked; None for anything else (never blocks on a FIFO)."""
        path = self._sidecar(id_)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return None  # not even opened: a FIFO would get a reader
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            obj = json.loads(os.read(fd, MAX_SIDECAR))
        except (OSError, ValueError, RecursionError):
            return None
        finally:
            os.close(fd)
        if not isinstance(obj, dict):
            return None
        owner, name, size, digest, md5 = (
            obj.get(k) for k in ("owner", "name", "size", "digest", "md5")
        )
        if not (
            (owner is None or isinstance(owner, str))
            and isinstance(name, str)
            and type(size) is int
            and size >= 0
            and isinstance(digest, str)
            and (md5 is None or isinstance(md5, str))
        ):
            return None
        return Partial(id_, owner, name, size, digest, md5)

    def claim(
        self,
        owner: str | None,
        name: str,
        size: int,
        digest: str,
        md5: str | None = None,
        wait: float = CLAIM_WAIT,
    ) -> Partial | None:
        """The resumable partial of this upload, reserved for the caller; None if there is
        none, or if another session still uses it after `wait` seconds."""
        if self.ttl <= 0:
            return None
        deadline = time.monotonic() + wait
        with self._let_go:
            while True:
                held = False
                with os.scandir(self.staging) as it:
                    ids = [e.name[:-5] for e in it if e.name.endswith(".json")]
                for id_ in ids:
                    if self._expired(id_):
                        continue
                    partial = self._read(id_)
                    if partial is None or not partial.matches(owner, name, size, digest, md5):
                        continue
                    if id_ in self._active:
                        held = True
                        continue
                    self._active.add(id_)
                    return partial
                left = deadline - time.monotonic()
                if not held or left <= 0:
                    return None
                self._let_go.wait(left)

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
        with self._lock:  # ours before any claim() can see the sidecar
            self._active.add(id_)
        try:
            tmp = self._sidecar(id_) + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(record, f)
            os.replace(tmp, self._sidecar(id_))
        except BaseException:
            self.release(id_)
            raise

    def release(self, id_: str) -> None:
        """The upload's connection is gone: keep its bytes for a resume."""
        with self._lock:
            self._active.discard(id_)
            self._let_go.notify_all()

    def drop(self, id_: str) -> None:
        """The upload ended (stored, or refused): forget it. Its .part is the caller's."""
        with self._lock:
            self._active.discard(id_)
            self._let_go.notify_all()
        _remove(self._sidecar(id_))

    def discard(self, id_: str) -> None:
        """Forget a partial that turned out unusable, and remove whatever is at its name."""
        self.drop(id_)
        _remove(self.part(id_))

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
