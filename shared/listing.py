"""The listing body: JSON Lines, one entry per line, sorted by name. Pure, like protocol.py.

A listing is of one folder; its entries are files and folders, named by one component.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from shared.errors import FtpError, RemoteProtocolError
from shared.names import check_name, join_path
from shared.protocol import FIELDS

FILE, FOLDER = "file", "dir"


@dataclass(frozen=True)
class Entry:
    """One listed file or folder; `index` is 1-based and is what users type.

    `name` is one component; `path` is where it is from the root (the listed folder
    joined with the name). A folder has size 0 and no md5.
    """

    index: int
    name: str
    size: int
    mtime: int
    md5: str
    kind: str = FILE
    path: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.path:
            object.__setattr__(self, "path", self.name)

    @property
    def is_folder(self) -> bool:
        return self.kind == FOLDER


def encode_listing(rows: Iterable[tuple[str, int, int, str, str]]) -> bytes:
    """Encode (name, size, mtime, md5, kind) rows, numbering them from 1.

    Only the name needs JSON escaping; a template keeps 100,000 entries quick.
    """
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    return "".join(
        f'{{"index":{i},"name":{dumps(name)},"size":{size},"mtime":{mtime},"md5":"{md5}"'
        f',"kind":"{kind}"}}\n'
        for i, (name, size, mtime, md5, kind) in enumerate(rows, 1)
    ).encode("utf-8")


def decode_listing(body: bytes, folder: str = "") -> list[Entry]:
    """Parse a JSON Lines listing of `folder`, checking each entry as a hostile server could lie."""
    entries = []
    try:
        text = body.decode("utf-8")
        if text and not text.endswith("\n"):
            raise ValueError("the last line is not terminated")
        # A raw newline never occurs inside a JSON string, so the lines join into one array:
        # one C-level parse instead of one per entry.
        objs: list[Any] = json.loads("[" + text[:-1].replace("\n", ",") + "]") if text else []
        for i, obj in enumerate(objs, 1):
            if not isinstance(obj, dict) or len(obj) != 6:
                raise ValueError(f"entry {i} does not have exactly the six listing keys")
            kind = obj["kind"]
            entry = Entry(obj["index"], obj["name"], obj["size"], obj["mtime"], obj["md5"], kind)
            problems = [FIELDS[k](getattr(entry, k)) for k in ("size", "mtime")]
            if kind == FILE:
                problems.append(FIELDS["md5"](entry.md5))
            elif kind != FOLDER or entry.md5 != "" or entry.size != 0:
                raise ValueError(f"entry {i} is neither a file nor a folder")
            if entry.index != i or type(entry.index) is not int or any(problems):
                raise ValueError(f"entry {i} is malformed")
            if check_name(entry.name) != entry.name:
                raise ValueError(f"entry {i} has a name that is not in normal form")
            if folder:
                entry = replace(entry, path=join_path(folder, entry.name))
            entries.append(entry)
    except (ValueError, KeyError, TypeError, FtpError) as exc:
        raise RemoteProtocolError(f"the server sent a malformed listing: {exc}") from exc
    return entries
