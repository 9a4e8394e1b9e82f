"""The listing a user last saw, kept between `ftpc` runs so numbers keep their meaning."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from ftpc.listing import Entry


def cache_dir() -> Path:
    explicit = os.environ.get("FTPC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ftpc"


class ListingState:
    """One file per (host, port, user): the entries of the last `ls`."""

    def __init__(self, host: str, port: int, user: str, directory: Path | None = None) -> None:
        key = hashlib.sha256(f"{host}\0{port}\0{user}".encode()).hexdigest()[:24]
        self.path = (directory or cache_dir()) / f"listing-{key}.json"

    def load(self) -> list[Entry] | None:
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            return [Entry(**e) for e in raw["entries"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, entries: list[Entry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"entries": [asdict(e) for e in entries]}, f, ensure_ascii=False)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class MemoryState:
    """The last listing of one shell or batch script: numbers mean what that session listed."""

    def __init__(self) -> None:
        self._entries: list[Entry] | None = None

    def load(self) -> list[Entry] | None:
        return self._entries

    def save(self, entries: list[Entry]) -> None:
        self._entries = list(entries)
