"""The listing body: JSON Lines, one entry per line, sorted by name. Pure, like protocol.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.errors import FtpError, RemoteProtocolError
from shared.names import check_name
from shared.protocol import FIELDS


@dataclass(frozen=True)
class Entry:
    """One listed file; `index` is 1-based and is what users type."""

    index: int
    name: str
    size: int
    mtime: int
    md5: str


def encode_listing(files: Iterable[tuple[str, int, int, str]]) -> bytes:
    """Encode (name, size, mtime, md5) rows, numbering them from 1.

    Only the name needs JSON escaping; a template keeps 100,000 entries quick.
    """
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    return "".join(
        f'{{"index":{i},"name":{dumps(name)},"size":{size},"mtime":{mtime},"md5":"{md5}"}}\n'
        for i, (name, size, mtime, md5) in enumerate(files, 1)
    ).encode("utf-8")


def decode_listing(body: bytes) -> list[Entry]:
    """Parse a JSON Lines listing body, checking every entry as a hostile server could lie."""
    entries = []
    try:
        text = body.decode("utf-8")
        if text and not text.endswith("\n"):
            raise ValueError("the last line is not terminated")
        # A raw newline never occurs inside a JSON string, so the lines join into one array:
        # one C-level parse instead of one per entry.
        objs: list[Any] = json.loads("[" + text[:-1].replace("\n", ",") + "]") if text else []
        for i, obj in enumerate(objs, 1):
            entry = Entry(obj["index"], obj["name"], obj["size"], obj["mtime"], obj["md5"])
            problems = [FIELDS[k](getattr(entry, k)) for k in ("size", "mtime", "md5")]
            if entry.index != i or type(entry.index) is not int or any(problems):
                raise ValueError(f"entry {i} is malformed")
            if check_name(entry.name) != entry.name:
                raise ValueError(f"entry {i} has a name that is not in normal form")
            entries.append(entry)
    except (ValueError, KeyError, TypeError, FtpError) as exc:
        raise RemoteProtocolError(f"the server sent a malformed listing: {exc}") from exc
    return entries
