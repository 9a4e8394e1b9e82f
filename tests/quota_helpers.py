"""Storage-level helpers for the quota tests: store a file for an owner, and what a fresh
catalog on the same database sums for an owner (to check the running totals)."""

from __future__ import annotations

from ftpd.catalog import Md5Cache
from ftpd.storage import Storage


def store(
    storage: Storage,
    name: str,
    size: int,
    owner: str | None,
    conflict: str = "fail",
    quota: int | None = None,
    fill: bytes = b"x",
) -> None:
    up = storage.begin_upload(name, size, conflict, owner=owner, quota=quota)
    try:
        up.write(memoryview(fill * size))
        up.commit()
    except BaseException:
        up.abort()
        raise


def summed_afresh(storage: Storage, owner: str) -> int | None:
    """What a new catalog on the same database sums for `owner`."""
    other = Md5Cache(storage.root / ".ftpd" / "md5.sqlite3")
    try:
        return other.owned_bytes(owner)
    finally:
        other.close()
