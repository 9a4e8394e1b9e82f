"""Listings: their entries, their wire form, and what a number from one means."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.errors import FtpError, NotFound, RemoteProtocolError, StaleListing
from shared.names import check_name


@dataclass(frozen=True)
class Entry:
    index: int
    name: str
    size: int
    mtime: int
    md5: str


def is_index(token: str) -> bool:
    return token.isascii() and token.isdigit()


def resolve(token: str, seen: list[Entry] | None, current: list[Entry]) -> str:
    """Turn a number from the listing the user saw, or a name, into a name.

    A number must still name the same file in the server's current listing;
    otherwise the user would act on a file they never saw, so we refuse.
    """
    if not is_index(token):
        return check_name(token)
    index = int(token)
    if seen is None:
        raise StaleListing(f"#{index} refers to a listing, but none was seen: run ls first")
    if not 1 <= index <= len(seen):
        raise NotFound(f"there is no #{index} in the last listing (it had {len(seen)} entries)")
    name = seen[index - 1].name
    now = current[index - 1].name if index <= len(current) else None
    if now != name:
        now_text = f"{now!r}" if now is not None else "gone"
        raise StaleListing(
            f"the listing changed since you saw it: #{index} was {name!r}, now {now_text};"
            " run ls again"
        )
    return name


def parse_listing(body: bytes) -> list[Entry]:
    entries = []
    try:
        for i, line in enumerate(body.decode("utf-8").splitlines(), 1):
            obj: Any = json.loads(line)
            entry = Entry(obj["index"], obj["name"], obj["size"], obj["mtime"], obj["md5"])
            if entry.index != i or not all(
                type(v) is int for v in (entry.index, entry.size, entry.mtime)
            ):
                raise ValueError(f"entry {i} is malformed")
            if not isinstance(entry.md5, str) or check_name(entry.name) != entry.name:
                raise ValueError(f"entry {i} is malformed")
            entries.append(entry)
    except (ValueError, KeyError, TypeError, FtpError) as exc:
        raise RemoteProtocolError(f"the server sent a malformed listing: {exc}") from exc
    return entries
